#pragma once
// What a dataset's samples look like: named fields with a dtype and a (largest) shape.
//
//   Schema s{{{"image", DType::kUInt8, {224, 224, 3}}, {"label", DType::kInt64, {}}}};
//
// A fixed field has exactly `shape` per sample and is stacked into an N-first tensor.
// A variable field declares its largest shape; each sample sets its own shape (same rank,
// every dim <= the declared one) and the batch carries per-sample offsets and shapes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringloader::datasets {

enum class DType : uint8_t { kUInt8 = 0, kInt32 = 1, kInt64 = 2, kFloat32 = 3, kFloat64 = 4 };

/// Bytes per element of `t`.
size_t dtype_size(DType t);
/// "uint8", "int32", "int64", "float32", "float64".
const char* dtype_name(DType t);

struct Field {
  std::string name;
  DType dtype = DType::kUInt8;
  std::vector<int64_t> shape;  ///< per sample; the largest one if `variable`
  bool variable = false;

  /// Elements and bytes of the largest sample; ConfigError naming the field if they overflow.
  size_t max_elements() const;
  size_t max_bytes() const;
  /// "{224, 224, 3}".
  std::string shape_text() const;
};

struct Schema {
  std::vector<Field> fields;

  /// Index of the field called `name`; throws ConfigError naming the known fields.
  size_t index_of(std::string_view name) const;
  /// Largest bytes one sample can occupy, over all fields.
  size_t max_sample_bytes() const;
  /// Throws ConfigError if a name repeats, a dim is negative, a size overflows, or there is no field.
  void validate() const;
};

}  // namespace ringloader::datasets
