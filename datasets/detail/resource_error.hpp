#pragma once
// resource_error(): the one way datasets/ reports a failure that is the system's, not the
// file's - too many open files, out of memory, no threads (core::is_resource_errno). It is a
// ResourceError, never a DecodeError: under on_error=skip a DecodeError drops the sample as a
// bad file, and a good file must not be dropped because the process ran short of descriptors.
//
//   if (fd < 0 && core::is_resource_errno(errno)) throw resource_error(path, "cannot read file: open", errno);
//   // what(): "/data/a.jpg: cannot read file: open: Too many open files (the system ran short
//   //          of a resource; not a bad file)"
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace ringloader::datasets::detail {

/// "<path>: <what>: strerror(err) (the system ran short of a resource; not a bad file)".
[[nodiscard]] inline ResourceError resource_error(const std::string& path, const std::string& what, int err) {
  return ResourceError(path + ": " + what + ": " + std::strerror(err) + " (the system ran short of a resource; not a bad file)",
                       err, path);
}

}  // namespace ringloader::datasets::detail
