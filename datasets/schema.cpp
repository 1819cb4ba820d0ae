#include "datasets/schema.hpp"

#include <set>

#include "core/error.hpp"

namespace ringloader::datasets {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kUInt8: return 1;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
    case DType::kFloat32: return 4;
    case DType::kFloat64: return 8;
  }
  throw ConfigError("unknown dtype " + std::to_string(static_cast<int>(t)));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kUInt8: return "uint8";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
  }
  return "unknown";
}

size_t Field::max_elements() const {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<size_t>(d), &n)) {
      throw ConfigError("field '" + name + "': its shape " + shape_text() + " has " +
                        (d < 0 ? "a negative dimension" : std::string("more elements than size_t holds")));
    }
  }
  return n;
}

size_t Field::max_bytes() const {
  size_t bytes = 0;
  if (__builtin_mul_overflow(max_elements(), dtype_size(dtype), &bytes)) {
    throw ConfigError("field '" + name + "': " + shape_text() + " " + dtype_name(dtype) + " elements overflow size_t bytes");
  }
  return bytes;
}

std::string Field::shape_text() const {
  std::string s = "{";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "}";
}

size_t Schema::index_of(std::string_view name) const {
  std::string known;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name == name) return i;
    known += (i ? ", " : "") + fields[i].name;
  }
  throw ConfigError("no field '" + std::string(name) + "' in this dataset (fields: " + known + ")");
}

size_t Schema::max_sample_bytes() const {
  size_t n = 0;
  for (const Field& f : fields) {
    if (__builtin_add_overflow(n, f.max_bytes(), &n)) throw ConfigError("the schema's fields together overflow size_t bytes");
  }
  return n;
}

void Schema::validate() const {
  if (fields.empty()) throw ConfigError("dataset schema has no fields");
  std::set<std::string> seen;
  for (const Field& f : fields) {
    if (f.name.empty()) throw ConfigError("dataset schema has a field with an empty name");
    if (!seen.insert(f.name).second) throw ConfigError("dataset schema repeats field '" + f.name + "'");
    for (int64_t d : f.shape) {
      if (d < 0) throw ConfigError("field '" + f.name + "' has a negative dimension " + std::to_string(d));
    }
    if (f.shape.size() > 4) throw ConfigError("field '" + f.name + "' has more than 4 dimensions");
    (void)f.max_bytes();  // throws if the shape overflows
  }
}

}  // namespace ringloader::datasets
