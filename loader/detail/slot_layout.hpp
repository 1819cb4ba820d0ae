#pragma once
// How the loader lays a batch out inside one slot's payload, and the one function that fills
// it (run by a forked worker, or in-process when num_workers = 0). This is the only place a
// dataset meets a slot.
//
// Payload layout (offsets from SlotLayout; blocks 64-byte aligned):
//   BatchMeta | SkipRecord[max_batch] | int64 delivered[max_batch]
//   | per variable field: int64 offsets[max_batch + 1], int64 shapes[max_batch][rank]
//   | per field: data[max_batch * field.max_bytes()]
// Fixed fields are therefore N-first contiguous tensors; variable fields are packed, sample i
// at element offsets[i] with shape shapes[i].
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <type_traits>
#include <vector>

#include "datasets/dataset.hpp"
#include "loader/options.hpp"

namespace ringloader::loader::detail {

using OnError = loader::OnError;

/// Why one sample was dropped under on_error=skip. Fixed size: it lives in shared memory.
struct SkipRecord {
  int64_t index;
  char path[512];
  char reason[504];
};
static_assert(std::is_trivially_copyable_v<SkipRecord> && sizeof(SkipRecord) == 1024);

enum class BatchStatus : uint32_t { kOk = 0, kError = 1, kAbandoned = 2 };
/// What kind of error a kError batch carries.
enum class ErrorKind : uint32_t { kSample = 0, kWorker = 1, kTimeout = 2, kResource = 3 };

/// Header of a filled batch, written by the filler. 7 KiB + a few words.
struct BatchMeta {
  uint32_t count;        ///< samples delivered (after skips)
  BatchStatus status;
  uint32_t num_skipped;  ///< SkipRecords used
  uint32_t end_of_stream;  ///< stream datasets: this worker's shard ended in this batch
  int64_t error_index;   ///< valid when status == kError
  int32_t error_pid;
  ErrorKind error_kind;
  int32_t error_errno;   ///< kResource: the errno (EMFILE, ENOMEM, ...)
  uint32_t pad0;
  char error_type[128];
  char error_path[512];
  char error_message[2048];
  char error_traceback[4096];  ///< the dataset code's own traceback (Python's), apart from the message
};
static_assert(std::is_trivially_copyable_v<BatchMeta> && std::is_standard_layout_v<BatchMeta>);

class SlotLayout {
 public:
  SlotLayout() = default;
  /// Throws ConfigError naming the field when a size overflows.
  SlotLayout(const datasets::Schema& schema, size_t max_batch);

  size_t payload_bytes() const { return total_; }
  size_t max_batch() const { return max_batch_; }
  const datasets::Schema& schema() const { return schema_; }

  BatchMeta* meta(std::byte* p) const { return reinterpret_cast<BatchMeta*>(p); }
  SkipRecord* skips(std::byte* p) const { return reinterpret_cast<SkipRecord*>(p + skips_off_); }
  int64_t* delivered(std::byte* p) const { return reinterpret_cast<int64_t*>(p + delivered_off_); }
  /// Variable field f: element offsets (max_batch + 1) and shapes (max_batch x rank); null if fixed.
  int64_t* var_offsets(std::byte* p, size_t f) const { return var_off_[f] ? reinterpret_cast<int64_t*>(p + var_off_[f]) : nullptr; }
  int64_t* var_shapes(std::byte* p, size_t f) const {
    return var_off_[f] ? reinterpret_cast<int64_t*>(p + var_off_[f]) + max_batch_ + 1 : nullptr;
  }
  std::byte* field_data(std::byte* p, size_t f) const { return p + data_off_[f]; }
  /// Bytes of field f's largest sample.
  size_t field_bytes(size_t f) const { return field_bytes_[f]; }

 private:
  datasets::Schema schema_;
  size_t max_batch_ = 0;
  size_t skips_off_ = 0, delivered_off_ = 0, total_ = 0;
  std::vector<size_t> var_off_;   ///< 0 for fixed fields
  std::vector<size_t> data_off_;
  std::vector<size_t> field_bytes_;
};

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
