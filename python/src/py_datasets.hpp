#pragma once
// Python datasets as ringloader datasets. A Python object's methods run wherever the loader
// runs the dataset: in the forked workers (which inherit the interpreter; the fork hooks set
// up in bindings.cpp repair it after fork, as os.fork() does), or in the calling process with
// num_workers = 0. Every entry point takes the GIL itself: the loader calls them with it
// released.
//
//   class Points(rl.Dataset):
//       schema = {"x": ("float32", (3, 64, 64)), "label": ("int64", ())}
//       def __len__(self): return 100_000
//       def get(self, index, out): out["x"][:] = ...; out["label"][...] = index % 10
//
// SampleOut is what get() receives: out["name"] is a writable NumPy view of the field's bytes
// in the batch slot, valid only during that call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "datasets/dataset.hpp"
#include "loader/sampler.hpp"

namespace ringloader::python {

namespace py = pybind11;

/// A Python object held by C++ code that may outlive the GIL's holder: it drops its reference
/// with the GIL taken, and not at all once the interpreter is finalizing (a loader or a factory
/// destroyed at exit would otherwise crash it).
class PyRef {
 public:
  PyRef() = default;
  explicit PyRef(py::object o) : obj_(std::move(o)) {}
  PyRef(const PyRef& o) {
    py::gil_scoped_acquire g;
    obj_ = o.obj_;
  }
  PyRef& operator=(const PyRef&) = delete;
  /// The GIL must be held (the old object is released).
  PyRef& operator=(PyRef&& o) noexcept {
    obj_ = std::move(o.obj_);
    return *this;
  }
  ~PyRef();
  const py::object& get() const { return obj_; }

 private:
  py::object obj_;
};

/// "uint8" / numpy dtype / torch dtype name -> DType; ConfigError naming `what` otherwise.
datasets::DType dtype_from(const py::handle& d, const std::string& what);
py::dtype numpy_dtype(datasets::DType t);
/// {"name": (dtype, shape) or (dtype, shape, "variable")} -> Schema; ConfigError on a bad entry.
datasets::Schema schema_from(const py::handle& spec);

/// What a Python get() writes through: out[name] -> NumPy view into the slot.
class SampleOut {
 public:
  SampleOut(datasets::SampleWriter& w, const datasets::Schema& schema) : w_(&w), schema_(&schema) {}
  py::array field(const std::string& name);
  /// Variable fields: the shape this sample wrote.
  void set_shape(const std::string& name, const std::vector<int64_t>& shape);
  /// numpy.random.Generator seeded from (seed, epoch, index): the same for any worker count.
  py::object rng();
  int64_t index() const { return check().index(); }
  uint64_t epoch() const { return check().epoch(); }
  int worker_id() const { return check().worker_id(); }
  void set_source(const std::string& path) { check().set_source(path); }
  const datasets::Schema& schema() const { return *schema_; }
  void invalidate() { w_ = nullptr; }
  /// The indices of the batch this sample belongs to, and a number new for each batch filled
  /// (a collate_fn runs once per batch: python/ringloader/_collate_fn.py).
  void set_batch(const std::vector<int64_t>* indices, uint64_t serial) { batch_ = indices, batch_serial_ = serial; }
  py::tuple batch() const;
  uint64_t batch_serial() const { return batch_serial_; }
  /// Some field was taken (out[name], out.write): a get() that took none wrote nothing.
  bool touched() const { return touched_; }

 private:
  datasets::SampleWriter& check() const;
  datasets::SampleWriter* w_;  ///< null once get() returned
  const datasets::Schema* schema_;
  std::vector<std::vector<int64_t>> shapes_;  ///< variable fields: the shape set_shape() gave
  bool touched_ = false;
  const std::vector<int64_t>* batch_ = nullptr;
  uint64_t batch_serial_ = 0;
};

/// Writes one sample - a tuple or list in schema order, a dict by name, or a lone value for a
/// one-field schema; NumPy arrays, torch tensors or numbers - into `out`. A fixed field's shape
/// must match; a variable field takes the value's shape.
void write_sample_into(SampleOut& out, const datasets::Schema& schema, const py::handle& sample);

/// A KeyboardInterrupt or SystemExit from dataset code run in the training process: the loader
/// lets it through (PassThrough) and the binding raises the very same Python exception again.
struct PyPassThrough : PassThrough {
  explicit PyPassThrough(py::error_already_set e);
  py::error_already_set error;
};

/// Turns the Python exception being handled into a ForeignError with its type and traceback.
[[noreturn]] void throw_foreign(py::error_already_set& e);

/// A map-style Python dataset: schema, __len__, get(index, out); optional source(index),
/// on_worker_start(worker_info), fingerprint().
class PyMapDataset : public datasets::Dataset {
 public:
  explicit PyMapDataset(py::object obj);
  size_t size() const override { return size_; }
  datasets::Schema schema() const override { return schema_; }
  void get(size_t index, datasets::SampleWriter& out) override;
  void prefetch(std::span<const int64_t> indices) override;
  std::string source(size_t index) const override;
  void on_worker_start(const datasets::WorkerInfo& info) override;
  std::string fingerprint() const override;
  const py::object& object() const { return obj_.get(); }

 private:
  PyRef obj_;
  datasets::Schema schema_;
  size_t size_ = 0;
  bool has_source_ = false;
  int creator_pid_;  ///< on_worker_start elsewhere means a worker
  bool seeded_ = true;  ///< false in a worker whose epoch was not known at start: seeded at its first sample
  bool in_worker_ = false;  ///< set by on_worker_start in a worker (never in-process: torch seeds nothing there)
  PyRef seed_batch_;        ///< ringloader._worker.seed_batch, called as each batch starts in a worker
  bool batch_started_ = false;  ///< prefetch() saw a new batch: its first get() seeds
  uint64_t batch_key_ = 0;      ///< FNV-1a of the batch's indices
  std::vector<int64_t> batch_;  ///< the batch being filled (SampleOut::batch)
  uint64_t batch_serial_ = 0;   ///< batches prefetch() saw
};

/// A Python stream: schema and __iter__ yielding samples (tuples or dicts, in schema order);
/// iteration starts anew per worker and epoch (set_epoch(epoch) is called first if defined).
class PyStreamDataset : public datasets::IterableDataset {
 public:
  explicit PyStreamDataset(py::object obj);
  datasets::Schema schema() const override { return schema_; }
  void start(const datasets::WorkerInfo& info, uint64_t epoch) override;
  bool next(datasets::SampleWriter& out) override;

 private:
  PyRef obj_;
  PyRef it_;
  datasets::Schema schema_;
  int creator_pid_;
};

/// A Python sampler: an iterable of indices with __len__ (set_epoch(epoch) called first).
class PySampler : public loader::Sampler {
 public:
  explicit PySampler(py::object obj);
  size_t size() const override;
  std::vector<int64_t> indices(const loader::EpochContext& ctx) const override;
  /// torch's DistributedSampler's rank / num_replicas, when the object has them.
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

 private:
  PyRef obj_;
  int rank_ = 0;
  int world_ = 1;
};

/// A Python batch sampler (torch's BatchSampler, or any iterable of index lists with __len__):
/// its batches as they come, each epoch. `max_batch` sizes the slots; a larger batch is a
/// ConfigError naming both.
class PyBatchSampler : public loader::BatchSampler {
 public:
  PyBatchSampler(py::object obj, size_t max_batch);
  size_t size() const override;
  size_t max_batch_size() const override { return max_batch_; }
  loader::BatchPlan batches(const loader::EpochContext& ctx) const override;

 private:
  PyRef obj_;
  size_t max_batch_;
};

/// rl.get_worker_info() in this process: set in a worker, nothing in the loader's own process.
void set_worker_info(const datasets::WorkerInfo& info);
/// In a worker, once per process: set_worker_info, then ringloader._worker.started (random,
/// torch and numpy seeded as torch's workers are, for `epoch`; -1: at the first sample).
void worker_started(const datasets::WorkerInfo& info, int64_t epoch, const py::object& dataset);
std::optional<datasets::WorkerInfo> worker_info();

}  // namespace ringloader::python
