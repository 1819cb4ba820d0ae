#pragma once
// posix_error(): the one way ringloader turns a failed system call into an exception that
// names the call, what it was called on, and strerror(errno).
//
//   if (::ftruncate(fd, n) != 0) throw core::posix_error(errno, "ftruncate(" + path + ")");
//   // what(): "ftruncate(/dev/shm/x): No space left on device"
#include <cerrno>
#include <string>
#include <system_error>

namespace ringloader::core {

/// A std::system_error for error number `err` whose message starts with `call`.
[[nodiscard]] inline std::system_error posix_error(int err, const std::string& call) {
  return std::system_error(err, std::generic_category(), call);
}

/// Is `err` the system running short of a resource (descriptors, memory, processes) rather
/// than something wrong with the input? Such a failure is retried or raised, never blamed on
/// a file or a sample.
inline bool is_resource_errno(int err) {
  return err == EMFILE || err == ENFILE || err == ENOMEM || err == EAGAIN || err == ENOBUFS || err == ENOSPC;
}

}  // namespace ringloader::core
