#pragma once
// Batch: a move-only, zero-copy view of one filled slot. Its tensors point straight into the
// shared-memory slot the worker wrote; destroying (or release()-ing) the Batch hands the slot
// back to the ring. A Batch may outlive its DataLoader (the mapping stays until the last Batch
// goes) and may be destroyed on another thread.
//
//   for (auto& batch : loader) {
//     auto images = batch.field("image");          // uint8 [N, 224, 224, 3]
//     auto labels = batch.field("label").as<int64_t>();
//     train(images.data, labels);
//   }                                               // slot freed when `batch` is released
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "datasets/schema.hpp"

namespace ringloader::loader {

namespace detail {
class LoaderCore;
}

/// A typed, shaped view of bytes owned by a Batch. Valid while the Batch lives.
struct TensorView {
  const std::byte* data = nullptr;
  datasets::DType dtype = datasets::DType::kUInt8;
  std::vector<int64_t> shape;  ///< N first for batch fields

  size_t numel() const;
  size_t nbytes() const { return numel() * datasets::dtype_size(dtype); }
  /// The elements as T; throws ConfigError if T does not match the dtype.
  template <class T>
  std::span<const T> as() const {
    check_type(sizeof(T), type_code<T>());
    return {reinterpret_cast<const T*>(data), numel()};
  }

 private:
  template <class T>
  static constexpr int type_code() {
    if constexpr (std::is_same_v<T, uint8_t>) return 0;
    else if constexpr (std::is_same_v<T, int32_t>) return 1;
    else if constexpr (std::is_same_v<T, int64_t>) return 2;
    else if constexpr (std::is_same_v<T, float>) return 3;
    else if constexpr (std::is_same_v<T, double>) return 4;
    else return -1;
  }
  void check_type(size_t size, int code) const;
};

/// A variable-size field: sample i is values[offsets[i] .. offsets[i+1]) with shape shapes[i].
struct RaggedView {
  TensorView values;                        ///< flat, packed; shape = {total elements}
  std::span<const int64_t> offsets;         ///< N + 1 element offsets
  std::vector<std::vector<int64_t>> shapes; ///< per sample
};

/// A sample dropped under on_error=skip, and why.
struct SkippedSample {
  int64_t index = -1;
  std::string path;
  std::string reason;
};

class Batch {
 public:
  /// What the loader hands a Batch (user code gets Batches from DataLoader, not from this).
  struct Parts {
    std::shared_ptr<detail::LoaderCore> core;  ///< releases the slot; keeps the ring mapped
    uint32_t slot = 0;
    size_t count = 0;
    const int64_t* indices = nullptr;  ///< in the slot
    std::byte* payload = nullptr;
    uint64_t seq = 0, epoch = 0;
    std::vector<SkippedSample> skipped;
  };

  Batch() = default;
  explicit Batch(Parts p);
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  Batch(Batch&& o) noexcept;
  Batch& operator=(Batch&& o) noexcept;
  ~Batch() { release(); }

  /// Samples in this batch (fewer than asked when some were skipped).
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  explicit operator bool() const { return core_ != nullptr; }
  /// Dataset indices of the samples, in order.
  std::span<const int64_t> indices() const { return {indices_, count_}; }
  /// Batch number within its epoch (sampler order).
  uint64_t seq() const { return seq_; }
  uint64_t epoch() const { return epoch_; }
  const datasets::Schema& schema() const;

  /// A fixed-shape field stacked N-first: shape {N, ...field shape}.
  TensorView field(std::string_view name) const;
  TensorView field(size_t i) const;
  /// A variable-size field with per-sample offsets and shapes.
  RaggedView ragged(std::string_view name) const;
  /// Samples of this batch dropped under on_error=skip. A batch whose every sample was dropped
  /// is not handed out at all: its skips show only in DataLoader::skipped(), which lists every
  /// skip of the loader's life (read it after each next() to see them as they happen).
  const std::vector<SkippedSample>& skipped() const { return skipped_; }

  /// Hands the slot back now (the Batch becomes empty). Idempotent.
  void release() noexcept;

 private:
  std::shared_ptr<detail::LoaderCore> core_;  ///< keeps the ring mapped; null when empty
  uint32_t slot_ = 0;
  size_t count_ = 0;
  const int64_t* indices_ = nullptr;  ///< in the slot; valid while core_
  std::byte* payload_ = nullptr;
  uint64_t seq_ = 0, epoch_ = 0;
  std::vector<SkippedSample> skipped_;
};

}  // namespace ringloader::loader
