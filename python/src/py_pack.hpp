#pragma once
// rl.pack(): datasets::ShardWriter for Python (python/ringloader/_pack.py is its face). The GIL
// is released while the shards are written and taken only to report a line or check for Ctrl-C.
#include <pybind11/pybind11.h>

namespace ringloader::python {

/// Adds _ringloader.pack(...) to `m`.
void bind_pack(pybind11::module_& m);

}  // namespace ringloader::python
