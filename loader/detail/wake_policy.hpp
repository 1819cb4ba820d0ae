#pragma once
// WakePolicy: how many sleeping workers the main process wakes for the map-style tasks it has
// queued. A wake-up is a futex call plus an IPI (40-50 us on a VM) that the training loop pays
// inside next(), so tasks are queued quietly while plenty of batches are ready ahead: an idle
// worker looks again by itself within its idle wait (1 ms, doubling to 200 ms). Sleepers are
// woken when the ready batches run low, and for a while after a quiet task made next() wait.
//
// Pure: counts in, a number of wake-ups out; no ring, no clock, no process. Owned by
// LoaderCore (main process, the loader's thread); not thread-safe.
//
//   WakePolicy policy(num_slots);
//   if (auto n = policy.after_queue(filled, waiting, batches)) ring.wake_workers(*n);
//   ring.wake_workers(policy.before_wait(unclaimed, late, batches));   // next() is about to wait
#include <algorithm>
#include <cstdint>
#include <optional>

namespace ringloader::loader::detail {

class WakePolicy {
 public:
  explicit WakePolicy(uint32_t num_slots) : num_slots_(num_slots) {}

  /// Tasks were just queued quietly. `filled`: slots FILLED now (the one next() is about to
  /// hand out included); `waiting`: quietly queued tasks still unclaimed; `batches`: batches
  /// handed out so far. Returns how many sleepers to wake (`waiting`: the quiet tasks are then
  /// quiet no more), or nothing: more than half the ring is ready, the tasks stay quiet.
  std::optional<uint32_t> after_queue(uint32_t filled, uint32_t waiting, uint64_t batches) const {
    if (filled > low_water() && !eager(batches)) return std::nullopt;
    return waiting;
  }

  /// next() is about to wait. `unclaimed`: quiet tasks still QUEUED; `late`: quiet tasks not
  /// yet filled (QUEUED or CLAIMED). A late quiet task cost more than the wake-up it saved, so
  /// waking turns eager for a span of batches, twice as long each time (a loop only just slower
  /// than its workers settles on waking them). Returns how many sleepers to wake.
  uint32_t before_wait(uint32_t unclaimed, uint32_t late, uint64_t batches) {
    if (late == 0) return 0;
    eager_span_ = std::min(std::max(eager_span_ * 2, 2 * uint64_t{num_slots_}), kMaxEagerSpan);
    eager_until_ = batches + eager_span_;
    return unclaimed;
  }

  /// True while every queued task wakes a sleeper (`batches` handed out so far).
  bool eager(uint64_t batches) const { return batches < eager_until_; }

 private:
  static constexpr uint64_t kMaxEagerSpan = uint64_t{1} << 16;
  /// 3 FILLED of 4 slots leave 2 ready after the hand-out: still enough to stay quiet.
  uint32_t low_water() const { return std::max<uint32_t>(2, num_slots_ / 2); }

  uint32_t num_slots_;
  uint64_t eager_until_ = 0;  ///< eager while fewer batches than this have been handed out
  uint64_t eager_span_ = 0;   ///< the last eager span (0: never eager yet)
};

}  // namespace ringloader::loader::detail
