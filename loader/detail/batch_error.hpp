#pragma once
// A batch's error record: how a failure travels in the slot's BatchMeta from the filler to the
// training loop, where it is raised at the batch's place. An exception cannot cross fork, so a
// worker (or the main process with num_workers = 0, or Recovery giving a batch up) encodes it
// into the fixed-size fields; the main process decodes it into the exception it raises.
// Encoder and decoder are pure functions of the record: no ring, no process.
//
//   write_batch_error(*meta, ErrorKind::kSample, index, pid, 0, type, path, what);   // filler
//   const auto e = read_batch_error(*meta, {seq, indices, culprits, true});             // main
//   ring.release(slot);  std::rethrow_exception(e);
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "loader/detail/slot_layout.hpp"

namespace ringloader::loader::detail {

/// Copies `s` into a fixed-size record field, cut to fit, always NUL-terminated.
template <size_t N>
void copy_to_field(char (&dst)[N], const std::string& s) {
  static_assert(N > 0);
  const size_t n = std::min(N - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

/// "3,5,8", or the first `max_shown` and how many in all: a batch's indices in a message.
std::string join_indices(std::span<const int64_t> idx, size_t max_shown = 16);

/// Makes `meta` carry an error: status kError, what failed (`kind`, sample `index`, -1 if
/// none), where (`pid`, 0 for the main process), `err` (kResource: the errno), the exception's
/// `type`, the sample's `path`, the `message` and the dataset code's `traceback` (its own field:
/// a long traceback never crowds out the message). Leaves count and skip records alone.
void write_batch_error(BatchMeta& meta, ErrorKind kind, int64_t index, int pid, int err, const std::string& type,
                       const std::string& path, const std::string& message, const std::string& traceback = {});

/// What the main process knows of the batch beside its error record.
struct BatchErrorContext {
  uint64_t seq = 0;               ///< the batch's number within the epoch
  std::vector<int64_t> indices;   ///< its sample indices
  std::vector<int64_t> culprits;  ///< the samples its workers died in (Recovery::take_culprits)
  bool in_worker = true;          ///< filled by a worker (false: num_workers = 0)
};

/// The exception the training loop raises for `meta` (status kError): SampleError,
/// ResourceError, BatchError (kWorker) or TimeoutError (kTimeout). Copies all it needs, so the
/// slot may be freed before it is thrown.
std::exception_ptr read_batch_error(const BatchMeta& meta, BatchErrorContext ctx);

}  // namespace ringloader::loader::detail
