#pragma once
// LoaderCore: the DataLoader's engine - the hand-out path. It queues the epoch's batches into
// free slots, waits (bounded, interruptible) for the next one, and hands it out as a Batch.
// Workers belong to its WorkerPool, the batch order and resumable position to its EpochPlan,
// the fate of a dead worker's batch to its Recovery, the slot protocol to the SlotRing.
// Shared by the DataLoader handle and every live Batch (so the ring stays mapped while a
// Batch exists). Runs in the main process; worker_main() runs in forked workers on their
// inherited copy of this object.
//
// Defined in loader_core.cpp (lifecycle, next() and the hand-out) and loader_core_feed.cpp
// (queueing, waking workers, in-process fills, supervision).
//
// Thread-safety: start_epoch/next/shutdown from one thread; release_slot from any thread
// (a CAS on the slot's state word); interrupt from anywhere, a signal handler included.
// Only the process that built it touches its ring or workers: in a fork of that process
// (Python's multiprocessing, a helper that exits) destroying a copy only unmaps.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "ipc/slot_ring.hpp"
#include "loader/batch.hpp"
#include "loader/detail/epoch_plan.hpp"
#include "loader/detail/records.hpp"
#include "loader/detail/recovery.hpp"
#include "loader/detail/resolved_options.hpp"
#include "loader/detail/slot_layout.hpp"
#include "loader/detail/wake_policy.hpp"
#include "loader/detail/worker_pool.hpp"
#include "loader/options.hpp"

namespace ringloader::loader::detail {

class LoaderCore : public std::enable_shared_from_this<LoaderCore> {
 public:
  LoaderCore(std::shared_ptr<datasets::Dataset> map_ds, std::shared_ptr<datasets::IterableDataset> stream_ds,
             LoaderOptions options, std::optional<DatasetRecipe> recipe = std::nullopt);
  LoaderCore(const DatasetRecipe& recipe, LoaderOptions options);
  ~LoaderCore();

  void start_epoch();
  std::optional<Batch> next();
  /// Abandons the epoch and stops the workers: bounded (seconds), never throws, never
  /// respawns. Idempotent. In a process other than the creator: nothing.
  void shutdown() noexcept;
  void release_slot(uint32_t slot) noexcept;
  /// Makes the current (or next) wait of next() throw Interrupted. Async-signal-safe.
  void interrupt() noexcept;

  const SlotLayout& layout() const { return layout_; }
  size_t size() const { return plan_.batches_per_epoch(); }
  void set_epoch(uint64_t e) { plan_.set_next_epoch(e); }
  uint64_t epoch() const { return plan_.epoch(); }
  uint64_t seed() const { return plan_.seed(); }
  size_t num_slots() const { return ring_->num_slots(); }
  size_t held_batches() const;
  size_t ring_bytes() const { return ring_->region_size(); }
  std::span<std::byte> shared_memory() const { return {ring_->region_data(), ring_->region_size()}; }
  std::vector<int> worker_pids() const;
  const std::vector<SkippedSample>& skipped() const { return skipped_; }
  LoaderStats stats() const;
  std::string state() const { return plan_.state(active_); }
  /// DataLoader::uncount / recount: `b` (of this epoch) counted as delivered or not.
  void count_delivered(const Batch& b, bool delivered);
  void load_state(const std::string& json);
  void reseed(uint64_t seed);
  bool resuming() const { return plan_.resuming(); }

 private:
  bool stream() const { return stream_ds_ != nullptr; }
  bool mine() const;
  /// ConfigError in a forked copy: only the process that built the loader may iterate it.
  void check_owner() const;
  /// A new generation: workers drop every task queued so far at their next sample boundary,
  /// this process forgets them (slot_seq_), and no epoch is active. Frees no slot.
  void drop_tasks() noexcept;
  void abandon_epoch() noexcept;
  void end_epoch();
  /// Queues planned batches into FREE slots; wakes sleeping workers for them only when the
  /// batches ready ahead run low (map-style datasets; a stream's task wakes its worker at once).
  void refill();
  /// Queues planned batches into FREE slots without waking anyone (marked in quiet_); returns how many.
  uint32_t queue_free_slots();
  void clear_quiet();
  /// next() is about to wait: wakes sleepers for tasks still queued, and turns quiet queueing off for a while.
  void before_wait();
  /// Reaps dead workers (their batches retried or given up), replaces them, runs the
  /// watchdog. Throws WorkerError when the respawn budget is spent.
  void supervise();
  /// Ends the epoch at once and raises WorkerError(why): workers SIGKILLed, slots freed.
  [[noreturn]] void fail(const std::string& why);
  /// In-process (num_workers = 0): fills slot `s` now.
  void fill_in_process(uint32_t s);
  /// The slot to hand out next (in_order: the next batch in sequence, whatever its state).
  std::optional<uint32_t> pick_ready() const;
  bool ready_now() const;
  /// Every batch of the epoch has been handed out (a stream: every shard has ended).
  bool epoch_over() const;
  /// Nothing left to wait for: the training loop holds every slot (`next_slot`: pick_ready()).
  bool all_held(std::optional<uint32_t> next_slot) const;
  /// In-process: the slot to fill now (the next in order, or the oldest queued).
  uint32_t next_to_fill(std::optional<uint32_t> next_slot) const;
  /// One bounded wait (at most kPoll) for a fill, then supervision; TimeoutError past `deadline`.
  void wait_for_workers(int64_t started, int64_t deadline);
  void check_interrupt();
  [[noreturn]] void throw_timeout(int64_t waited_ns);
  /// FILLED -> HANDED_OUT: the Batch, nothing for an empty batch; throws a dataset error.
  std::optional<Batch> hand_out(uint32_t s);
  int worker_main(int id);

  // Member order is teardown order (reverse): the pool stops before the ring is unmapped.
  ResolvedOptions opts_;
  std::shared_ptr<datasets::Dataset> map_ds_;
  std::shared_ptr<datasets::IterableDataset> stream_ds_;
  std::optional<DatasetRecipe> recipe_;
  datasets::Schema schema_;
  SlotLayout layout_;
  std::unique_ptr<ipc::SlotRing> ring_;
  EpochPlan plan_;
  std::unique_ptr<Recovery> recovery_;
  std::unique_ptr<WorkerPool> pool_;  ///< null when num_workers = 0
  int owner_pid_ = 0;
  uint64_t owner_generation_ = 0;  ///< core::fork_generation() where it was built: mine() without a syscall
  std::atomic<bool> interrupt_{false};
  static_assert(std::atomic<bool>::is_always_lock_free);

  // Iteration state (main process).
  bool active_ = false;
  bool in_process_started_ = false;  ///< num_workers = 0: the start hooks ran in this process
  uint64_t queued_ = 0;     ///< batches queued so far this epoch (= index of the next in the plan)
  uint64_t delivered_ = 0;  ///< batches consumed (delivered, raised, or empty) this epoch
  std::vector<int64_t> slot_seq_;  ///< queue order of this epoch's task in slot i, -1 if none
  // Stream datasets.
  std::vector<uint8_t> exhausted_;  ///< per worker
  size_t round_robin_ = 0;
  bool in_process_exhausted_ = false;  ///< num_workers = 0: the stream ended this epoch
  int64_t in_process_pos_ = 0;         ///< num_workers = 0: the stream's position this epoch

  std::vector<SkippedSample> skipped_;
  LoaderStats stats_;
  int64_t last_check_ns_ = 0;  ///< when supervise last ran (it runs at least every kPoll)
  WakePolicy wake_policy_{0};  ///< when refill() and before_wait() wake sleeping workers
  std::vector<uint8_t> quiet_;  ///< per slot: queued without waking anyone since refill() last woke
  bool any_quiet_ = false;
};

}  // namespace ringloader::loader::detail
