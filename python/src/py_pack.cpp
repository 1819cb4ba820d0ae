#include "python/src/py_pack.hpp"

#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "datasets/shard_writer.hpp"

namespace ringloader::python {

namespace py = pybind11;

void bind_pack(py::module_& m) {
  m.def(
      "pack",
      [](const std::string& source, const std::string& dest, uint64_t shard_size, int max_short_side, int quality, int jobs,
         uint64_t seed, const std::string& order, int64_t max_pixels, bool force, py::object log) {
        if (order != "shuffled" && order != "source") {
          throw ConfigError("order='" + order + "' is not one of 'shuffled', 'source'");
        }
        datasets::ShardWriterOptions o;
        o.shard_size = shard_size;
        o.max_short_side = max_short_side;
        o.quality = quality;
        o.jobs = jobs;
        o.seed = seed;
        o.shuffle = order == "shuffled";
        o.max_pixels = max_pixels;
        o.force = force;
        if (!log.is_none()) {
          o.log = [&log](const std::string& line) {
            py::gil_scoped_acquire g;
            log(py::bytes(line));  // file names are bytes; the caller decodes as os.fsdecode does
          };
        }
        // Ctrl-C between chunks: KeyboardInterrupt, and nothing written.
        o.interrupt_check = [] {
          py::gil_scoped_acquire g;
          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        };
        datasets::PackResult r;
        {
          py::gil_scoped_release unlocked;
          r = datasets::ShardWriter(dest, o).write(source);
        }
        if (r.images == 0) {
          throw ConfigError("no image of " + source + " could be packed (" + std::to_string(r.bad_files.size()) + " bad)");
        }
        py::list bad;
        for (const auto& b : r.bad_files) bad.append(py::make_tuple(py::bytes(b.path), py::bytes(b.reason)));
        py::dict d;
        d["images"] = r.images;
        d["shards"] = r.shards;
        d["bytes"] = r.bytes;
        d["reencoded"] = r.reencoded;
        d["bad_files"] = bad;
        d["seconds"] = r.seconds;
        d["images_per_second"] = r.seconds > 0 ? static_cast<double>(r.total) / r.seconds : 0.0;
        return d;
      },
      py::arg("source"), py::arg("dest"), py::arg("shard_size"), py::arg("max_short_side"), py::arg("quality"),
      py::arg("jobs"), py::arg("seed"), py::arg("order"), py::arg("max_pixels"), py::arg("force"), py::arg("log"),
      "datasets::ShardWriter(dest, options).write(source); see ringloader.pack");
}

}  // namespace ringloader::python
