#pragma once
// The loader's records inside the ring's shared region: one TaskRecord per slot (the ring's
// task area) and one WorkerRecord per worker (the ring's extra area).
//
// TaskRecord: written by the main process while its slot is FREE or HELD, read-only while
// QUEUED or CLAIMED (SlotRing's rule). WorkerRecord: written by its worker only (the main
// process resets it before forking the worker); the main process reads it to supervise.
#include <atomic>
#include <cstdint>
#include <type_traits>

namespace ringloader::loader::detail {

/// One batch to fill. Layout: 64 bytes.
struct TaskRecord {
  uint64_t seq;           ///< map-style: batch number within the epoch; stream: queue order
  uint64_t generation;    ///< the iteration it belongs to (SlotRing::generation())
  uint64_t epoch;
  uint64_t seed;
  uint32_t count;         ///< indices in use (map-style) or samples wanted (stream)
  int32_t target_worker;  ///< -1: any worker; stream datasets: the worker whose shard this is
  uint64_t pad[3];
};
static_assert(std::is_trivially_copyable_v<TaskRecord> && std::is_standard_layout_v<TaskRecord> &&
              sizeof(TaskRecord) == 64);

/// The exit code of a worker whose start hook (on_worker_start / worker_init_fn) threw. Dataset
/// code can exit with it too, so the spawner also needs the phase kStartHookFailed, which only the
/// worker's own C++ code sets.
constexpr int kStartHookFailedExit = 3;

/// What a worker is doing, for supervision and messages.
enum class WorkerPhase : uint32_t {
  kStarting = 0,   ///< forked, not yet in dataset code
  kStartHook = 1,  ///< in Dataset::on_worker_start / worker_init_fn
  kIdle = 2,       ///< waiting for a task
  kFilling = 3,    ///< filling a batch
  kStartHookFailed = 4,  ///< its start hook threw; it exits with kStartHookFailedExit
};
const char* worker_phase_name(WorkerPhase p);

/// One worker's status. Layout: 256 bytes (four cache lines).
struct alignas(64) WorkerRecord {
  std::atomic<uint32_t> phase;          ///< WorkerPhase
  std::atomic<int32_t> pid;             ///< the worker process, 0 before it has started
  std::atomic<uint64_t> batches;        ///< batches this process has filled
  std::atomic<int64_t> phase_since_ns;  ///< monotonic_ns() of the last phase change
  std::atomic<uint64_t> stream_generation;  ///< stream datasets: the iteration whose shard it reads
  std::atomic<uint64_t> stream_batches;     ///< ... and how many batches of it it has filled
  uint64_t pad0[3];
  /// The last warning or error the worker logged (NUL-terminated; written by the worker only,
  /// read by the main process once the worker is dead).
  char last_log[192];
};
static_assert(std::is_standard_layout_v<WorkerRecord> && sizeof(WorkerRecord) == 256);
static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
              std::atomic<uint64_t>::is_always_lock_free);

}  // namespace ringloader::loader::detail
