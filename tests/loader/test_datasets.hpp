#pragma once
// Datasets for loader tests: each one misbehaves in one controlled way.
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>

#include "datasets/dataset.hpp"
#include "datasets/error.hpp"
#include "datasets/synthetic_dataset.hpp"

namespace ringloader::test {

using datasets::DType;
using datasets::SampleWriter;
using datasets::Schema;

/// Small synthetic images (8x8x3) whose bytes identify the index; hooks run before each get.
class HookDataset : public datasets::SyntheticDataset {
 public:
  explicit HookDataset(size_t n) : SyntheticDataset(n, 8, 8, 3, 10) {}
  std::function<void(size_t, SampleWriter&)> before;
  void get(size_t index, SampleWriter& out) override {
    if (before) before(index, out);
    SyntheticDataset::get(index, out);
  }
};

/// Variable-length int32 "tokens": sample i has (i % 5) + 1 tokens, each = i; a label field.
class RaggedDataset : public datasets::Dataset {
 public:
  explicit RaggedDataset(size_t n, int64_t max_len = 5) : n_(n), max_len_(max_len) {}
  size_t size() const override { return n_; }
  Schema schema() const override {
    return Schema{{{"tokens", DType::kInt32, {max_len_}, true}, {"label", DType::kInt64, {}, false}}};
  }
  void get(size_t i, SampleWriter& out) override {
    const int64_t len = static_cast<int64_t>(i % 5) + 1;
    out.set_shape(0, {len});
    auto t = out.field<int32_t>(0);
    for (int64_t k = 0; k < len; ++k) t[static_cast<size_t>(k)] = static_cast<int32_t>(i);
    out.field<int64_t>(1)[0] = static_cast<int64_t>(i);
  }

 private:
  size_t n_;
  int64_t max_len_;
};

/// A stream of `per_worker * workers` numbers; each worker emits its own shard.
class CountingStream : public datasets::IterableDataset {
 public:
  explicit CountingStream(int64_t total) : total_(total) {}
  Schema schema() const override { return Schema{{{"value", DType::kInt64, {}, false}}}; }
  void start(const datasets::WorkerInfo& info, uint64_t) override {
    next_ = info.id;
    step_ = info.num_workers;
  }
  bool next(SampleWriter& out) override {
    if (next_ >= total_) return false;
    out.field<int64_t>(0)[0] = next_;
    next_ += step_;
    return true;
  }

 private:
  int64_t total_;
  int64_t next_ = 0, step_ = 1;
};

}  // namespace ringloader::test
