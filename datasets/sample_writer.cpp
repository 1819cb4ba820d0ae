#include "datasets/sample_writer.hpp"

#include <cstring>

#include "core/error.hpp"

namespace ringloader::datasets {

void SampleWriter::set_shape(size_t i, std::span<const int64_t> shape) {
  const Field& f = schema_.fields.at(i);
  if (!f.variable) throw ConfigError("set_shape on fixed-shape field '" + f.name + "'");
  if (shape.size() != f.shape.size()) {
    throw ConfigError("field '" + f.name + "' has rank " + std::to_string(f.shape.size()) +
                      ", set_shape got rank " + std::to_string(shape.size()) + " (sample " +
                      std::to_string(ctx_.index) + ")");
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0 || shape[d] > f.shape[d]) {
      size_t need = dtype_size(f.dtype);
      for (int64_t x : shape) need *= static_cast<size_t>(x < 0 ? 0 : x);
      throw SampleError("sample " + std::to_string(ctx_.index) + " does not fit its slot: field '" + f.name +
                            "' needs " + std::to_string(need) + " bytes (dim " + std::to_string(d) + " = " +
                            std::to_string(shape[d]) + "), a slot holds " + std::to_string(f.max_bytes()) +
                            " per sample (declared largest dim " + std::to_string(f.shape[d]) + ")",
                        ctx_.index, source_, "SampleTooLarge");
    }
    targets_[i].shape_out[d] = shape[d];
  }
}

void SampleWriter::write(size_t i, std::span<const std::byte> data) {
  const Field& f = schema_.fields.at(i);
  if (data.size() > targets_[i].capacity) {
    throw SampleError("sample " + std::to_string(ctx_.index) + " does not fit its slot: field '" + f.name +
                          "' needs " + std::to_string(data.size()) + " bytes, a slot holds " +
                          std::to_string(targets_[i].capacity) + " per sample",
                      ctx_.index, source_, "SampleTooLarge");
  }
  std::memcpy(targets_[i].data, data.data(), data.size());
}

}  // namespace ringloader::datasets
