// LoaderCore, the feeding side: queueing the epoch's tasks into free slots (map-style in plan
// order, stream shards round-robin), waking sleeping workers for them (WakePolicy decides
// when), filling a task in-process when there are no workers, and the supervision glue that
// hands a dead worker's batch to Recovery. The hand-out side and the epoch lifecycle are in
// loader_core.cpp.
#include <unistd.h>

#include <algorithm>

#include "core/error.hpp"
#include "loader/detail/loader_core.hpp"
#include "loader/detail/fill.hpp"
#include "loader/detail/log.hpp"

namespace ringloader::loader::detail {

// ---------------------------------------------------------------- queueing and waking

void LoaderCore::refill() {
  const uint32_t newly = queue_free_slots();
  if (!pool_) return;
  if (stream()) {
    // A shard's task must reach its own worker at once: wake them all.
    if (newly > 0) stats_.worker_wakeups += ring_->wake_workers(ring_->num_slots());
    clear_quiet();
    return;
  }
  // Map-style: WakePolicy decides whether the tasks queued quietly need a wake-up now.
  if (newly == 0 && !any_quiet_) return;
  uint32_t filled = 0, waiting = 0;  // waiting: queued quietly, still unclaimed
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    const ipc::SlotState st = ring_->word(s).state;
    filled += st == ipc::SlotState::kFilled;
    waiting += st == ipc::SlotState::kQueued && quiet_[s] != 0;
  }
  const std::optional<uint32_t> wake = wake_policy_.after_queue(filled, waiting, stats_.batches);
  if (!wake) return;  // they stay quiet
  if (*wake > 0) stats_.worker_wakeups += ring_->wake_workers(*wake);
  clear_quiet();
}

void LoaderCore::before_wait() {
  if (!any_quiet_) return;
  uint32_t unclaimed = 0, late = 0;
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    if (quiet_[s] == 0) continue;
    const ipc::SlotState st = ring_->word(s).state;
    unclaimed += st == ipc::SlotState::kQueued;
    late += st == ipc::SlotState::kQueued || st == ipc::SlotState::kClaimed;
  }
  clear_quiet();
  const uint32_t wake = wake_policy_.before_wait(unclaimed, late, stats_.batches);
  if (wake > 0) stats_.worker_wakeups += ring_->wake_workers(wake);
}

void LoaderCore::clear_quiet() {
  if (!any_quiet_) return;
  std::fill(quiet_.begin(), quiet_.end(), 0);
  any_quiet_ = false;
}

uint32_t LoaderCore::queue_free_slots() {
  uint32_t newly = 0;
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    if (map_ds_ && queued_ >= plan_.size()) return newly;
    if (ring_->word(s).state != ipc::SlotState::kFree) continue;
    TaskRecord& task = ring_->task<TaskRecord>(s);
    task = TaskRecord{};
    if (map_ds_) {
      const auto b = plan_.batch(queued_);
      std::copy(b.begin(), b.end(), ring_->indices(s).begin());
      task.count = static_cast<uint32_t>(b.size());
      task.seq = plan_.seq(queued_);
      task.target_worker = -1;
    } else {
      const size_t n = exhausted_.size();
      size_t k = 0;
      while (k < n && exhausted_[(round_robin_ + k) % n]) ++k;
      if (k == n) return newly;  // every shard has ended
      task.target_worker = static_cast<int32_t>((round_robin_ + k) % n);
      round_robin_ = (round_robin_ + k + 1) % n;
      task.count = static_cast<uint32_t>(opts_.user.batch_size);
      task.seq = queued_;
    }
    task.generation = ring_->generation();
    task.epoch = plan_.epoch();
    task.seed = plan_.seed();
    recovery_->reset(s);
    slot_seq_[s] = static_cast<int64_t>(queued_);
    ++queued_;
    ring_->queue(s);  // wakes nobody: refill() wakes workers as they are needed
    quiet_[s] = 1;
    any_quiet_ = true;
    ++newly;
  }
  return newly;
}

void LoaderCore::fill_in_process(uint32_t s) {
  if (!ring_->claim_for_main(s)) return;
  const TaskRecord& t = ring_->task<TaskRecord>(s);
  FillContext ctx;
  ctx.epoch = t.epoch;
  ctx.seed = t.seed;
  ctx.batch = t.seq;
  ctx.worker_id = -1;
  ctx.pid = static_cast<int>(::getpid());
  ctx.on_error = opts_.user.on_error;
  try {
    if (map_ds_) {
      fill_batch(*map_ds_, layout_, ring_->payload(s), std::span<const int64_t>(ring_->indices(s).data(), t.count), ctx);
    } else {
      fill_stream_batch(*stream_ds_, layout_, ring_->payload(s), t.count, ctx, in_process_exhausted_, in_process_pos_);
    }
  } catch (...) {  // a PassThrough (Ctrl-C in the dataset): the batch is queued again, to be filled whole
    ring_->requeue(s);
    throw;
  }
  ring_->put_filled(s);
}

// ---------------------------------------------------------------- supervision

void LoaderCore::supervise() {
  last_check_ns_ = ipc::monotonic_ns();
  auto report = pool_->reap();
  for (const auto& d : report.deaths) {
    if (report.fatal) break;
    if (stream() && d.stream_generation == ring_->generation() && d.stream_batches > 0) {
      fail(d.describe() + " while reading a stream dataset: its shard's position is lost and a stream cannot replay "
                          "it; the epoch is abandoned (start the next one to go on)");
    }
    if (d.held.empty()) log().warn("{}; replacing it", d.describe());
    // A stream worker that had filled nothing of this epoch's shard: its replacement starts
    // the shard from the beginning, so its batch is simply retried.
    for (const auto& tb : d.held) {
      if (slot_seq_[tb.slot] < 0) ring_->abandon(tb.slot);  // an abandoned epoch's task
      else recovery_->on_reclaimed(d, tb);
    }
  }
  if (report.fatal) fail(*report.fatal);
  if (auto f = pool_->respawn()) fail(*f);
  pool_->watchdog();
}

void LoaderCore::fail(const std::string& why) {
  // No waiting here: the error must reach the training loop within its timeout.
  drop_tasks();
  pool_->stop(false);  // SIGKILL at once, bounded reap; frees every slot not handed out
  throw WorkerError(why);
}

}  // namespace ringloader::loader::detail
