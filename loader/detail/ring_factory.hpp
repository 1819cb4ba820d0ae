#pragma once
// make_ring(): the loader's SlotRing, sized from its resolved options and slot layout, with the
// loader's records in it (a TaskRecord per slot, a WorkerRecord per worker, reset), and the
// ipc layer's errors turned into ones that name the options to change. Main process, at loader
// construction, before any worker is forked.
#include <memory>

#include "ipc/slot_ring.hpp"
#include "loader/detail/records.hpp"
#include "loader/detail/resolved_options.hpp"
#include "loader/detail/slot_layout.hpp"

namespace ringloader::loader::detail {

/// Throws IpcError (too little room in shm_dir, a failing system call) or ConfigError (the
/// size overflows), each naming slots, workers, prefetch_factor and batch and sample sizes.
std::unique_ptr<ipc::SlotRing> make_ring(const ResolvedOptions& opts, const SlotLayout& layout);

/// The WorkerRecords make_ring() placed in the ring's extra area (one per worker, at least one).
inline WorkerRecord* worker_records(const ipc::SlotRing& ring) { return reinterpret_cast<WorkerRecord*>(ring.extra()); }

}  // namespace ringloader::loader::detail
