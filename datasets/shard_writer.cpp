#include "datasets/shard_writer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>
#include <utility>

#include "core/error.hpp"
#include "core/fnv.hpp"
#include "core/unique_handle.hpp"
#include "datasets/detail/pack_image.hpp"
#include "datasets/detail/shard_format.hpp"
#include "datasets/detail/tar_writer.hpp"
#include "datasets/file_list_dataset.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/rng.hpp"

namespace ringloader::datasets {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string shard_name(size_t i, const char* ext) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "shard-%06zu.%s", i, ext);
  return buf;
}

std::string_view as_chars(const std::vector<uint8_t>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

// Removes the half-written folder unless disarmed: a failed or interrupted write leaves nothing.
struct TempDir {
  std::string path;
  bool keep = false;
  ~TempDir() {
    std::error_code ec;
    if (!keep && !path.empty()) fs::remove_all(path, ec);
  }
};

// True if `out` is `src` or a folder holding it: replacing OUT (force) would delete the source.
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

// OUT.tmp-PID folders of writes into OUT whose process is gone (SIGKILL, a crash, the machine
// going down): removed, and said so, instead of left to fill the disk.
void remove_stale_temps(const std::string& out, const std::function<void(const std::string&)>& log) {
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
    if (log) log("removed " + e.path().string() + ", left by a pack that did not finish (pid " + pid + ")");
  }
}

// The source as the loader would see it, and its class names.
std::unique_ptr<ImageDataset> open_source(const std::string& src, std::vector<std::string>& classes,
                                          const std::function<void(const std::string&)>& log) {
  std::error_code ec;
  if (fs::is_directory(src, ec)) {
    ImageFolderOptions fo;
    fo.reader_threads = 0;
    auto folder = std::make_unique<ImageFolder>(src, fo);
    for (const auto& e : folder->scan_errors()) {
      if (log) log("skipped by the scan: " + e.path + ": " + e.reason);
    }
    classes = folder->classes();
    return folder;
  }
  ImageDatasetOptions io;
  io.reader_threads = 0;
  auto list = std::make_unique<FileListDataset>(src, io);
  for (int64_t c = 0; c < list->num_classes(); ++c) classes.push_back(std::to_string(c));
  return list;
}

// Packs images [start, end) of `order` on `jobs` threads (this one included) into `results`.
void pack_chunk(const ImageDataset& src, const std::vector<size_t>& order, size_t start, size_t end, int jobs,
                const ShardWriterOptions& o, const ImageDecoder& dec, std::vector<detail::PackedImage>& results) {
  results.assign(end - start, detail::PackedImage{});
  std::atomic<size_t> next{start};
  std::exception_ptr failure;
  std::mutex failure_mu;
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1)) < end;) {
      try {
        results[k - start] = detail::pack_image(src.path(order[k]), o.max_short_side, o.quality, dec);
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
}

// Renames the finished `tmp` to `out`; an old OUT (force) goes only once the new one is in
// place. Without force an OUT that appeared while packing (another writer into the same OUT)
// is not replaced either: RENAME_NOREPLACE makes the check and the rename one step.
void swap_in(TempDir& tmp, const std::string& out, bool force) {
  std::error_code ec;
  std::string old;
  if (!force) {
    if (::renameat2(AT_FDCWD, tmp.path.c_str(), AT_FDCWD, out.c_str(), RENAME_NOREPLACE) != 0) {
      const int err = errno;
      if (err == EEXIST) {
        throw ConfigError(out + " appeared while packing (another ringloader-pack?): left as it is; pass --force to replace it");
      }
      throw Error(out + ": renameat2 from " + tmp.path + ": " + std::strerror(err));
    }
  } else {
    if (fs::exists(out, ec)) {
      old = out + ".old-" + std::to_string(::getpid());
      fs::rename(out, old);
    }
    fs::rename(tmp.path, out);
  }
  tmp.keep = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace

ShardWriter::ShardWriter(std::string out, ShardWriterOptions options) : out_(std::move(out)), options_(std::move(options)) {}

PackResult ShardWriter::write(const std::string& src_path) {
  const ShardWriterOptions& o = options_;
  if (o.shard_size < 1) throw ConfigError("shard_size must be at least 1 byte, got 0");
  if (o.quality < 1 || o.quality > 100) throw ConfigError("quality must be in 1..100, got " + std::to_string(o.quality));
  if (o.max_short_side < 0) throw ConfigError("max_short_side must be >= 0, got " + std::to_string(o.max_short_side));
  if (o.jobs < 0) throw ConfigError("jobs must be >= 0, got " + std::to_string(o.jobs));
  std::error_code ec;
  if (holds_source(out_, src_path)) {
    throw ConfigError("OUT " + out_ + " is SRC " + src_path + " or holds it: replacing it would delete the source");
  }
  if (fs::exists(out_, ec) && !o.force) throw ConfigError(out_ + " exists: pass --force to replace it");
  std::vector<std::string> classes;
  const std::unique_ptr<ImageDataset> src = open_source(src_path, classes, o.log);
  const size_t n = src->size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  if (o.shuffle) {
    Rng rng(derive_seed(o.seed, 0, 0x5041434b));
    rng.shuffle(order.begin(), order.end());
  }

  remove_stale_temps(out_, o.log);
  TempDir tmp{out_ + ".tmp-" + std::to_string(::getpid())};
  fs::create_directories(tmp.path);
  DecodeOptions dopt;
  dopt.max_pixels = o.max_pixels;
  const ImageDecoder dec(dopt);
  // No more threads than images: jobs = 100000 is not 100000 threads.
  const int jobs = static_cast<int>(std::clamp<size_t>(
      o.jobs > 0 ? static_cast<size_t>(o.jobs) : std::max(1u, std::thread::hardware_concurrency()), 1, std::max<size_t>(n, 1)));

  struct ShardOut {
    detail::ShardIndex index;
    std::string tar, idx;
    size_t samples = 0;
  };
  std::vector<ShardOut> shards;
  std::unique_ptr<detail::TarWriter> writer;
  uint64_t shard_bytes = 0;
  PackResult r;
  r.total = n;
  std::vector<size_t> class_counts(classes.size(), 0);
  auto close_shard = [&] {
    if (!writer) return;
    const auto [bytes, digest] = writer->finish();
    shards.back().index.tar_bytes = bytes;
    shards.back().index.tar_digest = digest;
    writer.reset();
  };
  const auto t0 = Clock::now();
  auto report = [&](size_t done, bool last) {
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (o.progress) o.progress(PackProgress{done, n, shards.size(), r.reencoded, r.bad_files.size(), s, last});
  };
  const size_t chunk = static_cast<size_t>(jobs) * 32;
  std::vector<detail::PackedImage> results;
  for (size_t start = 0; start < n; start += chunk) {
    if (o.interrupt_check) o.interrupt_check();
    const size_t end = std::min(n, start + chunk);
    pack_chunk(*src, order, start, end, jobs, o, dec, results);
    // In order, so the bytes do not depend on jobs.
    for (size_t k = start; k < end; ++k) {
      detail::PackedImage& p = results[k - start];
      const size_t i = order[k];
      const std::string path = src->path(i);
      if (!p.error.empty()) {
        r.bad_files.push_back({path, p.error});
        continue;
      }
      const uint64_t member_bytes = 3 * 512 + ((p.bytes.size() + 511) / 512) * 512;  // + the .cls member
      if (!writer || (shard_bytes > 0 && shard_bytes + member_bytes > o.shard_size)) {
        close_shard();
        shards.emplace_back();
        shards.back().tar = shard_name(shards.size() - 1, "tar");
        shards.back().idx = shard_name(shards.size() - 1, "idx");
        writer = std::make_unique<detail::TarWriter>((fs::path(tmp.path) / shards.back().tar).string());
        shard_bytes = 0;
      }
      const std::string key = detail::key_of(r.images);
      const int64_t label = src->label(i);
      detail::ShardEntry e;
      e.offset = writer->add(key + "." + p.ext, p.bytes.data(), p.bytes.size());
      const std::string cls = std::to_string(label);
      writer->add(key + ".cls", reinterpret_cast<const uint8_t*>(cls.data()), cls.size());
      e.size = p.bytes.size();
      e.label = label;
      e.width = p.width;
      e.height = p.height;
      e.key = key;
      e.ext = p.ext;
      e.name = fs::path(path).lexically_relative(src_path).string();
      if (e.name.empty() || e.name.rfind("..", 0) == 0) e.name = path;
      shards.back().index.entries.push_back(std::move(e));
      ++shards.back().samples;
      shard_bytes += member_bytes;
      if (label >= 0 && static_cast<size_t>(label) < class_counts.size()) ++class_counts[static_cast<size_t>(label)];
      r.reencoded += p.reencoded ? 1 : 0;
      ++r.images;
    }
    report(end, false);
  }
  close_shard();
  r.shards = shards.size();
  report(n, true);
  if (r.images == 0) return r;  // nothing to write; tmp goes

  // The dataset id ties every index to this manifest.
  json options = {{"shard_size", o.shard_size}, {"max_short_side", o.max_short_side}, {"quality", o.quality},
                  {"order", o.shuffle ? "shuffled" : "source"}, {"seed", o.seed}};
  // A name that is not UTF-8 (a class folder "cl\xff") shows as U+FFFD rather than failing the pack.
  constexpr auto kReplace = json::error_handler_t::replace;
  uint64_t id = core::fnv1a64(json(classes).dump(-1, ' ', false, kReplace));
  id = core::fnv1a64(options.dump(-1, ' ', false, kReplace), id);
  for (const ShardOut& s : shards) id = core::fnv1a64(core::hex64(s.index.tar_digest), id);
  json jshards = json::array();
  for (ShardOut& s : shards) {
    s.index.dataset_id = id;
    const std::vector<uint8_t> enc = detail::encode_index(s.index);
    detail::write_file((fs::path(tmp.path) / s.idx).string(), as_chars(enc));
    r.bytes += s.index.tar_bytes + enc.size();
    jshards.push_back({{"tar", s.tar}, {"index", s.idx}, {"samples", s.samples}, {"bytes", s.index.tar_bytes},
                       {"digest", core::hex64(s.index.tar_digest)}});
  }
  const json manifest = {{"format", detail::kManifestFormat},
                         {"version", 1},
                         {"dataset_id", core::hex64(id)},
                         {"samples", r.images},
                         {"classes", classes},
                         {"class_counts", class_counts},
                         {"shards", jshards},
                         {"options", options},
                         {"reencoded", r.reencoded},
                         {"bad_files", r.bad_files.size()}};
  detail::write_file((fs::path(tmp.path) / detail::kManifestName).string(), manifest.dump(1, ' ', false, kReplace) + "\n");
  if (!r.bad_files.empty()) {
    std::string tsv;
    for (const auto& b : r.bad_files) tsv += b.path + "\t" + b.reason + "\n";
    detail::write_file((fs::path(tmp.path) / "bad_files.tsv").string(), tsv);
  }
  swap_in(tmp, out_, o.force);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

TarIndexed write_tar_index(const std::string& tar) {
  core::UniqueFd fd(::open(tar.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw Error(tar + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || st.st_size == 0) throw Error(tar + ": empty or unreadable");
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) throw Error(tar + ": mmap: " + std::strerror(errno));
  core::UniqueMapping map({static_cast<std::byte*>(p), static_cast<size_t>(st.st_size)});
  const std::span<const uint8_t> bytes(static_cast<const uint8_t*>(p), static_cast<size_t>(st.st_size));
  detail::ShardIndex idx =
      detail::scan_tar(bytes, tar, [](std::span<const uint8_t> b, const std::string& name) -> detail::ProbedSize {
        try {
          const auto info = ImageDecoder().probe(b, name);
          return {static_cast<uint32_t>(info.width), static_cast<uint32_t>(info.height)};
        } catch (const DecodeError&) {
          return {0, 0};
        }
      });
  idx.tar_digest = core::fnv1a64(std::string_view(reinterpret_cast<const char*>(p), bytes.size()));
  TarIndexed out{fs::path(tar).replace_extension(".idx").string(), idx.entries.size()};
  const std::string tmp = out.index + ".tmp-" + std::to_string(::getpid());
  detail::write_file(tmp, as_chars(detail::encode_index(idx)));
  fs::rename(tmp, out.index);
  return out;
}

}  // namespace ringloader::datasets
