#include "datasets/synthetic_dataset.hpp"

#include <cstring>

#include "core/error.hpp"

namespace ringloader::datasets {

SyntheticDataset::SyntheticDataset(size_t size, int64_t height, int64_t width, int64_t channels,
                                   int64_t num_classes)
    : size_(size), height_(height), width_(width), channels_(channels), num_classes_(num_classes) {
  if (height <= 0 || width <= 0 || channels <= 0) throw ConfigError("SyntheticDataset: image dims must be positive");
  if (num_classes <= 0) throw ConfigError("SyntheticDataset: num_classes must be positive");
  image_bytes_ = static_cast<size_t>(height * width * channels);
  if (image_bytes_ < 8) throw ConfigError("SyntheticDataset: an image needs at least 8 bytes");
  pattern_.resize(image_bytes_ + 256);
  uint64_t s = 0x5eed;
  for (size_t i = 0; i < pattern_.size(); i += 8) {
    uint64_t v = splitmix64(s);
    std::memcpy(pattern_.data() + i, &v, std::min<size_t>(8, pattern_.size() - i));
  }
}

Schema SyntheticDataset::schema() const {
  return Schema{{{"image", DType::kUInt8, {height_, width_, channels_}, false}, {"label", DType::kInt64, {}, false}}};
}

void SyntheticDataset::get(size_t index, SampleWriter& out) {
  if (index >= size_) throw SampleError("index " + std::to_string(index) + " out of range", static_cast<int64_t>(index), "", "IndexError");
  auto image = out.bytes(0);
  std::memcpy(image.data(), pattern_.data() + index % 256, image_bytes_);
  const uint64_t stamp = index;
  std::memcpy(image.data(), &stamp, sizeof stamp);
  out.field<int64_t>(1)[0] = label(index);
}

std::string SyntheticDataset::source(size_t index) const { return "synthetic:" + std::to_string(index); }

bool SyntheticDataset::check(size_t index, std::span<const uint8_t> image) const {
  if (image.size() != image_bytes_) return false;
  uint64_t stamp = 0;
  std::memcpy(&stamp, image.data(), sizeof stamp);
  return stamp == index && std::memcmp(image.data() + 8, pattern_.data() + index % 256 + 8, image_bytes_ - 8) == 0;
}

}  // namespace ringloader::datasets
