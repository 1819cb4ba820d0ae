#pragma once
// SampleWriter: how a dataset writes one sample into its final place. It wraps plain bytes,
// so the same Dataset::get runs in a forked worker (writing into a shared-memory slot),
// in-process (num_workers = 0) and in a unit test (writing into a std::vector).
//
//   void get(size_t index, SampleWriter& out) override {
//     auto pixels = out.field<uint8_t>(0);           // 224*224*3 bytes, in the batch tensor
//     fill(pixels, index);
//     out.field<int64_t>(1)[0] = label_of(index);
//   }
//
// A variable field hands out its largest capacity; call set_shape() with what was written.
// Created by the loader (one per sample), used by one thread, never shared across processes.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "datasets/rng.hpp"
#include "datasets/schema.hpp"

namespace ringloader::datasets {

/// Where one field of one sample goes. For a fixed field `capacity` is exactly the sample's
/// bytes; for a variable field it is the most bytes the sample may use and the writer reports
/// the shape it set through `shape_out` (rank = the field's declared rank).
struct FieldTarget {
  std::byte* data = nullptr;
  size_t capacity = 0;
  int64_t* shape_out = nullptr;  ///< variable fields only; rank entries
};

/// Who is asking for the sample: reproducible randomness comes from (seed, epoch, index).
struct SampleContext {
  int64_t index = 0;
  uint64_t epoch = 0;
  uint64_t seed = 0;
  int worker_id = -1;  ///< -1 in-process
  uint64_t batch = 0;  ///< the batch's number within its epoch (the same for any worker count)
};

class SampleWriter {
 public:
  SampleWriter(const Schema& schema, std::span<const FieldTarget> targets, const SampleContext& ctx)
      : schema_(schema), targets_(targets), ctx_(ctx) {
    assert(targets.size() == schema.fields.size());
  }
  SampleWriter(const SampleWriter&) = delete;
  SampleWriter& operator=(const SampleWriter&) = delete;

  const Schema& schema() const { return schema_; }
  /// Destination of field `i` as raw bytes.
  std::span<std::byte> bytes(size_t i) const { return {targets_[i].data, targets_[i].capacity}; }
  /// Destination of field `i` typed as T (T's size must match the field's dtype).
  template <class T>
  std::span<T> field(size_t i) const {
    assert(sizeof(T) == dtype_size(schema_.fields[i].dtype));
    return {reinterpret_cast<T*>(targets_[i].data), targets_[i].capacity / sizeof(T)};
  }
  template <class T>
  std::span<T> field(std::string_view name) const { return field<T>(schema_.index_of(name)); }

  /// Variable field `i`: the shape this sample wrote. Same rank as declared, each dim no larger.
  /// Throws ConfigError otherwise (or if field `i` is fixed).
  void set_shape(size_t i, std::span<const int64_t> shape);
  void set_shape(size_t i, std::initializer_list<int64_t> shape) {
    set_shape(i, std::span<const int64_t>(shape.begin(), shape.size()));
  }

  /// Copy `data` into field `i`; a SampleError names the bytes needed and the bytes a slot
  /// holds when it does not fit. (For variable fields also call set_shape.)
  void write(size_t i, std::span<const std::byte> data);

  int64_t index() const { return ctx_.index; }
  uint64_t epoch() const { return ctx_.epoch; }
  uint64_t seed() const { return ctx_.seed; }
  int worker_id() const { return ctx_.worker_id; }
  uint64_t batch() const { return ctx_.batch; }
  /// The sample's generator, seeded from (seed, epoch, index, stream): never from worker or time.
  Rng rng(uint64_t stream = 0) const { return Rng::for_sample(ctx_.seed, ctx_.epoch, static_cast<uint64_t>(ctx_.index), stream); }

  /// Name the file this sample came from, so an error can say which one.
  void set_source(std::string_view path) { source_ = path; }
  const std::string& source() const { return source_; }

 private:
  const Schema& schema_;
  std::span<const FieldTarget> targets_;
  SampleContext ctx_;
  std::string source_;
};

}  // namespace ringloader::datasets
