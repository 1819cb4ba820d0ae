#pragma once
// What the loader says when it cannot hand out a batch: a task named for a message, the error
// for a training loop that holds every slot, the one for a wait past `timeout`. Main process;
// reads the ring, changes nothing.
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "core/error.hpp"
#include "datasets/dataset.hpp"
#include "ipc/slot_ring.hpp"
#include "loader/options.hpp"

namespace ringloader::loader::detail {

/// The file behind sample `index` of `ds` ("" for a stream, a negative index, or a dataset
/// that cannot say).
std::string source_of(const datasets::Dataset* ds, int64_t index);

/// Slot s's task for a message: "batch 7 (indices 3,9,...; first file a.jpg)", or the stream
/// shard it reads.
std::string describe_task(const ipc::SlotRing& ring, uint32_t s, bool stream, const datasets::Dataset* ds);

/// The error for a training loop that holds every one of `num_slots` slots: what to let go.
ConfigError all_slots_held(uint32_t num_slots, const LoaderOptions& o);

/// The error for a wait of `waited_ns` past `o.timeout`: what became of each slot in
/// `awaited` (the batch or batches next() waits for) and of the workers (`workers`).
TimeoutError wait_timed_out(const ipc::SlotRing& ring, std::span<const uint32_t> awaited, bool stream,
                            const datasets::Dataset* ds, int64_t waited_ns, const LoaderOptions& o,
                            const std::string& workers);

}  // namespace ringloader::loader::detail
