#pragma once
// read_file(): the one way ringloader reads an image file's bytes. It never opens anything
// but a regular file (a FIFO opened for reading would block forever; a device could stream
// without end), never reads more than a stated limit, and turns every failure into a
// one-line DecodeError naming the file and the failing system call.
//
//   std::vector<uint8_t> bytes = detail::read_file("/data/cat/1.jpg", 256 << 20);
//
// Stateless and thread-safe; safe in forked workers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringloader::datasets::detail {

/// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;  ///< -1 when empty
};

/// "FIFO", "directory", "socket", ... for a st_mode that is not a regular file.
const char* file_type_name(unsigned mode);

/// All bytes of the regular file `path` (symlinks followed). Throws DecodeError(path, reason)
/// if it is missing, not a regular file, unreadable, larger than `max_bytes`, or a read fails.
/// `delay_ms` > 0 sleeps that long first: an injected latency for benchmarks.
std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes, int delay_ms = 0);

}  // namespace ringloader::datasets::detail
