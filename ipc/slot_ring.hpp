#pragma once
// SlotRing: the shared-memory ring of batch slots, and the only code that changes a slot's
// state. Built by the main process inside one SharedRegion before any worker is forked;
// forked workers use the same object (inherited mapping) and never destroy it.
//
// Region layout (every block 64-byte aligned, payloads page aligned):
//   RingHeader | SlotHeader[num_slots] | task[num_slots][task_bytes]
//   | int64 indices[num_slots][max_batch] | extra[extra_bytes] | payload[num_slots]
// `task` and `extra` belong to the layer above (the loader keeps its task record - epoch,
// seed, the worker a task is meant for - and one status record per worker there).
//
// A slot's life, each step one named operation (a compare-and-swap of the slot's state word):
//
//   FREE --queue--> QUEUED --try_claim--> CLAIMED(worker) --mark_filled--> FILLED
//     ^               |  ^                    | reclaim_from_dead              | hand_out
//     |claim_for_main |  | requeue            v (worker dead)                  v
//     |               +-> HELD (main) <-------+                           HANDED_OUT
//     |                    | put_filled --> FILLED                             |
//     +--- release / abandon / reclaim_all -----------------------------------+
//
// (docs/design.md's ASSIGNED(batch, worker) is QUEUED + CLAIMED.) Only the main process queues,
// claims for itself, reclaims, requeues and frees; only a worker claims and marks filled. The
// task (record and indices) is written by the main process while the slot is FREE or HELD, and
// is read-only while QUEUED or CLAIMED. Every queue and requeue draws a new ticket, and
// mark_filled needs the ticket of its claim: a worker whose claim was reclaimed can never fill
// the slot's next task.
//
// Semaphores are wake-ups, posted only when someone sleeps: `tasks` when a worker is (about
// to be) asleep in wait_for_task, `filled` when the main process is in wait_for_fill. Sleepers
// re-check the state words, which are the truth, so a count lost or left behind by a dying
// process costs at most one short timed wait, and the counts stay small however long the ring
// runs (they are not a tally of batches).
//
//   ipc::SlotRing ring({.num_slots = 4, .max_batch = 256, .payload_bytes = 40 << 20});
//   // main:   write ring.indices(s), ring.task<MyTask>(s)...; ring.queue(s); ring.wake_workers(1);
//   // worker: if (auto c = ring.try_claim(id)) { ...write ring.payload(c->slot)...; ring.mark_filled(*c, id); }
//
// Thread-safe and process-safe through the state words; the task fields follow the rules above.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "ipc/semaphore.hpp"
#include "ipc/shared_region.hpp"

namespace ringloader::ipc {

namespace detail {
struct RingHeader;  // ipc/detail/ring_header.hpp: private to ipc
}

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes of one machine.
int64_t monotonic_ns();

enum class SlotState : uint8_t { kFree = 0, kQueued = 1, kClaimed = 2, kFilled = 3, kHandedOut = 4, kHeld = 5 };
const char* slot_state_name(SlotState s);

/// Decoded state word: state | (worker + 1) << 8 | ticket << 32.
struct SlotWord {
  SlotState state = SlotState::kFree;
  int worker = -1;      ///< the claiming / filling worker, -1 if none
  uint32_t ticket = 0;  ///< drawn anew by queue() and requeue(): tells one task from the next

  static SlotWord unpack(uint64_t w) {
    return {static_cast<SlotState>(w & 0xff), static_cast<int>((w >> 8) & 0xffffff) - 1, static_cast<uint32_t>(w >> 32)};
  }
  uint64_t pack() const {
    return uint64_t{static_cast<uint8_t>(state)} | (uint64_t(static_cast<uint32_t>(worker + 1) & 0xffffff) << 8) |
           (uint64_t{ticket} << 32);
  }
};

/// Shared-memory header of one slot: 64 bytes, one cache line.
struct alignas(64) SlotHeader {
  std::atomic<uint64_t> state;    ///< SlotWord packed
  std::atomic<int64_t> progress;  ///< free for the layer above (the loader: the sample being filled)
  std::atomic<int64_t> claimed_at_ns;   ///< monotonic_ns() of the claim whose ticket is claim_ticket
  std::atomic<uint32_t> claim_ticket;   ///< stamped by the claimant after its claim (0: none yet)
  uint32_t attempts;                    ///< claims reclaimed from dead workers since queue(); main only
  uint64_t order;                       ///< queue order: workers claim the oldest task first; main only
  uint64_t pad1[3];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
              std::atomic<int32_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<SlotHeader> && sizeof(SlotHeader) == 64);

class SlotRing {
 public:
  struct Config {
    uint32_t num_slots = 0;
    uint32_t max_batch = 0;    ///< most indices one task holds
    size_t payload_bytes = 0;  ///< bytes of one slot's payload
    RegionOptions region{};
    size_t task_bytes = 64;    ///< bytes of the layer above's task record per slot
    size_t extra_bytes = 0;    ///< bytes for the layer above, once per ring
  };
  /// A worker's claim: the slot and the ticket of the task it claimed.
  struct Claim {
    uint32_t slot = 0;
    uint32_t ticket = 0;
  };
  /// A claim reclaimed from a dead worker: now HELD by the main process.
  struct Reclaimed {
    uint32_t slot = 0;
    int64_t progress = -1;  ///< what the worker had published in SlotHeader::progress
  };

  /// Main process, before fork. Throws RegionTooLarge / std::system_error / std::length_error.
  explicit SlotRing(const Config& c);
  /// Attaches to a ring another process created, received as a descriptor of `bytes` bytes
  /// (a fork-server spawner). Does not own the semaphores: never destroys them.
  SlotRing(int fd, size_t bytes);
  SlotRing(const SlotRing&) = delete;
  SlotRing& operator=(const SlotRing&) = delete;
  /// In the process that created the ring: destroys the semaphores (workers are gone by then).
  /// In any other process (a fork of it): only unmaps.
  ~SlotRing();

  uint32_t num_slots() const { return num_slots_; }
  uint32_t max_batch() const { return max_batch_; }
  size_t payload_bytes() const { return payload_bytes_; }
  size_t region_size() const { return region_.size(); }
  std::byte* region_data() const { return region_.data(); }
  /// The region's descriptor when created with region.keep_fd, else -1.
  int region_fd() const { return region_.fd(); }
  const SlotHeader& slot(uint32_t i) const { return slots_[i]; }
  std::span<int64_t> indices(uint32_t i) const { return {indices_ + size_t{i} * max_batch_, max_batch_}; }
  std::byte* payload(uint32_t i) const { return payloads_ + size_t{i} * payload_stride_; }
  std::byte* extra() const { return extra_; }
  /// The layer above's task record of slot i (T must fit in task_bytes and be trivially copyable).
  template <class T>
  T& task(uint32_t i) const {
    static_assert(std::is_trivially_copyable_v<T> && alignof(T) <= 64);
    return *reinterpret_cast<T*>(tasks_ + size_t{i} * task_stride_);
  }
  /// Where the filler publishes what it is doing (the loader: the sample index being filled).
  std::atomic<int64_t>& progress(uint32_t i) const { return slots_[i].progress; }

  SlotWord word(uint32_t i) const { return SlotWord::unpack(slots_[i].state.load(std::memory_order_seq_cst)); }
  /// When the claim with `ticket` was made (monotonic_ns), if its claimant has stamped it yet.
  std::optional<int64_t> claimed_at(uint32_t i, uint32_t ticket) const {
    if (slots_[i].claim_ticket.load(std::memory_order_acquire) != ticket) return std::nullopt;
    return slots_[i].claimed_at_ns.load(std::memory_order_relaxed);
  }

  // --- main process ---
  /// FREE -> QUEUED with a new ticket, attempts 0. The task must be written already. Wakes
  /// nobody: a worker finds the task when it next looks (its idle wait is timed) or when the
  /// caller calls wake_workers() - which a main process with batches enough ready leaves for
  /// later: a wake-up is a system call and, on a VM, an IPI (40-50 us here), which the training
  /// loop would pay inside next() for a task not needed yet. Throws std::logic_error if the
  /// slot is not FREE.
  void queue(uint32_t i) const;
  /// Posts `tasks` once per worker asleep in wait_for_task, at most `n` times; returns the posts.
  uint32_t wake_workers(uint32_t n) const;
  /// QUEUED -> HELD: the main process claims the task as a worker would and fills it itself
  /// (num_workers = 0). False if not QUEUED.
  bool claim_for_main(uint32_t i) const;
  /// HELD -> QUEUED with a new ticket, keeping its place in the queue order (and its attempts,
  /// unless `fresh`: the task was changed); wakes sleeping workers as queue() does. False if
  /// not HELD.
  bool requeue(uint32_t i, bool fresh = false, bool wake_all = false) const;
  /// HELD -> FILLED: the main process wrote the payload (a result or an error). False if not HELD.
  bool put_filled(uint32_t i) const;
  /// FILLED -> HANDED_OUT. False if the slot was not FILLED.
  bool hand_out(uint32_t i) const;
  /// HANDED_OUT -> FREE (the Batch is done with it). False if the slot was in another state.
  bool release(uint32_t i) const;
  /// QUEUED, FILLED or HELD -> FREE: the task is no longer wanted. False if CLAIMED (a worker
  /// is still writing it: it comes back through mark_filled or reclaim_from_dead), HANDED_OUT or FREE.
  bool abandon(uint32_t i) const;
  /// Every slot CLAIMED by `worker` (which is dead: nobody writes those slots any more) ->
  /// HELD, attempts + 1. The main process then requeues, fills or abandons each.
  std::vector<Reclaimed> reclaim_from_dead(int worker) const;
  /// After every worker is gone: every slot but HANDED_OUT -> FREE.
  void reclaim_all() const;
  /// Sleeps until `ready()` holds or a worker fills a slot, at most `timeout`. Returns kSignal
  /// early when a signal handler interrupts the sleep. `ready` is checked after announcing
  /// the sleep, so a fill that happens meanwhile is never slept through.
  template <class Ready>
  Semaphore::Wake wait_for_fill(Ready ready, std::chrono::nanoseconds timeout) const {
    // announce_main_wait is seq_cst, as are the state words and mark_filled: either the filler
    // sees the flag or ready() sees its fill (a Dekker pair; free on x86 but for the store).
    announce_main_wait(true);
    const auto w = ready() ? Semaphore::Wake::kTaken : sleep_for_fill(timeout);
    announce_main_wait(false);
    return w;
  }
  /// Wakes the main process if it sleeps in wait_for_fill. Async-signal-safe.
  void wake_main() const noexcept;
  /// Sets the shutdown flag (workers leave their loop) and wakes `n` sleeping workers.
  void request_shutdown(uint32_t n) const;
  /// Clears the shutdown flag once the workers are gone.
  void clear_shutdown() const;
  /// Abandons every task queued so far: a new generation (returned), which the task records of
  /// the layer above carry; a worker drops a task of an older one at its next sample boundary.
  /// Frees no slot (abandon() does).
  uint64_t begin_generation() const;

  // --- any process ---
  /// The current generation (0 until the first begin_generation()).
  uint64_t generation() const;
  /// True from request_shutdown() until clear_shutdown(): a worker leaves its loop.
  bool shutting_down() const;

  // --- worker process ---
  /// Claims the oldest QUEUED slot whose task `accept(slot)` takes (QUEUED -> CLAIMED(worker)):
  /// tasks are filled in the order they were queued (a requeued one keeps its place), so the
  /// batch the training loop waits for is never passed over.
  template <class Accept>
  [[nodiscard]] std::optional<Claim> try_claim(int worker, Accept accept) const {
    for (;;) {
      std::optional<uint32_t> oldest;
      SlotWord oldest_word;
      for (uint32_t i = 0; i < num_slots(); ++i) {
        const SlotWord w = word(i);
        if (w.state != SlotState::kQueued || !accept(i)) continue;  // the task is stable while QUEUED
        if (!oldest || slots_[i].order < slots_[*oldest].order) {
          oldest = i;
          oldest_word = w;
        }
      }
      if (!oldest) return std::nullopt;
      const uint32_t i = *oldest;
      if (cas(i, oldest_word, {SlotState::kClaimed, worker, oldest_word.ticket})) {
        slots_[i].claimed_at_ns.store(monotonic_ns(), std::memory_order_relaxed);
        slots_[i].claim_ticket.store(oldest_word.ticket, std::memory_order_release);
        return Claim{i, oldest_word.ticket};
      }
      // another worker took it first: look again
    }
  }
  [[nodiscard]] std::optional<Claim> try_claim(int worker) const {
    return try_claim(worker, [](uint32_t) { return true; });
  }
  /// CLAIMED(worker, ticket) -> FILLED; wakes the main process if it sleeps. False if the claim
  /// was reclaimed meanwhile.
  bool mark_filled(const Claim& c, int worker) const;
  /// Sleeps until a task `accept` takes may be QUEUED, at most `timeout`.
  template <class Accept>
  void wait_for_task(Accept accept, std::chrono::nanoseconds timeout) const {
    announce_sleep(+1);  // seq_cst: a Dekker pair with wake_workers
    bool any = false;
    for (uint32_t i = 0; i < num_slots() && !any; ++i) any = word(i).state == SlotState::kQueued && accept(i);
    if (!any && !shutting_down()) sleep_for_task(timeout);
    announce_sleep(-1);
  }

 private:
  friend struct SlotRingTestAccess;  // tests/ipc: the wake-up counts
  bool cas(uint32_t i, SlotWord from, SlotWord to) const;
  void announce_main_wait(bool waiting) const;
  Semaphore::Wake sleep_for_fill(std::chrono::nanoseconds timeout) const;
  void announce_sleep(int32_t delta) const;
  void sleep_for_task(std::chrono::nanoseconds timeout) const;

  SharedRegion region_;  ///< owns the mapping; everything below points into it
  detail::RingHeader* header_ = nullptr;
  SlotHeader* slots_ = nullptr;
  std::byte* tasks_ = nullptr;
  int64_t* indices_ = nullptr;
  std::byte* extra_ = nullptr;
  std::byte* payloads_ = nullptr;
  size_t payload_stride_ = 0;
  uint32_t num_slots_ = 0;  ///< copies of the header's fixed fields, which never change
  uint32_t max_batch_ = 0;
  size_t task_stride_ = 0;
  size_t payload_bytes_ = 0;
  int owner_pid_ = 0;  ///< the process that created (not attached) the ring: destroys the semaphores
};

}  // namespace ringloader::ipc
