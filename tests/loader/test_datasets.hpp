#pragma once
// Datasets for loader tests: each one misbehaves in one controlled way.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "datasets/dataset.hpp"
#include "core/error.hpp"
#include "datasets/synthetic_dataset.hpp"

namespace ringloader::test {

/// Does `v` hold every index 0..n-1 exactly once?
inline bool exactly_once(std::vector<int64_t> v, size_t n) {
  if (v.size() != n) return false;
  std::sort(v.begin(), v.end());
  for (size_t i = 0; i < n; ++i) {
    if (v[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

using datasets::DType;
using datasets::SampleWriter;
using datasets::Schema;

/// Small synthetic images (8x8x3) whose bytes identify the index; hooks run before each get.
class HookDataset : public datasets::SyntheticDataset {
 public:
  explicit HookDataset(size_t n) : SyntheticDataset(n, 8, 8, 3, 10) {}
  std::function<void(size_t, SampleWriter&)> before;
  std::function<void(const datasets::WorkerInfo&)> start;
  void on_worker_start(const datasets::WorkerInfo& info) override {
    if (start) start(info);
  }
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

/// Images whose bytes come from the sample's own Rng (an int64 label = index besides): equal
/// bytes prove that (seed, epoch, index) seeding survived retries, other worker counts or a
/// resume. `delay` per sample gives a killer something to interrupt.
class RngDataset : public datasets::Dataset {
 public:
  explicit RngDataset(size_t n, int64_t side = 4, std::chrono::microseconds delay = {})
      : n_(n), side_(side), delay_(delay) {}
  size_t size() const override { return n_; }
  Schema schema() const override {
    return Schema{{{"image", DType::kUInt8, {side_, side_, 3}, false}, {"label", DType::kInt64, {}, false}}};
  }
  void get(size_t index, SampleWriter& out) override {
    auto rng = out.rng();
    for (auto& b : out.field<uint8_t>(0)) b = static_cast<uint8_t>(rng.next());
    out.field<int64_t>(1)[0] = static_cast<int64_t>(index);
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
  }
  std::string fingerprint() const override { return "rng-" + std::to_string(n_); }

 private:
  size_t n_;
  int64_t side_;
  std::chrono::microseconds delay_;
};

}  // namespace ringloader::test
