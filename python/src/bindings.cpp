// _ringloader: the thin binding under the `ringloader` Python package. Behaviour lives in the
// C++ library; this file converts types, takes and releases the GIL, and maps errors.
// python/ringloader/__init__.py builds the Pythonic surface on it.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "datasets/file_list_dataset.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/shards.hpp"
#include "ipc/fork_hooks.hpp"
#include "loader/data_loader.hpp"
#include "loader/distributed.hpp"
#include "loader/init.hpp"
#include "python/src/py_datasets.hpp"
#include "python/src/py_pack.hpp"

namespace py = pybind11;
using namespace ringloader;
using namespace ringloader::python;

namespace {

// ---------------------------------------------------------------- fork hooks

/// The GIL state the forking thread took in `before`, given back in `after_parent`.
thread_local PyGILState_STATE t_fork_gil;

/// Every fork of the library runs these, as os.fork() does: workers inherit a usable interpreter.
void install_fork_hooks() {
  ipc::set_fork_hooks({
      .before =
          [] {
            t_fork_gil = PyGILState_Ensure();
            PyOS_BeforeFork();
          },
      .after_parent =
          [] {
            PyOS_AfterFork_Parent();
            PyGILState_Release(t_fork_gil);
          },
      .after_child = [] { PyOS_AfterFork_Child(); },  // this thread holds the GIL from now on
  });
}

// ---------------------------------------------------------------- errors

/// A file name (or a message holding one) as Python's os.fsdecode gives it: the file system's
/// encoding with surrogateescape, so a name that is not UTF-8 is kept, never an error.
py::str fs_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeFSDefaultAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

py::list fs_strs(const std::vector<std::string>& v) {
  py::list out;
  for (const auto& s : v) out.append(fs_str(s));
  return out;
}

py::tuple skipped_tuple(const loader::SkippedSample& s) { return py::make_tuple(s.index, fs_str(s.path), fs_str(s.reason)); }

/// Raises ringloader._errors.<name>(message) with the given attributes set.
void raise_py(const char* name, const std::string& message, std::initializer_list<std::pair<const char*, py::object>> attrs) {
  py::object cls = py::module_::import("ringloader._errors").attr(name);
  py::object inst = cls(fs_str(message));
  for (const auto& [k, v] : attrs) inst.attr(k) = v;
  PyErr_SetObject(cls.ptr(), inst.ptr());
}

void translate(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const PyPassThrough& e) {
    py::error_already_set(e.error).restore();  // the user's KeyboardInterrupt / SystemExit itself
  } catch (const SampleError& e) {
    const std::string what = e.what();  // the message, then the worker's traceback (as torch's)
    // An rl.SampleError that is also the original exception's type: `except KeyError` catches it.
    py::module_ errors = py::module_::import("ringloader._errors");
    py::object cls = errors.attr("sample_error_class")(fs_str(e.type()));
    py::object inst = errors.attr("new_error")(cls, fs_str(what));
    inst.attr("index") = py::int_(e.index());
    inst.attr("path") = fs_str(e.path());
    inst.attr("type") = fs_str(e.type());
    inst.attr("traceback") = fs_str(e.traceback());
    PyErr_SetObject(cls.ptr(), inst.ptr());
  } catch (const BatchError& e) {
    raise_py("BatchError", e.what(), {{"indices", py::cast(e.indices())}, {"culprits", py::cast(e.culprits())}});
  } catch (const WorkerError& e) {
    raise_py("WorkerError", e.what(), {});
  } catch (const TimeoutError& e) {
    raise_py("TimeoutError", e.what(), {{"batch_given_up", py::bool_(e.batch_given_up())}});
  } catch (const ResourceError& e) {
    raise_py("ResourceError", e.what(),
             {{"errno", py::int_(e.error_number())}, {"path", fs_str(e.path())}, {"index", py::int_(e.index())}});
  } catch (const DecodeError& e) {
    raise_py("DecodeError", e.what(), {{"path", fs_str(e.path())}});
  } catch (const ConfigError& e) {
    raise_py("ConfigError", e.what(), {});
  } catch (const Interrupted& e) {
    raise_py("Interrupted", e.what(), {});
  } catch (const IpcError& e) {
    raise_py("IpcError", e.what(), {});
  } catch (const ForeignError& e) {
    raise_py("Error", e.traceback().empty() ? e.what() : std::string(e.what()) + "\n" + e.traceback(), {});
  } catch (const Error& e) {
    raise_py("Error", e.what(), {});
  }
}

// ---------------------------------------------------------------- datasets

/// A dataset made in C++ (ImageFolder, FileList), passed to Loader as it is.
struct NativeDataset {
  std::shared_ptr<datasets::ImageDataset> ds;
};

/// The native transform, from the Python package's description (ringloader/vision.py makes it
/// from a torchvision transform or the keyword form): steps [("resize", n) | ("resize", h, w) |
/// ("center_crop", h, w) | ("random_resized_crop", h, w, s0, s1, r0, r1) | ("flip", p)] and an
/// output ("uint8" HWC | "uint8_chw" | "float" with mean and std).
datasets::Pipeline pipeline_from(const py::list& steps, const std::string& output, const std::array<float, 3>& mean,
                                 const std::array<float, 3>& std) {
  datasets::Pipeline p;
  for (const auto& item : steps) {
    const auto t = item.cast<py::tuple>();
    const auto kind = t[0].cast<std::string>();
    auto dim = [&](size_t i) {
      const int v = t[i].cast<int>();
      if (v <= 0) throw ConfigError(kind + ": sizes must be positive, got " + std::to_string(v));
      return v;
    };
    if (kind == "resize" && t.size() == 2) p.resize(dim(1));
    else if (kind == "resize") p.resize(dim(1), dim(2));
    else if (kind == "center_crop") p.center_crop(dim(1), dim(2));
    else if (kind == "random_resized_crop") {
      p.random_resized_crop(dim(1), dim(2), {t[3].cast<double>(), t[4].cast<double>()},
                            {t[5].cast<double>(), t[6].cast<double>()});
    } else if (kind == "flip") p.random_horizontal_flip(t[1].cast<double>());
    else throw ConfigError("unknown transform step '" + kind + "'");
  }
  if (output == "float") p.to_float(mean, std);
  else if (output == "uint8_chw") p.to_uint8_chw();
  else if (output != "uint8") throw ConfigError("output='" + output + "' is not one of 'uint8', 'float'");
  return p;
}

/// A float constant as the decimal it was written as (0.485f -> 0.485, not 0.48500001430511475),
/// so Python shows and compares the preset's mean/std as the decimals torchvision uses.
double decimal(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf - 1, v);
  *r.ptr = '\0';
  return std::strtod(buf, nullptr);
}

datasets::ImageDatasetOptions image_options(const py::list& steps, const std::string& output,
                                            const std::array<float, 3>& mean, const std::array<float, 3>& std,
                                            int64_t max_pixels, int reader_threads, const std::string& decoder) {
  datasets::ImageDatasetOptions o;
  o.transform = pipeline_from(steps, output, mean, std);
  o.decode.max_pixels = max_pixels;
  o.reader_threads = reader_threads;
  datasets::decoder_from_name(decoder).apply(o.decode);
  return o;
}

// ---------------------------------------------------------------- the loader

std::shared_ptr<loader::Sampler> sampler_from(const py::object& s) {
  if (s.is_none()) return nullptr;
  if (py::hasattr(s, "_native")) return s.attr("_native").cast<std::shared_ptr<loader::Sampler>>();
  return std::make_shared<PySampler>(s);
}

loader::LoaderOptions options_from(const py::dict& d) {
  loader::LoaderOptions o;
  auto get = [&](const char* k) -> py::object { return d.contains(k) ? py::object(d[k]) : py::none(); };
  if (auto v = get("batch_size"); !v.is_none()) o.batch_size = v.cast<size_t>();
  if (auto v = get("shuffle"); !v.is_none()) o.shuffle = v.cast<bool>();
  if (auto v = get("drop_last"); !v.is_none()) o.drop_last = v.cast<bool>();
  if (auto v = get("num_workers"); !v.is_none()) o.num_workers = v.cast<size_t>();
  if (auto v = get("prefetch_factor"); !v.is_none()) o.prefetch_factor = v.cast<size_t>();
  if (auto v = get("extra_slots"); !v.is_none()) o.extra_slots = v.cast<size_t>();
  if (auto v = get("persistent_workers"); !v.is_none()) o.persistent_workers = v.cast<bool>();
  if (auto v = get("timeout"); !v.is_none()) {
    const double t = v.cast<double>();
    if (!(t >= 0) || !(t <= 1e9)) throw ConfigError("timeout must be a finite number of seconds in [0, 1e9], got " + std::to_string(t));
    // Rounded up: any positive timeout bounds the wait (0.0004 s is 1 ms, not 0 = no timeout).
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(t * 1000.0)));
  }
  if (auto v = get("seed"); !v.is_none()) o.seed = v.cast<uint64_t>();
  if (auto v = get("default_seed"); !v.is_none()) o.default_seed = v.cast<uint64_t>();
  if (auto v = get("in_order"); !v.is_none()) o.in_order = v.cast<bool>();
  if (auto v = get("on_error"); !v.is_none()) {
    const auto s = v.cast<std::string>();
    if (s == "raise") o.on_error = loader::OnError::kRaise;
    else if (s == "skip") o.on_error = loader::OnError::kSkip;
    else throw ConfigError("on_error='" + s + "' is not one of 'raise', 'skip'");
  }
  if (auto v = get("max_retries"); !v.is_none()) o.max_retries = v.cast<size_t>();
  if (auto v = get("shm_dir"); !v.is_none()) o.shm_dir = v.cast<std::string>();
  if (auto v = get("start_method"); !v.is_none()) {
    const auto s = v.cast<std::string>();
    if (s == "fork") o.start_method = loader::StartMethod::kFork;
    else if (s == "forkserver") o.start_method = loader::StartMethod::kForkServer;
    else throw ConfigError("start_method='" + s + "' is not one of 'fork', 'forkserver'");
  }
  o.sampler = sampler_from(get("sampler"));
  if (auto v = get("batch_sampler"); !v.is_none()) {
    const auto t = v.cast<py::tuple>();  // (the batch sampler, its largest batch)
    o.batch_sampler = std::make_shared<PyBatchSampler>(t[0], t[1].cast<size_t>());
  }
  if (auto v = get("worker_init_fn"); !v.is_none()) {
    auto fn = std::make_shared<PyRef>(v);
    // The Python layer passes worker_init_fn wrapped (ringloader._worker.call_init_fn): it reads
    // the worker info set here, seeds as torch does, then calls the user's function.
    o.worker_init_fn = [fn](const datasets::WorkerInfo& info) {
      py::gil_scoped_acquire g;
      try {
        set_worker_info(info);
        fn->get()(info.id);
      } catch (py::error_already_set& e) {
        throw_foreign(e);
      }
    };
  }
  // Ctrl-C while next() waits: the wait ends at once (EINTR) and this raises KeyboardInterrupt.
  o.interrupt_check = [] {
    py::gil_scoped_acquire g;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  };
  return o;
}

/// A delivered batch. Its arrays are views into the slot whose base is this object: the slot
/// returns to the ring when the last of them (and this) is gone.
struct PyBatch {
  loader::Batch batch;
};

/// A field of at most this many bytes a batch that is not the batch's largest (labels beside
/// images) is copied out of the slot: keeping it (targets.append(target)) must not pin the slot.
constexpr size_t kSmallField = 64 << 10;

py::tuple batch_arrays(const std::shared_ptr<PyBatch>& self, py::handle base) {
  const loader::Batch& b = self->batch;
  if (!b) throw ConfigError("this batch has been released");
  const auto& schema = b.schema();
  py::tuple out(schema.fields.size());
  size_t largest = 0;
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    if (!schema.fields[i].variable) largest = std::max(largest, b.field(i).nbytes());
  }
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    const auto& f = schema.fields[i];
    if (f.variable) {
      const auto r = b.ragged(f.name);
      py::list samples;
      const size_t item = datasets::dtype_size(f.dtype);
      for (size_t k = 0; k < b.size(); ++k) {
        std::vector<py::ssize_t> shape(r.shapes[k].begin(), r.shapes[k].end());
        samples.append(py::array(numpy_dtype(f.dtype), shape, {},
                                 r.values.data + static_cast<size_t>(r.offsets[k]) * item, base));
      }
      out[i] = samples;
      continue;
    }
    const auto t = b.field(i);
    std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
    out[i] = t.nbytes() <= kSmallField && t.nbytes() < largest ? py::array(numpy_dtype(t.dtype), shape, {}, t.data)  // a copy
                                        : py::array(numpy_dtype(t.dtype), shape, {}, const_cast<std::byte*>(t.data), base);
  }
  return out;
}

/// The native loader, plus what the Python face needs around it: the batch a cut-short
/// hand-out kept for the next call, and the rule for calls that arrive while next() runs (from
/// a signal handler, a dataset's get() with num_workers=0, or another thread). The fields are
/// read and written with the GIL held.
struct PyLoader : loader::DataLoader {
  using loader::DataLoader::DataLoader;
  std::shared_ptr<PyBatch> held;  ///< dropped by start_epoch, load_state and close
  uint64_t gen = 0;          ///< bumped by start_epoch, load_state, close
  uint64_t copied = 0;       ///< batches handed out as copies because the loop held too many
  bool busy = false;         ///< inside next(), the GIL released
  std::thread::id busy_thread;
  bool close_pending = false;  ///< close() arrived while busy: done when next() returns
};

/// A call that changes the loader while next() runs would pull its state from under it.
void not_busy(const PyLoader& l, const char* what, bool reads_only = false) {
  if (!l.busy) return;
  const bool same_thread = l.busy_thread == std::this_thread::get_id();
  if (reads_only && same_thread) return;  // a signal handler saving a checkpoint: next() is at a safe point
  throw Error(std::string(what) + " was called while this loader's next() is running (" +
              (same_thread ? "from a signal handler or the dataset's own code" : "from another thread") +
              "); call it after next() returns. close() is the exception: it takes effect when next() returns");
}

/// Closes now (GIL held by the caller, released for the wait on the workers).
void close_now(PyLoader& l) {
  l.close_pending = false;
  l.held.reset();
  ++l.gen;
  py::gil_scoped_release rel;
  l.close();
}

/// The next batch: the one a cut-short hand-out kept, else the native loader's; null at the end.
std::shared_ptr<PyBatch> take_next(PyLoader& l) {
  if (l.held) {
    std::shared_ptr<PyBatch> h = std::move(l.held);
    l.held.reset();
    l.recount(h->batch);
    return h;
  }
  not_busy(l, "next()");
  std::optional<loader::Batch> b;
  l.busy = true;
  l.busy_thread = std::this_thread::get_id();
  try {
    py::gil_scoped_release rel;  // workers may need it (num_workers = 0 re-takes it)
    b = l.next();
  } catch (const Interrupted&) {
    l.busy = false;
    if (!l.close_pending) throw;  // else: the interruption close() asked for
  } catch (...) {
    l.busy = false;
    if (l.close_pending) close_now(l);
    throw;  // the handler's own SystemExit / KeyboardInterrupt, or the loader's error
  }
  l.busy = false;
  if (l.close_pending) {
    b.reset();
    close_now(l);
    throw ConfigError("this DataLoader was closed (close()) while next() was running: make a new one to load again");
  }
  if (!b) return nullptr;
  return std::make_shared<PyBatch>(PyBatch{std::move(*b)});
}

/// One epoch's iterator. Its __next__ is C++ from the native hand-out to the returned batch, so
/// a Ctrl-C lands either before the hand-out or inside the Python code that builds the batch
/// (Batch.__new__, DataLoader._wrap). In the second case the batch is not delivered: the loader
/// keeps it for the next call and state() does not count it, so a checkpoint saved in
/// `except KeyboardInterrupt:` resumes with it. Not a generator: a generator's frame would keep
/// the last batch (and its slot) alive until the next one is asked for.
struct PyEpochIter {
  py::object dl;          ///< the Python DataLoader
  py::object gen;         ///< dl._iter_gen when made; None once this epoch is over (it stays over, as torch's)
  bool copy = false;
  size_t max_held = 0;    ///< more batches held than this: the next is handed out as a copy
  bool fast = false;      ///< the first batch went through dl._wrap, which settled names and tensors
  py::object to_tensor, batch_cls, names;
  bool single = false;
};

/// The per-batch path after the first: the field arrays, the tensors, the Batch tuple.
py::object wrap_fast(const PyEpochIter& it, const std::shared_ptr<PyBatch>& holder) {
  py::object self = py::cast(holder);
  py::tuple arrays = batch_arrays(holder, self);
  if (!it.to_tensor.is_none()) {
    for (size_t i = 0; i < arrays.size(); ++i) {
      if (py::isinstance<py::list>(arrays[i])) {
        py::list out;
        for (auto a : arrays[i]) out.append(it.to_tensor(a));
        arrays[i] = out;
      } else {
        arrays[i] = it.to_tensor(arrays[i]);
      }
    }
  }
  if (it.single) return arrays[0];
  return it.batch_cls(arrays, it.names, self);
}

py::object epoch_next(PyEpochIter& it) {
  if (it.gen.is_none()) throw py::stop_iteration();
  if (!it.gen.equal(it.dl.attr("_iter_gen"))) {
    throw Error("this iterator's epoch was abandoned by a later iter(loader) (a loader runs one epoch at a time: two "
                "live iterators of one loader would share its batches); iterate one at a time, or make a second "
                "DataLoader");
  }
  auto& l = it.dl.attr("_loader").cast<PyLoader&>();
  std::shared_ptr<PyBatch> h;
  const uint64_t gen = l.gen;
  try {
    h = take_next(l);
  } catch (const BatchError&) {
    throw;  // one batch given up at its place: the epoch goes on, as in C++
  } catch (const WorkerError&) {
    it.gen = py::none();  // the epoch is abandoned
    throw;
  }
  if (!h) {
    it.gen = py::none();
    throw py::stop_iteration();
  }
  // The loop keeps more batches than the ring can spare (list(loader), a kept batch per step):
  // hand this one out as a copy, so the workers keep a slot each to fill.
  const bool as_copy = it.copy || l.held_batches() > it.max_held;
  try {
    py::object out;
    if (as_copy && !it.copy) {
      out = it.dl.attr("_wrap")(py::cast(h), true);
    } else if (it.fast) {
      out = wrap_fast(it, h);
    } else {
      out = it.dl.attr("_wrap")(py::cast(h));
      if (!it.copy) {
        const auto layout = it.dl.attr("_layout").cast<py::tuple>();  // (names, ragged, to_tensor)
        it.to_tensor = layout[2];
        it.batch_cls = it.dl.attr("_make_batch");
        it.names = layout[0];
        it.single = it.dl.attr("_single").cast<bool>();
        it.fast = true;
      }
    }
    if (as_copy) h->batch.release();  // the batch owns its copies: the slot goes back now
    if (as_copy && !it.copy) ++l.copied;
    return out;
  } catch (...) {
    if (l.gen == gen) {  // not if the interruption began another epoch, loaded a state or closed
      l.uncount(h->batch);
      l.held = std::move(h);
    }
    throw;
  }
}

}  // namespace

PYBIND11_MODULE(_ringloader, m) {
  m.doc() = "ringloader's C++ core; use the `ringloader` package";
  install_fork_hooks();
  py::register_exception_translator(&translate);

  py::class_<SampleOut>(m, "SampleOut", "What a Dataset's get(index, out) writes through")
      .def("__getitem__", &SampleOut::field, py::arg("name"),
           "A writable NumPy view of the field in the batch slot (valid during get())")
      .def("set_shape", &SampleOut::set_shape, py::arg("name"), py::arg("shape"),
           "A variable field: the shape this sample writes (call before out[name])")
      .def("write", [](SampleOut& o, py::handle sample) { write_sample_into(o, o.schema(), sample); },
           py::arg("sample"), "Copy a sample (a tuple/dict/value of arrays, tensors, numbers) into the slot")
      .def_property_readonly("rng", &SampleOut::rng, "numpy.random.Generator seeded from (seed, epoch, index)")
      .def_property_readonly("index", &SampleOut::index)
      .def_property_readonly("epoch", &SampleOut::epoch)
      .def_property_readonly("worker_id", &SampleOut::worker_id)
      .def_property_readonly("batch", &SampleOut::batch, "The indices of the batch this sample is filled in")
      .def_property_readonly("batch_serial", &SampleOut::batch_serial, "A number new for each batch filled")
      .def("set_source", &SampleOut::set_source, "The file this sample came from (for error messages)");

  py::class_<NativeDataset>(m, "NativeDataset")
      .def("__len__", [](const NativeDataset& d) { return d.ds->size(); })
      .def("path", [](const NativeDataset& d, size_t i) { return fs_str(d.ds->path(i)); })
      .def("label", [](const NativeDataset& d, size_t i) { return d.ds->label(i); })
      .def_property_readonly("image_size", [](const NativeDataset& d) { return d.ds->image_size(); })
      .def_property_readonly("classes",
                             [](const NativeDataset& d) {
                               if (auto* f = dynamic_cast<datasets::ImageFolder*>(d.ds.get())) return fs_strs(f->classes());
                               if (auto* f = dynamic_cast<datasets::Shards*>(d.ds.get())) return fs_strs(f->classes());
                               return py::list();
                             })
      .def_property_readonly("transform", [](const NativeDataset& d) { return d.ds->options().transform.describe(); })
      .def_property_readonly("shard_sizes", [](const NativeDataset& d) {
        if (auto* f = dynamic_cast<datasets::Shards*>(d.ds.get())) return f->shard_sizes();
        return std::vector<size_t>{};
      });

  // Each takes the transform as pipeline_from() reads it, then the decode options.
  m.def(
      "image_folder",
      [](const std::string& root, const py::list& steps, const std::string& output, std::array<float, 3> mean,
         std::array<float, 3> std, int64_t max_pixels, int reader_threads, const std::string& decoder, bool allow_empty,
         const py::object& is_valid_file) {
        datasets::ImageFolderOptions o;
        static_cast<datasets::ImageDatasetOptions&>(o) =
            image_options(steps, output, mean, std, max_pixels, reader_threads, decoder);
        o.allow_empty = allow_empty;
        o.list_unreadable = true;  // torchvision's indices: a broken link is a sample that fails to load
        if (!is_valid_file.is_none()) {
          o.is_valid_file = [&is_valid_file](const std::string& path) {
            py::gil_scoped_acquire g;  // the scan runs without it; the predicate is Python
            return py::bool_(is_valid_file(fs_str(path))).cast<bool>();
          };
        }
        py::gil_scoped_release rel;  // the scan reads the disk
        return NativeDataset{std::make_shared<datasets::ImageFolder>(root, o)};
      },
      py::arg("root"), py::arg("steps"), py::arg("output"), py::arg("mean"), py::arg("std"), py::arg("max_pixels"),
      py::arg("reader_threads"), py::arg("decoder"), py::arg("allow_empty") = false,
      py::arg("is_valid_file") = py::none());
  m.def(
      "file_list",
      [](const std::string& list, const py::list& steps, const std::string& output, std::array<float, 3> mean,
         std::array<float, 3> std, int64_t max_pixels, int reader_threads, const std::string& decoder) {
        auto o = image_options(steps, output, mean, std, max_pixels, reader_threads, decoder);
        py::gil_scoped_release rel;
        return NativeDataset{std::make_shared<datasets::FileListDataset>(list, o)};
      },
      py::arg("list"), py::arg("steps"), py::arg("output"), py::arg("mean"), py::arg("std"), py::arg("max_pixels"),
      py::arg("reader_threads"), py::arg("decoder"));
  m.def(
      "shards",
      [](const std::string& path, const py::list& steps, const std::string& output, std::array<float, 3> mean,
         std::array<float, 3> std, int64_t max_pixels, int reader_threads, const std::string& decoder) {
        datasets::ShardsOptions o;
        static_cast<datasets::ImageDatasetOptions&>(o) =
            image_options(steps, output, mean, std, max_pixels, reader_threads, decoder);
        py::gil_scoped_release rel;  // the open reads and checks every shard's index
        return NativeDataset{std::make_shared<datasets::Shards>(path, o)};
      },
      py::arg("path"), py::arg("steps"), py::arg("output"), py::arg("mean"), py::arg("std"), py::arg("max_pixels"),
      py::arg("reader_threads"), py::arg("decoder"));

  py::class_<loader::Sampler, std::shared_ptr<loader::Sampler>>(m, "Sampler")
      .def("__len__", &loader::Sampler::size)
      .def("indices", [](const loader::Sampler& s, uint64_t seed, uint64_t epoch) { return s.indices({seed, epoch}); });
  py::class_<loader::DistributedSampler, loader::Sampler, std::shared_ptr<loader::DistributedSampler>>(m, "DistributedSampler")
      .def(py::init<size_t, int, int, bool, std::optional<uint64_t>, bool>(), py::arg("n"), py::arg("rank"),
           py::arg("world_size"), py::arg("shuffle") = true, py::arg("seed") = py::none(), py::arg("drop_last") = false)
      .def_property_readonly("rank", &loader::DistributedSampler::rank)
      .def_property_readonly("world_size", &loader::DistributedSampler::world_size);
  py::class_<loader::BlockShuffleSampler, loader::Sampler, std::shared_ptr<loader::BlockShuffleSampler>>(
      m, "BlockShuffleSampler")
      .def(py::init<std::vector<size_t>, size_t, std::optional<uint64_t>, int, int, bool>(), py::arg("block_sizes"),
           py::arg("window"), py::arg("seed") = py::none(), py::arg("rank") = 0, py::arg("world_size") = 1,
           py::arg("drop_last") = false);
  m.def("detect_distributed", [](std::optional<int> rank, std::optional<int> world) {
    const auto e = loader::DistributedEnv::resolve(rank, world);
    return py::make_tuple(e.rank, e.world_size, e.local_rank, e.source);
  });

  py::class_<PyBatch, std::shared_ptr<PyBatch>>(m, "Batch")
      .def("arrays", [](py::object self) { return batch_arrays(self.cast<std::shared_ptr<PyBatch>>(), self); })
      .def_property_readonly("names",
                             [](const PyBatch& b) {
                               std::vector<std::string> n;
                               for (const auto& f : b.batch.schema().fields) n.push_back(f.name);
                               return n;
                             })
      .def_property_readonly("indices",
                             [](py::object self) {
                               auto& b = self.cast<PyBatch&>().batch;
                               const auto idx = b.indices();
                               return py::array(py::dtype("int64"), {static_cast<py::ssize_t>(idx.size())}, {},
                                                idx.data(), self);
                             })
      .def_property_readonly("skipped",
                             [](const PyBatch& b) {
                               py::list out;
                               for (const auto& s : b.batch.skipped()) out.append(skipped_tuple(s));
                               return out;
                             })
      .def_property_readonly("seq", [](const PyBatch& b) { return b.batch.seq(); })
      .def_property_readonly("epoch", [](const PyBatch& b) { return b.batch.epoch(); })
      .def("__len__", [](const PyBatch& b) { return b.batch.size(); })
      .def("release", [](PyBatch& b) { b.batch.release(); });

  py::class_<PyLoader>(m, "Loader")
      .def(py::init([](py::object dataset, const py::dict& options) {
             loader::LoaderOptions o = options_from(options);
             if (py::hasattr(dataset, "_native")) dataset = dataset.attr("_native");
             if (py::isinstance<NativeDataset>(dataset)) {
               return std::make_unique<PyLoader>(
                   std::static_pointer_cast<datasets::Dataset>(dataset.cast<NativeDataset&>().ds), std::move(o));
             }
             if (py::isinstance<py::tuple>(dataset)) {  // ("recipe", factory, args): the fork-server path
               auto t = dataset.cast<py::tuple>();
               loader::DatasetRecipe r{t[1].cast<std::string>(), t[2].cast<std::string>()};
               return std::make_unique<PyLoader>(r, std::move(o));
             }
             if (py::hasattr(dataset, "get")) {
               return std::make_unique<PyLoader>(
                   std::static_pointer_cast<datasets::Dataset>(std::make_shared<PyMapDataset>(dataset)), std::move(o));
             }
             return std::make_unique<PyLoader>(
                 std::static_pointer_cast<datasets::IterableDataset>(std::make_shared<PyStreamDataset>(dataset)),
                 std::move(o));
           }),
           py::arg("dataset"), py::arg("options"))
      .def(
          "start_epoch",
          [](PyLoader& l, std::optional<uint64_t> seed) {
            not_busy(l, "iter(loader)");
            l.held.reset();  // that epoch is abandoned
            ++l.gen;
            if (seed) l.reseed(*seed);
            l.start_epoch();
          },
          py::arg("seed") = py::none())
      .def_property_readonly("resuming", &loader::DataLoader::resuming)
      .def("__len__", &loader::DataLoader::size)
      .def("set_epoch",
           [](PyLoader& l, uint64_t e) {
             not_busy(l, "set_epoch()");
             l.set_epoch(e);
           })
      .def_property_readonly("epoch", &loader::DataLoader::epoch)
      .def_property_readonly("seed", &loader::DataLoader::seed)
      .def_property_readonly("num_slots", &loader::DataLoader::num_slots)
      .def("worker_pids", &loader::DataLoader::worker_pids)
      .def("state",
           [](const PyLoader& l) {
             not_busy(l, "state_dict()", true);
             return l.state();
           })
      .def("load_state",
           [](PyLoader& l, const std::string& json) {
             not_busy(l, "load_state_dict()");
             l.load_state(json);
             l.held.reset();  // the loaded position replaces the epoch it belonged to
             ++l.gen;
           })
      .def("skipped",
           [](const PyLoader& l) {
             py::list out;
             for (const auto& s : l.skipped()) out.append(skipped_tuple(s));
             return out;
           })
      .def("stats",
           [](const PyLoader& l) {
             const auto s = l.stats();
             py::dict d;
             d["batches"] = s.batches;
             d["copied_batches"] = l.copied;
             d["samples"] = s.samples;
             d["worker_restarts"] = s.worker_restarts;
             d["worker_deaths"] = s.worker_deaths;
             d["timeouts"] = s.timeouts;
             d["epochs"] = s.epochs;
             d["threaded_forks"] = s.threaded_forks;
             d["worker_wakeups"] = s.worker_wakeups;
             return d;
           })
      .def("shared_memory",
           [](const PyLoader& l) {
             const auto r = l.shared_memory();
             return py::make_tuple(reinterpret_cast<uintptr_t>(r.data()), r.size());
           })
      .def("interrupt", &loader::DataLoader::interrupt)
      .def("close", [](PyLoader& l) {
        if (l.busy) {  // next() is running: it closes the loader when it returns (interrupted now)
          l.close_pending = true;
          l.interrupt();
          return;
        }
        close_now(l);
      });

  py::class_<PyEpochIter>(m, "EpochIterator", "One epoch's batches (iter(loader) makes it)")
      .def(py::init([](py::object dl) {
        PyEpochIter it;
        it.gen = dl.attr("_iter_gen");
        it.copy = dl.attr("copy").cast<bool>();
        const auto& l = dl.attr("_loader").cast<PyLoader&>();
        const size_t workers = std::max<size_t>(1, dl.attr("num_workers").cast<size_t>());
        // The ring has a slot per worker beyond these (the package asks for extra_slots to make it so).
        it.max_held = l.num_slots() > workers ? l.num_slots() - workers : 0;
        it.dl = std::move(dl);
        return it;
      }))
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &epoch_next);

  m.def("init", [] { ringloader::init(); }, "Start the fork server (first thing in the program)");
  m.def("register_factory", [](const std::string& name, const std::string& module, const std::string& function) {
    // The registry lives until the process exits, after the interpreter: it holds names, not objects.
    ringloader::register_dataset(name, [module, function](const std::string& args) -> std::shared_ptr<datasets::Dataset> {
      py::gil_scoped_acquire g;
      try {
        py::object obj = py::module_::import(module.c_str()).attr(function.c_str())(py::bytes(args));
        if (py::hasattr(obj, "_native")) return obj.attr("_native").cast<NativeDataset&>().ds;
        return std::make_shared<PyMapDataset>(obj);
      } catch (py::error_already_set& e) {
        throw_foreign(e);
      }
    });
  });
  m.def("get_worker_info", []() -> py::object {
    const auto w = worker_info();
    if (!w) return py::none();
    return py::make_tuple(w->id, w->num_workers, w->seed, w->pid, w->epoch);
  });
  m.def("set_log_level", &loader::set_log_level);
  // The keyword form's preset (python/ringloader/vision.py): one home, datasets::ImageNetPreset.
  m.attr("IMAGENET_MEAN") = py::make_tuple(decimal(datasets::kImageNetMean[0]), decimal(datasets::kImageNetMean[1]),
                                           decimal(datasets::kImageNetMean[2]));
  m.attr("IMAGENET_STD") = py::make_tuple(decimal(datasets::kImageNetStd[0]), decimal(datasets::kImageNetStd[1]),
                                          decimal(datasets::kImageNetStd[2]));
  m.def("preset_resize", [](int size) { return datasets::ImageNetPreset{.size = size}.resize(); }, py::arg("size"),
        "The shorter side before the centre crop of the keyword form (224 -> 256)");
  bind_pack(m);
}
