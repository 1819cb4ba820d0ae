#pragma once
// RingHeader: the shared-memory header of a SlotRing. Private to ipc/ (slot_ring.cpp; tests
// reach it through SlotRingTestAccess): the layers above go through SlotRing's operations.
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "ipc/semaphore.hpp"

namespace ringloader::ipc::detail {

/// Shared-memory header of the whole ring. Layout: fixed fields, counters, two semaphores.
struct alignas(64) RingHeader {
  uint64_t magic;
  uint32_t num_slots;
  uint32_t max_batch;
  uint64_t task_bytes;     ///< per slot, 64-byte multiple
  uint64_t extra_bytes;    ///< 64-byte multiple
  uint64_t payload_bytes;  ///< per slot, as configured
  std::atomic<uint32_t> shutdown;    ///< set by main: workers exit
  std::atomic<int32_t> sleepers;     ///< workers in wait_for_task
  std::atomic<uint64_t> generation;  ///< the layer above's current iteration
  std::atomic<uint32_t> main_waiting;  ///< 1 while the main process is in wait_for_fill
  uint32_t pad0;
  uint64_t next_order;                 ///< main only: SlotHeader::order of the next queue()
  Semaphore tasks;   ///< wakes a worker asleep in wait_for_task
  Semaphore filled;  ///< wakes the main process asleep in wait_for_fill
};
static_assert(std::is_standard_layout_v<RingHeader>);

}  // namespace ringloader::ipc::detail
