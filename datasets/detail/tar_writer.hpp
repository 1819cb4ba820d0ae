#pragma once
// TarWriter: one ustar shard written through libarchive, unbuffered, counting every byte so the
// index knows where each member's data starts and hashing them for the manifest; write_file():
// a small file written whole and fsync'd. Used by ShardWriter (datasets/shard_writer.hpp) alone.
// Internal to datasets/.
//
//   detail::TarWriter w(dir + "/shard-000000.tar");
//   uint64_t at = w.add("000000000.jpg", bytes.data(), bytes.size());   // where the data starts
//   auto [size, digest] = w.finish();                                   // FNV-1a of the tar
//
// Main process; one thread at a time. Members carry mtime, uid and gid 0: the same members give
// the same bytes. Errors are Error naming the file and the failing call.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "core/unique_handle.hpp"

struct archive;

namespace ringloader::datasets::detail {

class TarWriter {
 public:
  /// Creates (or truncates) `path`.
  explicit TarWriter(const std::string& path);
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  ~TarWriter();

  /// Adds a member; returns the offset of its data.
  uint64_t add(const std::string& name, const uint8_t* data, size_t size);
  /// Ends the archive and fsyncs it; returns its size and FNV-1a digest.
  std::pair<uint64_t, uint64_t> finish();

 private:
  static ssize_t write_cb(archive*, void* self, const void* buf, size_t n);
  [[noreturn]] void fail(const char* call);

  std::string path_;
  core::UniqueFd fd_;
  archive* a_ = nullptr;
  uint64_t bytes_ = 0;   ///< written so far
  uint64_t digest_;      ///< FNV-1a of the bytes_ written
  int error_ = 0;        ///< errno of a failed write, for fail()
};

/// Writes `bytes` to `path` (created or truncated) and fsyncs it. Throws Error naming the path.
void write_file(const std::string& path, std::string_view bytes);

}  // namespace ringloader::datasets::detail
