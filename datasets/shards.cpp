#include "datasets/shards.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "core/error.hpp"
#include "core/fnv.hpp"
#include "core/posix_error.hpp"
#include "datasets/detail/file_reader.hpp"
#include "datasets/detail/resource_error.hpp"
#include "datasets/detail/shard_format.hpp"
#include "datasets/image_decoder.hpp"

namespace ringloader::datasets {

namespace fs = std::filesystem;

namespace {

// Width and height of an image inside a foreign tar, {0, 0} if it does not probe (get()
// then reports it, as for a bad file).
detail::ProbedSize probe_size(std::span<const uint8_t> bytes, const std::string& name) {
  try {
    const ImageInfo info = ImageDecoder().probe(bytes, name);
    return {static_cast<uint32_t>(info.width), static_cast<uint32_t>(info.height)};
  } catch (const DecodeError&) {
    return {0, 0};
  }
}

struct OpenShard {
  core::UniqueFd fd;
  uint64_t size = 0;
  core::UniqueMapping map;  ///< only to scan a tar without an index, at open
};

/// Opens the shard; maps it only if `map` (a scan of a tar without an index reads it whole).
OpenShard open_shard(const std::string& path, bool map) {
  core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (core::is_resource_errno(err)) throw detail::resource_error(path, "cannot open shard: open", err);
    throw DecodeError(path, std::string("cannot open shard: ") + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw DecodeError(path, std::string("fstat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw DecodeError(path, std::string("not a regular file (") + detail::file_type_name(st.st_mode) + ")");
  if (st.st_size == 0) throw DecodeError(path, "empty shard (0 bytes)");
  if (!map) return {std::move(fd), static_cast<uint64_t>(st.st_size), {}};
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    if (core::is_resource_errno(err)) throw detail::resource_error(path, "cannot map shard: mmap", err);
    throw DecodeError(path, std::string("mmap: ") + std::strerror(err));
  }
  return {std::move(fd), static_cast<uint64_t>(st.st_size),
          core::UniqueMapping({static_cast<std::byte*>(p), static_cast<size_t>(st.st_size)})};
}

/// Up to `len` bytes at `at`, with pread (a mapping would raise SIGBUS if the file shrank
/// meanwhile): fewer only where the file ends. A failed read is a ResourceError or DecodeError
/// naming `what`.
size_t pread_full(int fd, uint8_t* dst, size_t len, uint64_t at, const std::string& what) {
  size_t got = 0;
  while (got < len) {
    const ssize_t n = ::pread(fd, dst + got, len - got, static_cast<off_t>(at + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      if (core::is_resource_errno(err)) throw detail::resource_error(what, "cannot read shard: pread", err);
      throw DecodeError(what, std::string("cannot read shard: ") + std::strerror(err));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

/// The 512-byte tar header before a member at `offset`; a DecodeError if the file ends first.
std::array<uint8_t, 512> read_header(int fd, uint64_t offset, const std::string& path) {
  std::array<uint8_t, 512> h{};
  if (pread_full(fd, h.data(), h.size(), offset - 512, path) < h.size()) {
    throw DecodeError(path, "the shard ends before the header at byte " + std::to_string(offset - 512) +
                                " (changed while being opened?)");
  }
  return h;
}

}  // namespace

Shards::Shards(const std::string& path, ShardsOptions options) : ImageDataset(std::move(options), ""), root_(path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw ConfigError(path + ": no such file or folder (expected packed shards)");
  int64_t max_label = -1;
  if (fs::is_directory(st) && fs::exists(fs::path(path) / detail::kManifestName)) {
    const std::string mpath = (fs::path(path) / detail::kManifestName).string();
    const std::vector<uint8_t> bytes = detail::read_file(mpath, size_t{256} << 20);
    nlohmann::json m;
    try {
      m = nlohmann::json::parse(bytes.begin(), bytes.end());
      if (m.value("format", "") != detail::kManifestFormat) {
        throw DecodeError(mpath, "not a ringloader-shards manifest (format \"" + m.value("format", "") + "\")");
      }
      if (m.value("version", 0) != 1) throw DecodeError(mpath, "manifest version " + m["version"].dump() + " (this ringloader reads 1)");
      packed_ = true;
      dataset_id_ = m.at("dataset_id").get<std::string>();
      classes_ = m.at("classes").get<std::vector<std::string>>();
      // All of it hex and within 64 bits: std::stoull threw out_of_range (uncaught) on a longer
      // id and read "12zz" as 0x12.
      uint64_t id = 0;
      const char* id_end = dataset_id_.data() + dataset_id_.size();
      const auto [id_stop, id_err] = std::from_chars(dataset_id_.data(), id_end, id, 16);
      if (dataset_id_.empty() || id_err != std::errc() || id_stop != id_end) throw std::invalid_argument("dataset_id");
      std::set<std::string> listed;
      for (const auto& s : m.at("shards")) {
        const std::string tar = (fs::path(path) / s.at("tar").get<std::string>()).string();
        if (!listed.insert(fs::weakly_canonical(tar, ec).string()).second) {
          throw DecodeError(mpath, "lists shard " + tar + " twice (its samples would be read twice)");
        }
        const size_t before = samples_.size();
        add_shard(tar, (fs::path(path) / s.at("index").get<std::string>()).string(), id);
        const size_t got = samples_.size() - before;
        if (got != s.at("samples").get<size_t>()) {
          throw DecodeError(tar, "holds " + std::to_string(got) + " samples, the manifest says " + s.at("samples").dump());
        }
      }
      if (samples_.size() != m.at("samples").get<size_t>()) {
        throw DecodeError(mpath, "lists " + m.at("samples").dump() + " samples, its shards hold " + std::to_string(samples_.size()));
      }
    } catch (const nlohmann::json::exception& e) {
      throw DecodeError(mpath, std::string("damaged manifest (") + e.what() + ")");
    } catch (const std::invalid_argument&) {
      throw DecodeError(mpath, "damaged manifest (dataset_id is not a 64-bit hex number)");
    }
  } else {
    std::vector<std::string> tars;
    if (fs::is_directory(st)) {
      for (const auto& e : fs::directory_iterator(path, ec)) {
        if (e.path().extension() == ".tar") tars.push_back(e.path().string());
      }
      std::sort(tars.begin(), tars.end());
      if (tars.empty()) throw ConfigError(path + ": no manifest.json and no .tar shard in this folder");
    } else {
      tars.push_back(path);
    }
    for (const std::string& tar : tars) {
      const std::string idx = fs::path(tar).replace_extension(".idx").string();
      add_shard(tar, fs::exists(idx) ? idx : "", 0);
    }
  }
  if (samples_.empty()) throw ConfigError(path + ": the shards hold no sample");
  for (size_t i = 0; i < size(); ++i) max_label = std::max<int64_t>(max_label, label(i));
  if (classes_.empty()) {
    for (int64_t c = 0; c <= max_label; ++c) classes_.push_back(std::to_string(c));
  } else if (max_label >= static_cast<int64_t>(classes_.size())) {
    throw DecodeError(root_, "a sample has label " + std::to_string(max_label) + ", the manifest names " +
                                 std::to_string(classes_.size()) + " classes");
  }
  mutable_index().finish();
  members_.finish();
}

void Shards::add_shard(const std::string& tar_path, const std::string& index_path, uint64_t expect_id) {
  OpenShard opened = open_shard(tar_path, index_path.empty());
  const uint64_t tar_size = opened.size;
  detail::ShardIndex idx;
  if (!index_path.empty()) {
    const std::vector<uint8_t> bytes = detail::read_file(index_path, size_t{1} << 30);
    idx = detail::decode_index(bytes, index_path);
    if (tar_size < idx.tar_bytes) {
      throw DecodeError(tar_path, "truncated shard: it ends at byte " + std::to_string(tar_size) + ", its index (" +
                                      index_path + ") says " + std::to_string(idx.tar_bytes));
    }
    if (tar_size != idx.tar_bytes) {
      throw DecodeError(tar_path, "is " + std::to_string(tar_size) + " bytes, its index " + index_path + " says " +
                                      std::to_string(idx.tar_bytes) + ": the index does not match this tar");
    }
    if (expect_id != 0 && idx.dataset_id != expect_id) {
      throw DecodeError(index_path, "belongs to another packed dataset (id " + core::hex64(idx.dataset_id) +
                                        ", the manifest says " + core::hex64(expect_id) + ")");
    }
    // The first and last members here; every member's header is checked when it is read.
    for (const size_t i : {size_t{0}, idx.entries.empty() ? size_t{0} : idx.entries.size() - 1}) {
      if (idx.entries.empty()) break;
      const detail::ShardEntry& e = idx.entries[i];
      std::string why;
      if (e.offset < 512 || e.offset > tar_size || e.size > tar_size - e.offset) {
        why = "the index places it at bytes " + std::to_string(e.offset) + "+" + std::to_string(e.size) +
              ", past the " + std::to_string(tar_size) + "-byte tar";
      } else {
        why = detail::check_tar_header(read_header(opened.fd.get(), e.offset, tar_path).data(), e.size,
                                       e.key + "." + e.ext);
      }
      if (!why.empty()) throw DecodeError(tar_path, "sample at byte " + std::to_string(e.offset) + ": " + why);
    }
  } else {
    // A tar without an index is scanned through a mapping (libarchive reads it in place).
    // Changing the file during this scan can still raise SIGBUS; an index avoids the scan.
    const core::UniqueMapping& map = opened.map;
    idx = detail::scan_tar(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(map.get().data), map.get().size),
                           tar_path, &probe_size);
  }
  const auto shard = static_cast<uint32_t>(fds_.size());
  for (const detail::ShardEntry& e : idx.entries) {
    if (e.label < 0 || e.label > INT32_MAX) {
      throw DecodeError(tar_path, "sample at byte " + std::to_string(e.offset) + " has label " + std::to_string(e.label));
    }
    if (e.offset < 512 || e.offset > tar_size || e.size > tar_size - e.offset) {  // fetch() reads the header before it
      throw DecodeError(tar_path, "the index places a sample at bytes " + std::to_string(e.offset) + "+" +
                                      std::to_string(e.size) + ", past the " + std::to_string(tar_size) + "-byte tar");
    }
    samples_.push_back({e.offset, e.size, shard});
    mutable_index().add(e.name, static_cast<int32_t>(e.label));
    members_.add(e.key + "." + e.ext, 0);
  }
  shard_paths_.push_back(tar_path);
  shard_sizes_.push_back(idx.entries.size());
  shard_bytes_.push_back(tar_size);
  fds_.push_back(std::move(opened.fd));  // the mapping ends here: samples are read with pread
}

std::string Shards::path(size_t index) const {
  const Sample& s = samples_.at(index);
  return shard_paths_[s.shard] + "@" + std::to_string(s.offset) + " (" + std::string(path_index().path(index)) + ")";
}

size_t Shards::total_bytes() const {
  size_t n = 0;
  for (const uint64_t b : shard_bytes_) n += b;
  return n;
}

void Shards::get(size_t index, SampleWriter& out) {
  if (options().read_delay_ms > 0) {
    std::lock_guard lock(read_mu_);
    if (read_epoch_ != out.epoch()) {  // a new epoch reads everything again
      read_epoch_ = out.epoch();
      read_pid_ = 0;
    }
  }
  ImageDataset::get(index, out);
}

void Shards::delay_first_read(const Sample& s) const {
  const uint64_t unit = ShardsOptions::kReadUnit;
  bool miss = false;
  {
    std::lock_guard lock(read_mu_);
    if (read_pid_ != ::getpid()) {  // a worker starts with nothing read
      read_pid_ = ::getpid();
      read_units_.assign(shard_bytes_.size(), {});
      for (size_t i = 0; i < shard_bytes_.size(); ++i) read_units_[i].assign(shard_bytes_[i] / unit + 1, false);
    }
    auto& units = read_units_[s.shard];
    for (uint64_t u = (s.offset - std::min<uint64_t>(s.offset, 512)) / unit; u <= (s.offset + s.size) / unit; ++u) {
      miss = miss || !units[u];
      units[u] = true;
    }
  }
  if (miss) std::this_thread::sleep_for(std::chrono::milliseconds(options().read_delay_ms));
}

ImageDataset::SampleBytes Shards::fetch(size_t index) const {
  if (options().read_delay_ms > 0) delay_first_read(samples_[index]);
  const Sample& s = samples_[index];
  if (s.size > options().max_file_bytes) {
    throw DecodeError(path(index), std::to_string(s.size) + " bytes, over max_file_bytes " + std::to_string(options().max_file_bytes));
  }
  // The member's 512-byte tar header, checked, then its bytes (s.offset >= 512: checked at open).
  const int fd = fds_[s.shard].get();
  auto read_at = [&](uint8_t* dst, size_t len, uint64_t at) {
    const size_t got = pread_full(fd, dst, len, at, path(index));
    if (got == len) return;
    struct stat st {};
    const std::string now = ::fstat(fd, &st) == 0 ? std::to_string(st.st_size) : std::to_string(at + got);
    throw DecodeError(path(index), "the shard ends at byte " + now + ", before this sample's " + std::to_string(s.size) +
                                       " bytes at " + std::to_string(s.offset) + " (it was " +
                                       std::to_string(shard_bytes_[s.shard]) + " bytes at open: changed while being read?)");
  };
  std::array<uint8_t, 512> header{};
  read_at(header.data(), header.size(), s.offset - 512);
  const std::string why = detail::check_tar_header(header.data(), s.size, members_.path(index));
  if (!why.empty()) throw DecodeError(path(index), why);
  SampleBytes b;
  b.owned.resize(s.size);
  read_at(b.owned.data(), b.owned.size(), s.offset);
  b.view = b.owned;
  return b;
}

}  // namespace ringloader::datasets
