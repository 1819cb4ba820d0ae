#pragma once
// The fill functions: the one place a dataset meets a slot. They write a batch into a slot's
// payload as loader/detail/slot_layout.hpp lays it out, run by a forked worker or, when
// num_workers = 0, in the main process; and the main process's give_up_batch for a batch
// no worker will fill.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "datasets/dataset.hpp"
#include "loader/detail/slot_layout.hpp"
#include "loader/options.hpp"

namespace ringloader::loader::detail {

/// Everything fill_batch needs besides the dataset and the bytes.
struct FillContext {
  uint64_t epoch = 0;
  uint64_t seed = 0;
  int worker_id = -1;
  uint64_t batch = 0;  ///< the batch's number within its epoch (TaskRecord::seq)
  int pid = 0;
  OnError on_error = OnError::kRaise;
  /// Polled between samples: true when the batch is no longer wanted (iteration abandoned).
  std::function<bool()> abandoned;
  /// Where to publish the index of the sample being filled (read by the main process when
  /// the worker dies, to name the sample that killed it); may be null.
  std::atomic<int64_t>* progress = nullptr;
  /// The most a sample may sleep between retries of a resource failure, all retries together
  /// (0: no limit beyond the fixed pauses). The loader passes half its timeout, so that the
  /// watchdog never mistakes the retries for a hang.
  std::chrono::milliseconds retry_budget{0};
};

/// Fills one batch of a map-style dataset. Never throws for dataset errors: they become the
/// meta's error record (raise) or skip records (skip). A sample that fails because the system
/// ran short of a resource (ResourceError, std::bad_alloc, EMFILE/ENOMEM/EAGAIN) is retried a
/// few times with a pause, then recorded as an error of kind kResource under either policy:
/// it is never skipped as a bad sample.
void fill_batch(datasets::Dataset& ds, const SlotLayout& layout, std::byte* payload, std::span<const int64_t> indices,
                const FillContext& ctx);

/// Call in a catch block: the stream's start (set_epoch / __iter__) threw. The batch carries that
/// error as a failed sample would (its type and traceback; raised, or skipped under kSkip) and
/// ends this worker's stream.
void fail_stream_start(const SlotLayout& layout, std::byte* payload, const FillContext& ctx);

/// Fills up to `batch_size` samples from a stream dataset; sets end_of_stream when it ends.
/// `exhausted` carries the stream's end across calls (the worker's own flag).
void fill_stream_batch(datasets::IterableDataset& ds, const SlotLayout& layout, std::byte* payload, size_t batch_size,
                       const FillContext& ctx, bool& exhausted, int64_t& stream_position);

/// Marks a batch as given up by the main process: under kRaise an error record of `kind`
/// with `message`; under kSkip every index becomes a skip record with `message` as the reason.
void give_up_batch(const SlotLayout& layout, std::byte* payload, std::span<const int64_t> indices, ErrorKind kind,
                   const std::string& message, OnError policy);

/// Demangled name of the exception type currently being handled ("" if unknown).
std::string current_exception_type();

}  // namespace ringloader::loader::detail
