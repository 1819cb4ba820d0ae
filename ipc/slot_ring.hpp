#pragma once
// SlotRing: the shared-memory ring of batch slots. Built by the main process inside one
// SharedRegion before any worker is forked; forked workers use the same object (inherited
// mapping) and never destroy it.
//
// Region layout (every block 64-byte aligned, payloads page aligned):
//   RingHeader | SlotHeader[num_slots] | int64 indices[num_slots][max_batch] | payload[num_slots]
//
// A slot's life: FREE -> QUEUED(task) -> CLAIMED(worker) -> FILLED -> HANDED_OUT -> FREE.
// (DESIGN.md's ASSIGNED(batch, worker) is QUEUED + CLAIMED.) Each step is a compare-and-swap
// of the slot's state word. Only the main process queues, frees and gives back a dead
// worker's claim; only a worker claims and marks filled. The task (indices, seq, epoch...) is
// written by the main process while the slot is FREE and read-only until it is FREE again.
//
// Semaphores are wake-ups: `tasks` is posted once per queued slot, `filled` once per filled
// slot. Waiters re-check the state words, which are the truth, so a count lost or left behind
// by a dying process costs at most one short timed wait.
//
//   ipc::SlotRing ring({.num_slots = 4, .max_batch = 256, .payload_bytes = 40 << 20});
//   // main:   fill ring.indices(s), ring.slot(s).seq...; ring.queue(s);
//   // worker: if (auto s = ring.try_claim(id)) { ...write ring.payload(*s)...; ring.mark_filled(*s, id); }
//
// Thread-safe and process-safe through the state words; the task fields follow the rules above.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "ipc/semaphore.hpp"
#include "ipc/shared_region.hpp"

namespace ringloader::ipc {

enum class SlotState : uint8_t { kFree = 0, kQueued = 1, kClaimed = 2, kFilled = 3, kHandedOut = 4 };
const char* slot_state_name(SlotState s);

/// Decoded state word: state | (worker + 1) << 8 | ticket << 32.
struct SlotWord {
  SlotState state = SlotState::kFree;
  int worker = -1;      ///< the claiming / filling worker, -1 if none
  uint32_t ticket = 0;  ///< bumped on every queue(): tells one task from the next

  static SlotWord unpack(uint64_t w) {
    return {static_cast<SlotState>(w & 0xff), static_cast<int>((w >> 8) & 0xffffff) - 1, static_cast<uint32_t>(w >> 32)};
  }
  uint64_t pack() const {
    return uint64_t{static_cast<uint8_t>(state)} | (uint64_t(static_cast<uint32_t>(worker + 1) & 0xffffff) << 8) |
           (uint64_t{ticket} << 32);
  }
};

/// Shared-memory header of the whole ring. Layout: fixed fields, then two semaphores.
struct alignas(64) RingHeader {
  uint64_t magic;
  uint32_t num_slots;
  uint32_t max_batch;
  uint64_t payload_bytes;
  std::atomic<uint32_t> shutdown;    ///< set by main: workers exit
  std::atomic<uint64_t> generation;  ///< current iteration; claims of older ones are abandoned
  Semaphore tasks;                   ///< one post per queued slot (a wake-up)
  Semaphore filled;                  ///< one post per filled slot (a wake-up)
};

/// Shared-memory header of one slot: 128 bytes, two cache lines (state word alone on the first).
struct alignas(64) SlotHeader {
  std::atomic<uint64_t> state;         ///< SlotWord packed
  std::atomic<int64_t> claimed_at_ns;  ///< CLOCK_MONOTONIC of the claim; valid while CLAIMED
  std::atomic<int32_t> worker_pid;     ///< pid of the claiming worker; valid while CLAIMED/FILLED
  uint32_t pad0;
  std::atomic<int64_t> progress;  ///< free for the layer above (the loader: the sample being filled)
  uint64_t pad1[4];
  // The task: written by main while FREE, read-only afterwards.
  uint64_t seq;         ///< batch number within the iteration
  uint64_t generation;  ///< iteration the task belongs to
  uint64_t epoch;
  uint64_t seed;
  uint32_t count;         ///< number of indices
  int32_t target_worker;  ///< -1: any worker may claim it; else only this one (stream datasets)
  uint32_t attempts;      ///< times this task was given back after its worker died or hung
  uint32_t flags;         ///< free for the layer above
  uint64_t pad2[2];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
              std::atomic<int32_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<SlotHeader> && sizeof(SlotHeader) == 128);
static_assert(std::is_standard_layout_v<RingHeader>);

class SlotRing {
 public:
  struct Config {
    uint32_t num_slots = 0;
    uint32_t max_batch = 0;    ///< most indices one task holds
    size_t payload_bytes = 0;  ///< bytes of one slot's payload
    RegionOptions region;
  };

  /// Bytes of the shared region this config needs.
  static size_t region_bytes(const Config& c);

  /// Main process, before fork. Throws RegionTooLarge / std::system_error.
  explicit SlotRing(const Config& c);
  /// Attaches to a ring another process created, received as a descriptor of `bytes` bytes
  /// (a fork-server pool). Does not own the semaphores: never destroys them.
  SlotRing(int fd, size_t bytes);
  SlotRing(const SlotRing&) = delete;
  SlotRing& operator=(const SlotRing&) = delete;
  ~SlotRing();

  uint32_t num_slots() const { return header_->num_slots; }
  uint32_t max_batch() const { return header_->max_batch; }
  size_t payload_bytes() const { return header_->payload_bytes; }
  size_t region_size() const { return region_.size(); }
  /// The region's descriptor when created with region.keep_fd, else -1.
  int region_fd() const { return region_.fd(); }
  RingHeader& ring() const { return *header_; }
  SlotHeader& slot(uint32_t i) const { return slots_[i]; }
  std::span<int64_t> indices(uint32_t i) const { return {indices_ + size_t{i} * header_->max_batch, header_->max_batch}; }
  std::byte* payload(uint32_t i) const { return payloads_ + size_t{i} * payload_stride_; }

  SlotWord word(uint32_t i) const { return SlotWord::unpack(slots_[i].state.load(std::memory_order_acquire)); }
  /// CAS the state word from exactly `from` to `to`. True on success.
  bool transition(uint32_t i, SlotWord from, SlotWord to) const;

  // --- main process ---
  /// FREE -> QUEUED with a new ticket; posts `tasks`. The task fields must be written already.
  void queue(uint32_t i) const;
  /// FILLED -> HANDED_OUT. False if the slot was not FILLED.
  bool hand_out(uint32_t i) const;
  /// HANDED_OUT or FILLED or QUEUED -> FREE. False if the slot was in another state.
  bool release(uint32_t i) const;
  /// A dead (or killed) worker's CLAIMED slots: attempts + 1; those still under
  /// `max_attempts` go back to QUEUED (`tasks` posted), the others stay CLAIMED by nobody
  /// (worker -1: held by the main process, which decides what they become).
  struct GiveBack {
    std::vector<uint32_t> requeued;
    std::vector<uint32_t> held;
  };
  GiveBack give_back(int worker, uint32_t max_attempts = UINT32_MAX) const;

  // --- worker process ---
  /// Claim one QUEUED slot this worker may take (QUEUED -> CLAIMED(worker)), or nothing.
  [[nodiscard]] std::optional<uint32_t> try_claim(int worker, int32_t pid) const;
  /// CLAIMED(worker) -> FILLED(worker); posts `filled`. False if the claim was taken away.
  bool mark_filled(uint32_t i, int worker) const;

 private:
  SharedRegion region_;  ///< owns the mapping; everything below points into it
  RingHeader* header_ = nullptr;
  SlotHeader* slots_ = nullptr;
  int64_t* indices_ = nullptr;
  std::byte* payloads_ = nullptr;
  size_t payload_stride_ = 0;
  bool owner_ = false;  ///< created (not attached): destroys the semaphores
};

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes of one machine.
int64_t monotonic_ns();

}  // namespace ringloader::ipc
