#include "loader/detail/slot_layout.hpp"

#include <string>

#include "core/error.hpp"

namespace ringloader::loader::detail {
namespace {

/// Checked size arithmetic for the layout: ConfigError naming `what` on overflow.
struct Sizes {
  std::string what;
  size_t add(size_t a, size_t b) const {
    size_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) fail();
    return r;
  }
  size_t mul(size_t a, size_t b) const {
    size_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) fail();
    return r;
  }
  size_t align64(size_t n) const { return add(n, 63) / 64 * 64; }
  [[noreturn]] void fail() const { throw ConfigError("a batch slot's size overflows: " + what); }
};

}  // namespace

SlotLayout::SlotLayout(const datasets::Schema& schema, size_t max_batch) : schema_(schema), max_batch_(max_batch) {
  const auto& fields = schema.fields;
  Sizes z{"batch " + std::to_string(max_batch) + " x the skip and index records"};
  size_t off = z.align64(sizeof(BatchMeta));
  skips_off_ = off;
  off = z.align64(z.add(off, z.mul(sizeof(SkipRecord), max_batch)));
  delivered_off_ = off;
  off = z.align64(z.add(off, z.mul(sizeof(int64_t), max_batch)));
  var_off_.assign(fields.size(), 0);
  field_bytes_.assign(fields.size(), 0);
  for (size_t f = 0; f < fields.size(); ++f) {
    field_bytes_[f] = fields[f].max_bytes();  // ConfigError naming the field if its shape overflows
    if (!fields[f].variable) continue;
    z.what = "field '" + fields[f].name + "': offsets and shapes of batch " + std::to_string(max_batch);
    var_off_[f] = off;
    off = z.align64(z.add(off, z.mul(sizeof(int64_t), z.add(z.add(max_batch, 1), z.mul(max_batch, fields[f].shape.size())))));
  }
  data_off_.assign(fields.size(), 0);
  for (size_t f = 0; f < fields.size(); ++f) {
    z.what = "field '" + fields[f].name + "' " + fields[f].shape_text() + " " + datasets::dtype_name(fields[f].dtype) +
             " x batch " + std::to_string(max_batch);
    data_off_[f] = off;
    off = z.align64(z.add(off, z.mul(max_batch, field_bytes_[f])));
  }
  total_ = off;
}

}  // namespace ringloader::loader::detail
