#pragma once
// read_file(): the one way ringloader reads an image file's bytes. It never opens anything
// but a regular file (a FIFO opened for reading would block forever; a device could stream
// without end), never reads more than a stated limit, and turns every failure into a
// one-line error naming the file and the failing system call: a DecodeError when the file is
// at fault, a ResourceError when the system ran short (EMFILE, ENFILE, ENOMEM, EAGAIN, ...).
//
//   std::vector<uint8_t> bytes = detail::read_file("/data/cat/1.jpg", 256 << 20);
//
// Stateless and thread-safe; safe in forked workers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringloader::datasets::detail {

/// "FIFO", "directory", "socket", ... for a st_mode that is not a regular file.
const char* file_type_name(unsigned mode);

/// All bytes of the regular file `path` (symlinks followed). Throws DecodeError(path, reason)
/// if it is missing, not a regular file, unreadable, larger than `max_bytes`, or a read fails;
/// ResourceError (not a bad file) if a call fails for want of descriptors, memory or threads.
/// `delay_ms` > 0 sleeps that long first: an injected latency for benchmarks.
std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes, int delay_ms = 0);

}  // namespace ringloader::datasets::detail
