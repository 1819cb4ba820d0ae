#pragma once
// How the loader lays a batch out inside one slot's payload: the header and records a filler
// writes (loader/detail/fill.hpp) and the Batch reads, and where each field's data goes.
//
// Payload layout (offsets from SlotLayout; blocks 64-byte aligned):
//   BatchMeta | SkipRecord[max_batch] | int64 delivered[max_batch]
//   | per variable field: int64 offsets[max_batch + 1], int64 shapes[max_batch][rank]
//   | per field: data[max_batch * field.max_bytes()]
// Fixed fields are therefore N-first contiguous tensors; variable fields are packed, sample i
// at element offsets[i] with shape shapes[i].
#include <cstddef>
#include <cstdint>
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

}  // namespace ringloader::loader::detail
