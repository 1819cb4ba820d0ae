#include "loader/batch.hpp"

#include <utility>

#include "core/error.hpp"
#include "loader/detail/loader_core.hpp"

namespace ringloader::loader {

size_t TensorView::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

void TensorView::check_type(size_t size, int code) const {
  if (code != static_cast<int>(dtype) || size != datasets::dtype_size(dtype)) {
    throw ConfigError(std::string("tensor of dtype ") + datasets::dtype_name(dtype) + " viewed as a " +
                      std::to_string(size) + "-byte type of another kind");
  }
}

Batch::Batch(Parts p)
    : core_(std::move(p.core)),
      slot_(p.slot),
      count_(p.count),
      indices_(p.indices),
      payload_(p.payload),
      seq_(p.seq),
      epoch_(p.epoch),
      skipped_(std::move(p.skipped)) {}

Batch::Batch(Batch&& o) noexcept
    : core_(std::move(o.core_)),
      slot_(o.slot_),
      count_(std::exchange(o.count_, 0)),
      indices_(std::exchange(o.indices_, nullptr)),
      payload_(std::exchange(o.payload_, nullptr)),
      seq_(o.seq_),
      epoch_(o.epoch_),
      skipped_(std::move(o.skipped_)) {}

Batch& Batch::operator=(Batch&& o) noexcept {
  if (this != &o) {
    release();
    core_ = std::move(o.core_);
    slot_ = o.slot_;
    count_ = std::exchange(o.count_, 0);
    indices_ = std::exchange(o.indices_, nullptr);
    payload_ = std::exchange(o.payload_, nullptr);
    seq_ = o.seq_;
    epoch_ = o.epoch_;
    skipped_ = std::move(o.skipped_);
  }
  return *this;
}

void Batch::release() noexcept {
  if (!core_) return;
  core_->release_slot(slot_);
  core_.reset();
  count_ = 0;
  indices_ = nullptr;
  payload_ = nullptr;
}

const datasets::Schema& Batch::schema() const {
  if (!core_) throw ConfigError("schema() of an empty (released or moved-from) Batch");
  return core_->layout().schema();
}

TensorView Batch::field(size_t i) const {
  if (!core_) throw ConfigError("field() of an empty (released or moved-from) Batch");
  const auto& layout = core_->layout();
  const auto& f = layout.schema().fields.at(i);
  if (f.variable) throw ConfigError("field '" + f.name + "' has variable size: use Batch::ragged()");
  TensorView t;
  t.data = layout.field_data(payload_, i);
  t.dtype = f.dtype;
  t.shape.push_back(static_cast<int64_t>(count_));
  t.shape.insert(t.shape.end(), f.shape.begin(), f.shape.end());
  return t;
}

TensorView Batch::field(std::string_view name) const { return field(schema().index_of(name)); }

RaggedView Batch::ragged(std::string_view name) const {
  const size_t i = schema().index_of(name);
  const auto& layout = core_->layout();
  const auto& f = layout.schema().fields[i];
  if (!f.variable) throw ConfigError("field '" + f.name + "' has a fixed shape: use Batch::field()");
  RaggedView r;
  const int64_t* offs = layout.var_offsets(payload_, i);
  const int64_t* shapes = layout.var_shapes(payload_, i);
  r.offsets = std::span<const int64_t>(offs, count_ + 1);
  r.values.data = layout.field_data(payload_, i);
  r.values.dtype = f.dtype;
  r.values.shape = {offs[count_]};
  for (size_t k = 0; k < count_; ++k) r.shapes.emplace_back(shapes + k * f.shape.size(), shapes + (k + 1) * f.shape.size());
  return r;
}

}  // namespace ringloader::loader
