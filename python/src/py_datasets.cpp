#include "python/src/py_datasets.hpp"

#include <unistd.h>

#include <mutex>

#include "core/error.hpp"
#include "core/fnv.hpp"

namespace ringloader::python {
namespace {

/// The worker info of this process: set in a worker, unset in the process that made the loader.
struct WorkerInfoState {
  bool set = false;
  datasets::WorkerInfo info;
};
WorkerInfoState& worker_state() {
  static WorkerInfoState s;
  return s;
}

std::vector<py::ssize_t> strides_for(const std::vector<int64_t>& shape, size_t item) {
  std::vector<py::ssize_t> st(shape.size());
  py::ssize_t s = static_cast<py::ssize_t>(item);
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= static_cast<py::ssize_t>(shape[i]);
  }
  return st;
}

/// A Python attribute or item that may be a method: obj.name() if callable, else obj.name.
py::object attr_value(const py::handle& obj, const char* name) {
  py::object a = obj.attr(name);
  if (PyCallable_Check(a.ptr())) return a();
  return a;
}

/// Writes one sample (a tuple/list in schema order, a dict by name, or a lone value for a
/// one-field schema) into `out`, converting through NumPy (torch tensors included).
void write_sample(SampleOut& out, const datasets::Schema& schema, const py::handle& sample) {
  const auto& fields = schema.fields;
  py::module_ np = py::module_::import("numpy");
  auto value_of = [&](size_t i) -> py::object {
    if (py::isinstance<py::dict>(sample)) {
      py::dict d = py::reinterpret_borrow<py::dict>(sample);
      if (!d.contains(fields[i].name)) {
        throw ConfigError("the sample has no field '" + fields[i].name + "' (its keys must match the schema)");
      }
      return d[py::str(fields[i].name)];
    }
    if (py::isinstance<py::tuple>(sample) || py::isinstance<py::list>(sample)) {
      py::sequence seq = py::reinterpret_borrow<py::sequence>(sample);
      if (seq.size() != fields.size()) {
        throw ConfigError("the sample has " + std::to_string(seq.size()) + " parts but the schema has " +
                          std::to_string(fields.size()) + " fields");
      }
      return seq[i];
    }
    if (fields.size() != 1) throw ConfigError("the sample is a single value but the schema has several fields");
    return py::reinterpret_borrow<py::object>(sample);
  };
  for (size_t i = 0; i < fields.size(); ++i) {
    py::object v = value_of(i);
    if (py::hasattr(v, "detach") && py::hasattr(v, "numpy")) v = v.attr("detach")().attr("cpu")().attr("numpy")();
    py::array a = np.attr("asarray")(v);
    if (fields[i].variable) {
      std::vector<int64_t> shape;
      for (py::ssize_t d = 0; d < a.ndim(); ++d) shape.push_back(static_cast<int64_t>(a.shape(d)));
      out.set_shape(fields[i].name, shape);
    } else {
      const auto& want = fields[i].shape;
      bool same = static_cast<size_t>(a.ndim()) == want.size();
      for (size_t d = 0; same && d < want.size(); ++d) same = a.shape(static_cast<py::ssize_t>(d)) == want[d];
      if (!same) {
        std::string got = "(";
        for (py::ssize_t d = 0; d < a.ndim(); ++d) got += (d ? ", " : "") + std::to_string(a.shape(d));
        throw ConfigError("field '" + fields[i].name + "' has shape " + got + (a.ndim() == 1 ? ",)" : ")") +
                          " in this sample but " + fields[i].shape_text() +
                          " in the schema (sample 0's, when inferred); for variable-size fields pass schema= "
                          "with (dtype, largest shape, \"variable\")");
      }
    }
    py::array dst = out.field(fields[i].name);
    const char kind = dst.dtype().kind();
    if ((kind == 'i' || kind == 'u' || kind == 'b') && !np.attr("can_cast")(a.dtype(), dst.dtype(), "safe").cast<bool>()) {
      // Into an integer field only what survives the round trip: 2.7 is not 2, 300 is not 44.
      py::object quiet = np.attr("errstate")(py::arg("all") = "ignore");
      quiet.attr("__enter__")();
      const bool exact = np.attr("array_equal")(a.attr("astype")(dst.dtype()).attr("astype")(a.dtype()), a).cast<bool>();
      quiet.attr("__exit__")(py::none(), py::none(), py::none());
      if (!exact) {
        throw ConfigError("field '" + fields[i].name + "' of this sample is " + py::str(a.dtype()).cast<std::string>() +
                          " with values " + std::string(datasets::dtype_name(fields[i].dtype)) + " cannot hold (e.g. 2.7 into int64, 300 into "
                          "uint8): pass schema= with a dtype that holds every sample (sample 0's dtype is used when "
                          "inferred)");
      }
    }
    dst.attr("__setitem__")(py::ellipsis(), a);
  }
}

}  // namespace

PyRef::~PyRef() {
  if (!obj_) return;
  if (!Py_IsInitialized() || _Py_IsFinalizing()) {
    obj_.release();  // the interpreter is (being) torn down: leave the object to it
    return;
  }
  py::gil_scoped_acquire g;
  obj_ = py::object();
}

datasets::DType dtype_from(const py::handle& d, const std::string& what) {
  std::string name;
  if (py::isinstance<py::str>(d)) {
    name = d.cast<std::string>();
  } else {
    name = py::str(d).cast<std::string>();  // torch.float32 -> "torch.float32"
    if (name.rfind("torch.", 0) != 0) {
      try {
        name = py::module_::import("numpy").attr("dtype")(d).attr("name").cast<std::string>();
      } catch (py::error_already_set&) {
      }
    }
  }
  if (name.rfind("torch.", 0) == 0) name = name.substr(6);
  if (name == "uint8") return datasets::DType::kUInt8;
  if (name == "int32" || name == "int") return datasets::DType::kInt32;
  if (name == "int64" || name == "long") return datasets::DType::kInt64;
  if (name == "float32" || name == "float") return datasets::DType::kFloat32;
  if (name == "float64" || name == "double") return datasets::DType::kFloat64;
  throw ConfigError(what + ": dtype '" + name + "' is not one of uint8, int32, int64, float32, float64");
}

py::dtype numpy_dtype(datasets::DType t) {
  // Parsed once per type: a batch makes a few arrays, and parsing "float32" each time is not free.
  static py::dtype* cache[8] = {};
  auto& d = cache[static_cast<size_t>(t) & 7];
  if (!d) d = new py::dtype(datasets::dtype_name(t));  // lives as long as the interpreter (never freed)
  return *d;
}

datasets::Schema schema_from(const py::handle& spec) {
  if (!py::isinstance<py::dict>(spec)) {
    throw ConfigError("schema must be a dict {name: (dtype, shape)}, not " +
                      py::str(py::type::handle_of(spec).attr("__name__")).cast<std::string>());
  }
  datasets::Schema s;
  for (auto item : py::reinterpret_borrow<py::dict>(spec)) {
    datasets::Field f;
    f.name = py::str(item.first).cast<std::string>();
    const std::string what = "schema field '" + f.name + "'";
    if (!py::isinstance<py::tuple>(item.second) && !py::isinstance<py::list>(item.second)) {
      throw ConfigError(what + " must be (dtype, shape) or (dtype, shape, \"variable\")");
    }
    py::sequence t = py::reinterpret_borrow<py::sequence>(item.second);
    if (t.size() < 2 || t.size() > 3) throw ConfigError(what + " must be (dtype, shape) or (dtype, shape, \"variable\")");
    f.dtype = dtype_from(t[0], what);
    for (auto dim : py::reinterpret_borrow<py::sequence>(t[1])) f.shape.push_back(dim.cast<int64_t>());
    if (t.size() == 3) {
      if (py::str(t[2]).cast<std::string>() != "variable") throw ConfigError(what + ": the third entry may only be \"variable\"");
      f.variable = true;
    }
    s.fields.push_back(std::move(f));
  }
  s.validate();
  return s;
}

datasets::SampleWriter& SampleOut::check() const {
  if (!w_) throw ConfigError("this `out` belongs to a get() call that has returned: write a sample only inside get()");
  return *w_;
}

py::array SampleOut::field(const std::string& name) {
  datasets::SampleWriter& w = check();
  touched_ = true;
  const size_t i = schema_->index_of(name);
  const datasets::Field& f = schema_->fields[i];
  const auto bytes = w.bytes(i);
  std::vector<int64_t> shape = f.shape;
  if (f.variable) {
    if (i < shapes_.size() && !shapes_[i].empty()) shape = shapes_[i];
  }
  const size_t item = datasets::dtype_size(f.dtype);
  // The base keeps NumPy from copying; the memory belongs to the slot (valid during get()).
  py::capsule base(bytes.data(), [](void*) {});
  return py::array(numpy_dtype(f.dtype), std::vector<py::ssize_t>(shape.begin(), shape.end()),
                   strides_for(shape, item), bytes.data(), base);
}

void SampleOut::set_shape(const std::string& name, const std::vector<int64_t>& shape) {
  datasets::SampleWriter& w = check();
  const size_t i = schema_->index_of(name);
  w.set_shape(i, std::span<const int64_t>(shape.data(), shape.size()));
  if (shapes_.size() < schema_->fields.size()) shapes_.resize(schema_->fields.size());
  shapes_[i] = shape;
}

py::object SampleOut::rng() {
  auto r = check().rng(0x5059);  // its own stream: C++ code of the same sample uses stream 0
  return py::module_::import("numpy").attr("random").attr("default_rng")(r.next());
}

namespace {
const int g_training_pid = static_cast<int>(::getpid());  // the process that imported the binding
}  // namespace

PyPassThrough::PyPassThrough(py::error_already_set e) : PassThrough(e.what()), error(std::move(e)) {}

void throw_foreign(py::error_already_set& e) {
  // Ctrl-C (or sys.exit) in dataset code run by the training process itself is the user's, not
  // a bad sample: it leaves as it came. In a worker it is the sample's error as any other.
  if ((e.matches(PyExc_KeyboardInterrupt) || e.matches(PyExc_SystemExit)) && ::getpid() == g_training_pid) {
    throw PyPassThrough(std::move(e));
  }
  std::string type = "Exception", message, tb;
  try {
    // "KeyError", or "module.Class" for one of the user's own: the loop re-raises that type.
    type = py::str(e.type().attr("__qualname__")).cast<std::string>();
    const std::string module = py::str(e.type().attr("__module__")).cast<std::string>();
    if (module != "builtins") type = module + "." + type;
    message = py::str(e.value()).cast<std::string>();
    py::module_ traceback = py::module_::import("traceback");
    tb = py::str("").attr("join")(traceback.attr("format_exception")(e.type(), e.value(), e.trace())).cast<std::string>();
  } catch (...) {
    message = e.what();
  }
  while (!tb.empty() && tb.back() == '\n') tb.pop_back();
  throw ForeignError(type + ": " + message, type, tb);
}

// ---------------------------------------------------------------- map-style

PyMapDataset::PyMapDataset(py::object o) : obj_(std::move(o)), creator_pid_(static_cast<int>(::getpid())) {
  py::gil_scoped_acquire g;
  const py::object& obj = obj_.get();
  if (!py::hasattr(obj, "schema")) throw ConfigError("a ringloader Dataset needs a `schema` {name: (dtype, shape)}");
  if (!py::hasattr(obj, "get")) throw ConfigError("a ringloader Dataset needs get(index, out)");
  schema_ = schema_from(attr_value(obj, "schema"));
  size_ = py::len(obj);
  has_source_ = py::hasattr(obj, "source");
}


py::tuple SampleOut::batch() const {
  check();
  if (!batch_) return py::tuple();
  py::tuple t(batch_->size());
  for (size_t k = 0; k < batch_->size(); ++k) t[k] = py::int_((*batch_)[k]);
  return t;
}

void PyMapDataset::get(size_t index, datasets::SampleWriter& out) {
  py::gil_scoped_acquire g;
  SampleOut so(out, schema_);
  so.set_batch(&batch_, batch_serial_);
  try {
    if (in_worker_) {
      if (!seeded_) {  // a worker started without knowing its epoch (fork server): seed for this one
        seeded_ = true;
        py::module_::import("ringloader._worker").attr("seed_epoch")(out.epoch(), out.seed());
      }
      if (batch_started_) {  // random/torch/numpy keyed by the batch (_worker.py says why)
        batch_started_ = false;
        // the task's seed (iter() may draw a new one) and the batch's number: two batches of the
        // same indices (batch_size=1, a sampler with replacement) draw differently
        seed_batch_.get()(out.seed(), out.epoch(), out.batch(), batch_key_);
      }
    }
    const py::object returned = obj_.get().attr("get")(index, py::cast(&so, py::return_value_policy::reference));
    if (!returned.is_none()) {
      write_sample(so, schema_, returned);  // a get() that returns its sample, as __getitem__ does
    } else if (!so.touched()) {
      so.invalidate();
      // The slot still holds an earlier batch's bytes: never hand those out as this sample.
      throw Error("get(" + std::to_string(index) + ", out) wrote nothing into `out` and returned nothing: write each "
                  "field (out[\"name\"][...] = value) or return the sample (a tuple in schema order or a dict)");
    }
  } catch (py::error_already_set& e) {
    so.invalidate();
    throw_foreign(e);
  }
  so.invalidate();
}

void PyMapDataset::prefetch(std::span<const int64_t> indices) {
  // Called once as each batch starts to fill: its first get() seeds from the batch's indices.
  batch_.assign(indices.begin(), indices.end());
  ++batch_serial_;
  if (!in_worker_) return;
  batch_key_ = core::fnv1a64({reinterpret_cast<const char*>(indices.data()), indices.size_bytes()});
  batch_started_ = true;
}

std::string PyMapDataset::source(size_t index) const {
  if (!has_source_) return {};
  py::gil_scoped_acquire g;
  try {
    return py::str(obj_.get().attr("source")(index)).cast<std::string>();
  } catch (py::error_already_set&) {
    return {};
  }
}

void worker_started(const datasets::WorkerInfo& info, int64_t epoch, const py::object& dataset) {
  set_worker_info(info);
  try {
    py::module_::import("ringloader._worker").attr("started")(info.id, info.num_workers, info.seed, epoch, dataset);
  } catch (py::error_already_set& e) {
    throw_foreign(e);
  }
}

void PyMapDataset::on_worker_start(const datasets::WorkerInfo& info) {
  py::gil_scoped_acquire g;
  if (::getpid() != creator_pid_) {  // a worker (in-process, torch seeds nothing and has no worker info)
    worker_started(info, info.epoch, obj_.get());
    seeded_ = info.epoch >= 0;
    in_worker_ = true;
    seed_batch_ = PyRef(py::module_::import("ringloader._worker").attr("seed_batch"));
  }
  if (!py::hasattr(obj_.get(), "on_worker_start")) return;
  try {
    obj_.get().attr("on_worker_start")(py::module_::import("ringloader").attr("get_worker_info")());
  } catch (py::error_already_set& e) {
    throw_foreign(e);
  }
}

std::string PyMapDataset::fingerprint() const {
  py::gil_scoped_acquire g;
  if (!py::hasattr(obj_.get(), "fingerprint")) return {};
  return py::str(attr_value(obj_.get(), "fingerprint")).cast<std::string>();
}

// ---------------------------------------------------------------- streams

PyStreamDataset::PyStreamDataset(py::object o) : obj_(std::move(o)), creator_pid_(static_cast<int>(::getpid())) {
  py::gil_scoped_acquire g;
  const py::object& obj = obj_.get();
  if (!py::hasattr(obj, "schema")) throw ConfigError("a ringloader IterableDataset needs a `schema` {name: (dtype, shape)}");
  schema_ = schema_from(attr_value(obj, "schema"));
}


void PyStreamDataset::start(const datasets::WorkerInfo& info, uint64_t epoch) {
  py::gil_scoped_acquire g;
  if (::getpid() != creator_pid_) worker_started(info, static_cast<int64_t>(epoch), obj_.get());  // once per process
  try {
    if (py::hasattr(obj_.get(), "set_epoch")) obj_.get().attr("set_epoch")(epoch);
    it_ = PyRef(obj_.get().attr("__iter__")());
  } catch (py::error_already_set& e) {
    throw_foreign(e);
  }
}

bool PyStreamDataset::next(datasets::SampleWriter& out) {
  py::gil_scoped_acquire g;
  py::object sample;
  try {
    sample = it_.get().attr("__next__")();
  } catch (py::error_already_set& e) {
    if (e.matches(PyExc_StopIteration)) return false;
    throw_foreign(e);
  }
  SampleOut so(out, schema_);
  try {
    write_sample(so, schema_, sample);
  } catch (py::error_already_set& e) {
    so.invalidate();
    throw_foreign(e);
  }
  so.invalidate();
  return true;
}

void write_sample_into(SampleOut& out, const datasets::Schema& schema, const py::handle& sample) {
  write_sample(out, schema, sample);
}

// ---------------------------------------------------------------- samplers

PySampler::PySampler(py::object o) : obj_(std::move(o)) {
  py::gil_scoped_acquire g;
  const py::object& s = obj_.get();
  if (py::hasattr(s, "rank") && py::hasattr(s, "num_replicas")) {
    try {
      rank_ = s.attr("rank").cast<int>();
      world_ = s.attr("num_replicas").cast<int>();
    } catch (const py::cast_error&) {  // not numbers: a sampler of another kind
      rank_ = 0;
      world_ = 1;
    }
  }
}


size_t PySampler::size() const {
  py::gil_scoped_acquire g;
  return py::len(obj_.get());
}

std::vector<int64_t> PySampler::indices(const loader::EpochContext& /*ctx*/) const {
  py::gil_scoped_acquire g;
  try {
    // The sampler's epoch is the user's (torch's DataLoader never sets it): DataLoader.set_epoch
    // forwards to it in Python, nothing here does.
    std::vector<int64_t> out;
    for (auto i : obj_.get()) out.push_back(py::int_(py::reinterpret_borrow<py::object>(i)).cast<int64_t>());
    return out;
  } catch (py::error_already_set& e) {
    throw_foreign(e);
  }
}

PyBatchSampler::PyBatchSampler(py::object o, size_t max_batch) : obj_(std::move(o)), max_batch_(max_batch) {}

size_t PyBatchSampler::size() const {
  py::gil_scoped_acquire g;
  return py::len(obj_.get());
}

loader::BatchPlan PyBatchSampler::batches(const loader::EpochContext& /*ctx*/) const {
  py::gil_scoped_acquire g;
  try {
    loader::BatchPlan plan;
    std::vector<int64_t> batch;
    for (auto b : obj_.get()) {
      batch.clear();
      for (auto i : b) batch.push_back(py::int_(py::reinterpret_borrow<py::object>(i)).cast<int64_t>());
      if (batch.size() > max_batch_) {
        throw ConfigError("batch_sampler gave a batch of " + std::to_string(batch.size()) + " indices, more than the " +
                          std::to_string(max_batch_) + " the slots were sized for (its batch_size, or the largest "
                          "batch of its first pass)");
      }
      plan.add(batch);
    }
    return plan;
  } catch (py::error_already_set& e) {
    throw_foreign(e);
  }
}

void set_worker_info(const datasets::WorkerInfo& info) {
  auto& s = worker_state();
  s.set = true;
  s.info = info;
}

std::optional<datasets::WorkerInfo> worker_info() {
  const auto& s = worker_state();
  if (!s.set) return std::nullopt;
  return s.info;
}

}  // namespace ringloader::python
