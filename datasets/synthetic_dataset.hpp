#pragma once
// SyntheticDataset: an in-memory dataset whose samples cost (almost) nothing to make, used by
// the tests and by the ring benchmark. Sample i is an image field (uint8 H x W x C) whose bytes
// are a fixed pattern shifted by i with i stamped into its first 8 bytes, plus an int64 label
// i % num_classes. check() tells whether given bytes are exactly sample i.
//
//   auto ds = std::make_shared<datasets::SyntheticDataset>(10000, 224, 224, 3);
//
// Immutable after construction: safe to share across threads and forked workers.
#include <cstdint>
#include <span>
#include <vector>

#include "datasets/dataset.hpp"

namespace ringloader::datasets {

class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(size_t size, int64_t height, int64_t width, int64_t channels, int64_t num_classes = 1000);

  size_t size() const override { return size_; }
  Schema schema() const override;
  void get(size_t index, SampleWriter& out) override;
  std::string source(size_t index) const override;

  /// True when `image` holds exactly sample `index`'s bytes.
  bool check(size_t index, std::span<const uint8_t> image) const;
  int64_t label(size_t index) const { return static_cast<int64_t>(index) % num_classes_; }
  size_t image_bytes() const { return image_bytes_; }

 private:
  size_t size_;
  int64_t height_, width_, channels_, num_classes_;
  size_t image_bytes_;
  std::vector<uint8_t> pattern_;  ///< image_bytes_ + 256 bytes; sample i starts at i % 256
};

}  // namespace ringloader::datasets
