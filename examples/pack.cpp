// ringloader-pack: an image folder (or a file list) into WebDataset-compatible tar shards with
// an index per shard and a manifest, for datasets::Shards (Python rl.Shards) to read in place.
//
//   ringloader-pack /data/train /data/train-packed --max-short-side 256
//   ringloader-pack --index /data/wds/shard-*.tar         # index tars made by tar / webdataset
//
// Samples are shuffled once with --seed (or kept in the source's order: --order source), so
// shards mix the classes and a block-shuffled epoch reads near-sequentially. Images whose
// shorter side exceeds --max-short-side are resized to it and re-encoded as JPEG (--quality);
// others are stored as they are. Output is deterministic (the same input and options give the
// same bytes, whatever --jobs), atomic (written beside OUT, then renamed) and never replaces
// OUT without --force. Files that cannot be read or decoded are left out and listed in
// OUT/bad_files.tsv (path<TAB>reason); the exit status is then 1.
// GCC 12 reports a false -Wnull-dereference inside CLI11's (and libstdc++'s) inlined string code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/fnv.hpp"
#include "core/unique_handle.hpp"
#include "datasets/detail/file_reader.hpp"
#include "datasets/detail/shard_format.hpp"
#include "datasets/file_list_dataset.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/rng.hpp"
#include "datasets/transforms.hpp"
#include "examples/cli_common.hpp"

using namespace ringloader;
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kProgram = "ringloader-pack";

struct Options {
  std::string src;
  std::string out;
  std::vector<std::string> index_tars;
  uint64_t shard_size = uint64_t{256} << 20;
  int max_short_side = 0;  ///< 0: store every image as it is
  int quality = 90;
  int jobs = 0;            ///< 0: one per core
  uint64_t seed = 0;
  std::string order = "shuffled";
  bool force = false;
  bool quiet = false;
  int64_t max_pixels = int64_t{64} << 20;
};

// One source image, ready for the tar.
struct Packed {
  std::vector<uint8_t> bytes;
  std::string ext;
  uint32_t width = 0, height = 0;
  bool reencoded = false;
  std::string error;  ///< non-empty: a bad file, left out
};

const char* extension_of(datasets::ImageFormat f) {
  switch (f) {
    case datasets::ImageFormat::kJpeg: return "jpg";
    case datasets::ImageFormat::kPng: return "png";
    case datasets::ImageFormat::kWebp: return "webp";
    case datasets::ImageFormat::kBmp: return "bmp";
    case datasets::ImageFormat::kGif: return "gif";
    case datasets::ImageFormat::kTga: return "tga";
    case datasets::ImageFormat::kPnm: return "ppm";
    case datasets::ImageFormat::kPsd: return "psd";
    case datasets::ImageFormat::kHdr: return "hdr";
    case datasets::ImageFormat::kUnknown: break;
  }
  return "bin";
}

struct TjFree {
  void operator()(void* h) const { tjDestroy(h); }
};

Packed pack_one(const std::string& path, const Options& o, const datasets::ImageDecoder& dec) {
  Packed p;
  try {
    std::vector<uint8_t> bytes = datasets::detail::read_file(path, size_t{256} << 20);
    const datasets::ImageInfo info = dec.probe(bytes, path);
    const int short_side = std::min(info.width, info.height);
    if (o.max_short_side > 0 && short_side > o.max_short_side) {
      const auto [w, h] = datasets::resize_shorter_side(info.width, info.height, o.max_short_side);
      std::vector<uint8_t> rgb(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
      const datasets::Geometry g{datasets::Box{0, 0, info.width, info.height}, w, h, datasets::Box{0, 0, w, h}, false};
      dec.decode_into(bytes, path, info, g, rgb);
      thread_local std::unique_ptr<void, TjFree> tj(tjInitCompress());
      unsigned char* jpeg = nullptr;
      unsigned long size = 0;
      if (!tj || tjCompress2(tj.get(), rgb.data(), w, 0, h, TJPF_RGB, &jpeg, &size, TJSAMP_420, o.quality, 0) != 0) {
        const std::string why = tj ? tjGetErrorStr2(tj.get()) : "tjInitCompress failed";
        tjFree(jpeg);
        throw Error(path + ": JPEG encode failed: " + why);
      }
      p.bytes.assign(jpeg, jpeg + size);
      tjFree(jpeg);
      p.ext = "jpg";
      p.width = static_cast<uint32_t>(w);
      p.height = static_cast<uint32_t>(h);
      p.reencoded = true;
    } else {
      // Decode it once: a file that probes but does not decode is a bad file here, not at
      // training time.
      std::vector<uint8_t> scratch(static_cast<size_t>(std::min(info.width, 8)) * static_cast<size_t>(std::min(info.height, 8)) * 3);
      const int tw = std::min(info.width, 8), th = std::min(info.height, 8);
      dec.decode_into(bytes, path, info,
                      datasets::Geometry{datasets::Box{0, 0, info.width, info.height}, tw, th, datasets::Box{0, 0, tw, th},
                                         false},
                      scratch);
      p.ext = extension_of(info.format);
      p.width = static_cast<uint32_t>(info.width);
      p.height = static_cast<uint32_t>(info.height);
      p.bytes = std::move(bytes);
    }
  } catch (const ResourceError&) {
    throw;  // the machine ran short: stop, do not call a good file bad
  } catch (const Error& e) {
    p.error = e.what();
    const std::string prefix = path + ": ";
    if (p.error.rfind(prefix, 0) == 0) p.error = p.error.substr(prefix.size());
  }
  return p;
}

// Writes one tar through libarchive, unbuffered, counting every byte so the index knows where
// each member's data starts, and hashing them for the manifest.
class TarWriter {
 public:
  explicit TarWriter(const std::string& path) : path_(path) {
    fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd_) throw Error(path + ": cannot create: " + std::strerror(errno));
    a_ = archive_write_new();
    if (!a_ || archive_write_set_format_ustar(a_) != ARCHIVE_OK || archive_write_set_bytes_per_block(a_, 0) != ARCHIVE_OK ||
        archive_write_open(a_, this, nullptr, &TarWriter::write_cb, nullptr) != ARCHIVE_OK) {
      const char* why = a_ ? archive_error_string(a_) : "archive_write_new failed";
      throw Error(path + ": libarchive: " + (why ? why : "failed without a message"));
    }
  }
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  ~TarWriter() {
    if (a_) archive_write_free(a_);
  }

  /// Adds a member; returns the offset of its data.
  uint64_t add(const std::string& name, const uint8_t* data, size_t size) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_mtime(e.get(), 0, 0);  // deterministic bytes
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) fail("archive_write_header");
    const uint64_t at = bytes_;
    if (size > 0 && archive_write_data(a_, data, size) != static_cast<la_ssize_t>(size)) fail("archive_write_data");
    return at;
  }
  /// Ends the archive; returns its size and FNV-1a digest.
  std::pair<uint64_t, uint64_t> finish() {
    if (archive_write_close(a_) != ARCHIVE_OK) fail("archive_write_close");
    if (::fsync(fd_.get()) != 0) throw Error(path_ + ": fsync: " + std::strerror(errno));
    return {bytes_, digest_};
  }

 private:
  static la_ssize_t write_cb(archive*, void* self, const void* buf, size_t n) {
    auto* w = static_cast<TarWriter*>(self);
    const auto* p = static_cast<const char*>(buf);
    for (size_t done = 0; done < n;) {
      const ssize_t r = ::write(w->fd_.get(), p + done, n - done);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        w->error_ = errno;
        return -1;
      }
      done += static_cast<size_t>(r);
    }
    w->digest_ = core::fnv1a64(std::string_view(p, n), w->digest_);
    w->bytes_ += n;
    return static_cast<la_ssize_t>(n);
  }
  [[noreturn]] void fail(const char* call) {
    const char* why = error_ ? std::strerror(error_) : archive_error_string(a_);  // libarchive may give none
    throw Error(path_ + ": " + call + ": " + (why ? why : "failed without a message"));
  }

  std::string path_;
  core::UniqueFd fd_;
  archive* a_ = nullptr;
  uint64_t bytes_ = 0;
  uint64_t digest_ = core::kFnvOffset;
  int error_ = 0;
};

void write_file(const std::string& path, std::string_view bytes) {
  core::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw Error(path + ": cannot create: " + std::strerror(errno));
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t r = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw Error(path + ": write: " + std::strerror(errno));
    done += static_cast<size_t>(r);
  }
  if (::fsync(fd.get()) != 0) throw Error(path + ": fsync: " + std::strerror(errno));
}

std::string shard_name(size_t i, const char* ext) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "shard-%06zu.%s", i, ext);
  return buf;
}

// Removes the half-written folder unless disarmed: a failed or interrupted pack leaves nothing.
struct TempDir {
  std::string path;
  bool keep = false;
  ~TempDir() {
    std::error_code ec;
    if (!keep && !path.empty()) fs::remove_all(path, ec);
  }
};

class Progress {
 public:
  Progress(bool quiet, size_t total) : quiet_(quiet), total_(total), tty_(::isatty(2) != 0), t0_(Clock::now()) {}
  void update(size_t done, size_t shards, size_t reencoded, size_t bad, bool last = false) {
    if (quiet_) return;
    const auto now = Clock::now();
    if (!last && now - shown_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::seconds(5))) return;
    shown_ = now;
    const double s = std::chrono::duration<double>(now - t0_).count();
    const int width = 30;
    const int filled = total_ == 0 ? width : static_cast<int>(static_cast<double>(done) / static_cast<double>(total_) * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s[%s] %zu/%zu images, %.0f/s, %zu shards, %zu re-encoded, %zu bad%s", tty_ ? "\r" : "",
                 bar.c_str(), done, total_, s > 0 ? static_cast<double>(done) / s : 0.0, shards, reencoded, bad,
                 tty_ && !last ? "" : "\n");
  }

 private:
  bool quiet_;
  size_t total_;
  bool tty_;
  Clock::time_point t0_;
  Clock::time_point shown_{};
};

int index_tars(const Options& o) {
  for (const std::string& tar : o.index_tars) {
    core::UniqueFd fd(::open(tar.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw Error(tar + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || st.st_size == 0) throw Error(tar + ": empty or unreadable");
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw Error(tar + ": mmap: " + std::strerror(errno));
    core::UniqueMapping map({static_cast<std::byte*>(p), static_cast<size_t>(st.st_size)});
    const std::span<const uint8_t> bytes(static_cast<const uint8_t*>(p), static_cast<size_t>(st.st_size));
    datasets::detail::ShardIndex idx = datasets::detail::scan_tar(
        bytes, tar, [](std::span<const uint8_t> b, const std::string& name) -> datasets::detail::ProbedSize {
          try {
            const auto info = datasets::ImageDecoder().probe(b, name);
            return {static_cast<uint32_t>(info.width), static_cast<uint32_t>(info.height)};
          } catch (const DecodeError&) {
            return {0, 0};
          }
        });
    idx.tar_digest = core::fnv1a64(std::string_view(reinterpret_cast<const char*>(p), bytes.size()));
    const std::vector<uint8_t> enc = datasets::detail::encode_index(idx);
    const std::string out = fs::path(tar).replace_extension(".idx").string();
    const std::string tmp = out + ".tmp-" + std::to_string(::getpid());
    write_file(tmp, std::string_view(reinterpret_cast<const char*>(enc.data()), enc.size()));
    fs::rename(tmp, out);
    if (!o.quiet) std::fprintf(stderr, "%s: %s: %zu samples indexed -> %s\n", kProgram, tar.c_str(), idx.entries.size(), out.c_str());
  }
  return 0;
}

// True if `out` is `src` or a folder holding it: replacing OUT (--force) would delete the source.
bool holds_source(const std::string& out, const std::string& src) {
  std::error_code e1, e2;
  const fs::path o = fs::weakly_canonical(out, e1), s = fs::weakly_canonical(src, e2);
  if (e1 || e2 || o.empty()) return false;
  auto first_empty = [](const fs::path& p) {  // "a/b/" has an empty last element
    auto it = p.end();
    return it != p.begin() && (--it)->empty() ? it : p.end();
  };
  const auto o_end = first_empty(o);
  return std::mismatch(o.begin(), o_end, s.begin(), first_empty(s)).first == o_end;
}

/// OUT.tmp-PID folders of packs into OUT whose process is gone (SIGKILL, a crash, the machine
/// going down): removed, and said so, instead of left to fill the disk.
void remove_stale_temps(const std::string& out) {
  std::error_code ec;
  const fs::path target = fs::path(out).lexically_normal();
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    if (::kill(std::stoi(pid), 0) == 0 || errno != ESRCH) continue;  // still packing (or not ours to judge)
    fs::remove_all(e.path(), ec);
    std::fprintf(stderr, "%s: removed %s, left by a pack that did not finish (pid %s)\n", kProgram, e.path().c_str(),
                 pid.c_str());
  }
}

int pack(const Options& o) {
  std::error_code ec;
  if (holds_source(o.out, o.src)) {
    std::fprintf(stderr, "%s: OUT %s is SRC %s or holds it: replacing it would delete the source\n", kProgram, o.out.c_str(),
                 o.src.c_str());
    return 2;
  }
  if (fs::exists(o.out, ec) && !o.force) {
    std::fprintf(stderr, "%s: %s exists: pass --force to replace it\n", kProgram, o.out.c_str());
    return 2;
  }
  // The source, as the loader would see it.
  std::unique_ptr<datasets::ImageDataset> src;
  std::vector<std::string> classes;
  datasets::ImageDatasetOptions io;
  io.reader_threads = 0;
  if (fs::is_directory(o.src, ec)) {
    datasets::ImageFolderOptions fo;
    fo.reader_threads = 0;
    auto folder = std::make_unique<datasets::ImageFolder>(o.src, fo);
    for (const auto& e : folder->scan_errors()) std::fprintf(stderr, "%s: skipped by the scan: %s: %s\n", kProgram, e.path.c_str(), e.reason.c_str());
    classes = folder->classes();
    src = std::move(folder);
  } else {
    auto list = std::make_unique<datasets::FileListDataset>(o.src, io);
    for (int64_t c = 0; c < list->num_classes(); ++c) classes.push_back(std::to_string(c));
    src = std::move(list);
  }
  const size_t n = src->size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  if (o.order == "shuffled") {
    datasets::Rng rng(datasets::derive_seed(o.seed, 0, 0x5041434b));
    rng.shuffle(order.begin(), order.end());
  }

  remove_stale_temps(o.out);
  TempDir tmp{o.out + ".tmp-" + std::to_string(::getpid())};
  fs::create_directories(tmp.path);
  datasets::DecodeOptions dopt;
  dopt.max_pixels = o.max_pixels;
  const datasets::ImageDecoder dec(dopt);
  // No more threads than images: --jobs 100000 is not 100000 threads.
  const int jobs = static_cast<int>(std::clamp<size_t>(
      o.jobs > 0 ? static_cast<size_t>(o.jobs) : std::max(1u, std::thread::hardware_concurrency()), 1, std::max<size_t>(n, 1)));

  struct ShardOut {
    datasets::detail::ShardIndex index;
    std::string tar, idx;
    size_t samples = 0;
  };
  std::vector<ShardOut> shards;
  std::unique_ptr<TarWriter> writer;
  uint64_t shard_bytes = 0;
  size_t reencoded = 0, packed = 0;
  std::vector<std::pair<std::string, std::string>> bad;
  std::vector<size_t> class_counts(classes.size(), 0);
  auto close_shard = [&] {
    if (!writer) return;
    const auto [bytes, digest] = writer->finish();
    shards.back().index.tar_bytes = bytes;
    shards.back().index.tar_digest = digest;
    writer.reset();
  };
  Progress progress(o.quiet, n);
  const auto t0 = Clock::now();
  const size_t chunk = static_cast<size_t>(jobs) * 32;
  std::vector<Packed> results;
  for (size_t start = 0; start < n; start += chunk) {
    if (examples::g_stop_signal != 0) {
      std::fprintf(stderr, "\n%s: interrupted: nothing written\n", kProgram);
      return 130;
    }
    const size_t end = std::min(n, start + chunk);
    results.assign(end - start, Packed{});
    std::atomic<size_t> next{start};
    std::exception_ptr failure;
    std::mutex failure_mu;
    auto work = [&] {
      for (size_t k; (k = next.fetch_add(1)) < end;) {
        try {
          results[k - start] = pack_one(src->path(order[k]), o, dec);
        } catch (...) {
          std::lock_guard<std::mutex> lock(failure_mu);
          if (!failure) failure = std::current_exception();
        }
      }
    };
    std::vector<std::thread> threads;
    try {
      for (int t = 1; t < jobs; ++t) threads.emplace_back(work);
    } catch (const std::system_error& e) {
      // A thread the system refuses (ulimit -v, -u): join those started rather than let the
      // vector of joinable threads call std::terminate, which would leave OUT.tmp-PID behind.
      next = end;
      for (auto& t : threads) t.join();
      throw ResourceError(std::string("--jobs ") + std::to_string(jobs) + ": cannot start thread " +
                              std::to_string(threads.size() + 1) + ": " + e.what() + " (try a smaller --jobs)",
                          e.code().value(), "");
    }
    work();
    for (auto& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
    // In order, so the bytes do not depend on --jobs.
    for (size_t k = start; k < end; ++k) {
      Packed& p = results[k - start];
      const size_t i = order[k];
      const std::string path = src->path(i);
      if (!p.error.empty()) {
        bad.emplace_back(path, p.error);
        continue;
      }
      const uint64_t member_bytes = 3 * 512 + ((p.bytes.size() + 511) / 512) * 512;  // + the .cls member
      if (!writer || (shard_bytes > 0 && shard_bytes + member_bytes > o.shard_size)) {
        close_shard();
        shards.emplace_back();
        shards.back().tar = shard_name(shards.size() - 1, "tar");
        shards.back().idx = shard_name(shards.size() - 1, "idx");
        writer = std::make_unique<TarWriter>((fs::path(tmp.path) / shards.back().tar).string());
        shard_bytes = 0;
      }
      const std::string key = datasets::detail::key_of(packed);
      const int64_t label = src->label(i);
      datasets::detail::ShardEntry e;
      e.offset = writer->add(key + "." + p.ext, p.bytes.data(), p.bytes.size());
      const std::string cls = std::to_string(label);
      writer->add(key + ".cls", reinterpret_cast<const uint8_t*>(cls.data()), cls.size());
      e.size = p.bytes.size();
      e.label = label;
      e.width = p.width;
      e.height = p.height;
      e.key = key;
      e.ext = p.ext;
      e.name = fs::path(path).lexically_relative(o.src).string();
      if (e.name.empty() || e.name.rfind("..", 0) == 0) e.name = path;
      shards.back().index.entries.push_back(std::move(e));
      ++shards.back().samples;
      shard_bytes += member_bytes;
      if (label >= 0 && static_cast<size_t>(label) < class_counts.size()) ++class_counts[static_cast<size_t>(label)];
      reencoded += p.reencoded ? 1 : 0;
      ++packed;
    }
    progress.update(end, shards.size(), reencoded, bad.size());
  }
  close_shard();
  progress.update(n, shards.size(), reencoded, bad.size(), true);
  if (packed == 0) {
    std::fprintf(stderr, "%s: no image of %s could be packed (%zu bad)\n", kProgram, o.src.c_str(), bad.size());
    return 1;
  }

  // The dataset id ties every index to this manifest.
  json options = {{"shard_size", o.shard_size}, {"max_short_side", o.max_short_side}, {"quality", o.quality},
                  {"order", o.order}, {"seed", o.seed}};
  // A name that is not UTF-8 (a class folder "cl\xff") shows as U+FFFD rather than failing the pack.
  constexpr auto kReplace = json::error_handler_t::replace;
  uint64_t id = core::fnv1a64(json(classes).dump(-1, ' ', false, kReplace));
  id = core::fnv1a64(options.dump(-1, ' ', false, kReplace), id);
  for (const ShardOut& s : shards) id = core::fnv1a64(core::hex64(s.index.tar_digest), id);
  json jshards = json::array();
  uint64_t total_bytes = 0;
  for (ShardOut& s : shards) {
    s.index.dataset_id = id;
    const std::vector<uint8_t> enc = datasets::detail::encode_index(s.index);
    write_file((fs::path(tmp.path) / s.idx).string(), std::string_view(reinterpret_cast<const char*>(enc.data()), enc.size()));
    total_bytes += s.index.tar_bytes + enc.size();
    jshards.push_back({{"tar", s.tar}, {"index", s.idx}, {"samples", s.samples}, {"bytes", s.index.tar_bytes},
                       {"digest", core::hex64(s.index.tar_digest)}});
  }
  const json manifest = {{"format", datasets::detail::kManifestFormat},
                         {"version", 1},
                         {"dataset_id", core::hex64(id)},
                         {"samples", packed},
                         {"classes", classes},
                         {"class_counts", class_counts},
                         {"shards", jshards},
                         {"options", options},
                         {"reencoded", reencoded},
                         {"bad_files", bad.size()}};
  write_file((fs::path(tmp.path) / datasets::detail::kManifestName).string(), manifest.dump(1, ' ', false, kReplace) + "\n");
  if (!bad.empty()) {
    std::string tsv;
    for (const auto& [p, why] : bad) tsv += p + "\t" + why + "\n";
    write_file((fs::path(tmp.path) / "bad_files.tsv").string(), tsv);
  }
  // Swap in atomically; an old OUT (with --force) goes only once the new one is in place.
  // Without --force an OUT that appeared while packing (another ringloader-pack into the same
  // OUT) is not replaced either: RENAME_NOREPLACE makes the check and the rename one step.
  std::string old;
  if (!o.force) {
    if (::renameat2(AT_FDCWD, tmp.path.c_str(), AT_FDCWD, o.out.c_str(), RENAME_NOREPLACE) != 0) {
      const int err = errno;
      if (err == EEXIST) {
        std::fprintf(stderr, "%s: %s appeared while packing (another ringloader-pack?): left as it is; pass --force to replace it\n",
                     kProgram, o.out.c_str());
        return 2;
      }
      throw Error(o.out + ": renameat2 from " + tmp.path + ": " + std::strerror(err));
    }
  } else {
    if (fs::exists(o.out, ec)) {
      old = o.out + ".old-" + std::to_string(::getpid());
      fs::rename(o.out, old);
    }
    fs::rename(tmp.path, o.out);
  }
  tmp.keep = true;
  if (!old.empty()) fs::remove_all(old, ec);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!o.quiet) {
    std::fprintf(stderr, "%s: %zu images -> %zu shards in %s, %.1f MB, %zu re-encoded, %.1f s (%.0f images/s)\n", kProgram, packed,
                 shards.size(), o.out.c_str(), static_cast<double>(total_bytes) / 1e6, reencoded, secs,
                 static_cast<double>(n) / secs);
  }
  for (const auto& [p, why] : bad) std::fprintf(stderr, "%s: left out %s: %s\n", kProgram, p.c_str(), why.c_str());
  if (!bad.empty()) std::fprintf(stderr, "%s: %zu bad files, listed in %s/bad_files.tsv\n", kProgram, bad.size(), o.out.c_str());
  std::printf("%s\n", examples::dump_json({{"images", packed}, {"shards", shards.size()}, {"bytes", total_bytes},
                                           {"reencoded", reencoded}, {"bad_files", bad.size()}, {"seconds", secs},
                                           {"images_per_second", static_cast<double>(n) / secs}})
                          .c_str());
  return bad.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pack an image folder or file list into WebDataset-compatible tar shards with an index", kProgram};
  app.footer(
      "Examples:\n"
      "  ringloader-pack /data/train /data/train-packed --max-short-side 256\n"
      "  ringloader-pack list.tsv packed --shard-size 64M --order source\n"
      "  ringloader-pack --index shards/*.tar\n"
      "Read the result with ringloader-imagefolder, ringloader-bench, datasets::Shards or rl.Shards.");
  Options o;
  std::string shard_size = "256M";
  app.add_option("src", o.src, "Image folder (ROOT/<class>/**/<image>) or file list (path<TAB>label)")->type_name("SRC");
  app.add_option("out", o.out, "Output folder (must not exist, unless --force)")->type_name("OUT");
  app.add_option("--index", o.index_tars, "Instead: write a .idx beside each of these tars (made by tar or webdataset)")
      ->type_name("TAR...");
  app.add_option("--shard-size", shard_size, "About this many bytes per shard (K, M, G: powers of 1024)")->capture_default_str();
  app.add_option("--max-short-side", o.max_short_side, "Resize and re-encode images whose shorter side exceeds S (0: never)")
      ->type_name("S")->check(CLI::NonNegativeNumber);
  app.add_option("--quality", o.quality, "JPEG quality of re-encoded images")->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--jobs", o.jobs, "Threads (default: one per core)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "Seed of the sample order")->capture_default_str();
  app.add_option("--order", o.order, "shuffled (seeded) or source (the folder's order)")
      ->capture_default_str()->check(CLI::IsMember({"shuffled", "source"}));
  app.add_option("--max-pixels", o.max_pixels, "Refuse images with more pixels than this")->capture_default_str();
  app.add_flag("--force", o.force, "Replace OUT if it exists");
  app.add_flag("-q,--quiet", o.quiet, "No progress output");
  examples::parse_or_exit(app, argc, argv, kProgram);
  try {
    char* end = nullptr;
    const double v = std::strtod(shard_size.c_str(), &end);
    const std::string unit = end ? end : "";
    const double mul = unit.empty() ? 1 : unit == "K" ? 1 << 10 : unit == "M" ? 1 << 20 : unit == "G" ? 1 << 30 : -1;
    // inf, nan and sizes past 2^62 bytes would be undefined as uint64_t; under a byte is none.
    if (end == shard_size.c_str() || mul < 0 || !std::isfinite(v) || v * mul < 1 || v * mul > 0x1p62) {
      std::fprintf(stderr, "%s: --shard-size %s: expected a size such as 256M (see --help)\n", kProgram, shard_size.c_str());
      return 2;
    }
    o.shard_size = static_cast<uint64_t>(v * mul);
    if (!o.index_tars.empty()) {
      if (!o.src.empty()) {
        std::fprintf(stderr, "%s: --index takes tars only, not SRC OUT (see --help)\n", kProgram);
        return 2;
      }
      return index_tars(o);
    }
    if (o.src.empty() || o.out.empty()) {
      std::fprintf(stderr, "%s: SRC and OUT are required (see --help)\n", kProgram);
      return 2;
    }
    examples::install_stop_handlers();
    return pack(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, examples::one_line(e.what()).c_str());
    return 2;
  }
}
