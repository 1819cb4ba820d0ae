#include "datasets/detail/file_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/error.hpp"
#include "core/posix_error.hpp"
#include "core/unique_handle.hpp"
#include "datasets/detail/resource_error.hpp"

namespace ringloader::datasets::detail {

const char* file_type_name(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFIFO: return "FIFO";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFLNK: return "symbolic link";
    default: return "special file";
  }
}

namespace {

// EMFILE, ENOMEM, ... are the system's shortage, not the file's: a ResourceError, which the
// loader retries or raises, where a DecodeError would drop a good sample as a bad file.
[[noreturn]] void throw_errno(const std::string& path, const char* call, int err) {
  if (core::is_resource_errno(err)) throw resource_error(path, std::string("cannot read file: ") + call, err);
  throw DecodeError(path, std::string("cannot read file: ") + call + ": " + std::strerror(err));
}

std::string human_bytes(uint64_t n) {
  return std::to_string(n) + " bytes";
}

}  // namespace

std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes, int delay_ms) {
  if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  // stat (following symlinks) before open: a FIFO must never be opened for reading.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_errno(path, "stat", errno);
  if (!S_ISREG(st.st_mode)) {
    throw DecodeError(path, std::string("not a regular file (") + file_type_name(st.st_mode) + "): refusing to open it");
  }
  // O_NONBLOCK is the second guard: should the path be swapped for a FIFO between stat and
  // open, open() returns at once instead of waiting for a writer.
  core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) throw_errno(path, "open", errno);
  if (::fstat(fd.get(), &st) != 0) throw_errno(path, "fstat", errno);
  if (!S_ISREG(st.st_mode)) {
    throw DecodeError(path, std::string("not a regular file (") + file_type_name(st.st_mode) + "): refusing to read it");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) throw DecodeError(path, "empty file (0 bytes)");
  if (size > max_bytes) {
    throw DecodeError(path, "file is " + human_bytes(size) + ", more than the limit of " + human_bytes(max_bytes) +
                                " (option max_file_bytes)");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, "read", errno);
    }
    if (n == 0) break;  // the file shrank since fstat
    done += static_cast<size_t>(n);
  }
  if (done == 0) throw DecodeError(path, "empty file (0 bytes read)");
  bytes.resize(done);
  return bytes;
}

}  // namespace ringloader::datasets::detail
