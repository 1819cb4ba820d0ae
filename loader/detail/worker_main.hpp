#pragma once
// The worker loop, shared by workers forked from the main process and workers forked by a
// fork-server spawner. Runs in the worker process only.
#include <chrono>
#include <functional>
#include <string>

#include "core/unique_handle.hpp"
#include "datasets/dataset.hpp"
#include "ipc/slot_ring.hpp"
#include "loader/detail/records.hpp"
#include "loader/detail/slot_layout.hpp"

namespace ringloader::loader::detail {

/// What a worker needs; everything points into the worker's own (inherited) memory.
struct WorkerEnv {
  const ipc::SlotRing* ring = nullptr;
  const SlotLayout* layout = nullptr;
  WorkerRecord* records = nullptr;  ///< num_workers of them, in the ring's extra area
  datasets::Dataset* map_ds = nullptr;
  datasets::IterableDataset* stream_ds = nullptr;
  OnError on_error = OnError::kRaise;
  int num_workers = 1;
  uint64_t seed = 0;
  int64_t epoch = -1;  ///< the epoch being started when the worker was forked (-1: not known)
  int parent_pid = 0;  ///< the worker exits when its parent is no longer this
  std::chrono::milliseconds timeout{0};  ///< the loader's: resource retries stay under half of it
  std::function<void(const datasets::WorkerInfo&)> init_fn;
};

/// Claims and fills batches until the ring says shutdown or the parent goes away.
int run_worker(const WorkerEnv& env, int id);

/// A worker's start: the dataset's on_worker_start (its warning logged), then worker_init_fn.
/// Run by every worker, and by the loader itself once with num_workers = 0. Throws what they throw.
void run_start_hooks(datasets::Dataset* map_ds, const std::function<void(const datasets::WorkerInfo&)>& init_fn,
                     const datasets::WorkerInfo& info);

/// The fork-server spawner's entry point (ipc::SpawnerEntry): rebuilds the dataset from the
/// request's recipe, attaches the ring and serves worker spawns.
int spawner_main(const std::string& request, core::UniqueFd region_fd, core::UniqueFd channel);

/// Request text for spawner_main.
std::string spawner_request(const std::string& factory, const std::string& args, size_t ring_bytes, int num_workers,
                         uint64_t seed, OnError on_error, std::chrono::milliseconds timeout);

}  // namespace ringloader::loader::detail
