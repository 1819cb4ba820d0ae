#pragma once
// Recovery: what becomes of a batch whose worker died (or was killed by the watchdog) while
// filling it. Main process, the loader's thread.
//
// The batch is retried, unless a sample is to blame: `max_retries` deaths in it by a crash
// signal, an exit code or a hang (the watchdog), with no death in another sample between
// them. SIGKILLs count for nothing: an external kill, the OOM killer, or a killer faster than
// one sample (every retry restarts at the batch's first sample) would otherwise pin a good
// sample. A blamed batch is given up at its place - BatchError, or TimeoutError when the deaths
// were hangs - or, under on_error=skip, only the blamed sample is dropped and reported and the
// rest is retried as a new task. A batch that takes down 4 x max_retries workers with no
// sample to blame is raised as a BatchError under either policy (nothing is skipped: it is not
// the data's fault), naming the samples it died in.
//
//   Recovery rec(ring, layout, options, describe_task, source_of);
//   rec.reset(slot);                            // a new task in the slot
//   for (auto& tb : death.held) rec.on_reclaimed(death, tb);   // requeued, or FILLED with the error
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ipc/slot_ring.hpp"
#include "loader/batch.hpp"
#include "loader/detail/resolved_options.hpp"
#include "loader/detail/slot_layout.hpp"
#include "loader/detail/worker_pool.hpp"

namespace ringloader::loader::detail {

class Recovery {
 public:
  Recovery(const ipc::SlotRing& ring, const SlotLayout& layout, const ResolvedOptions& options,
           std::function<std::string(uint32_t)> describe_task, std::function<std::string(int64_t)> source_of);

  /// Slot s got a new task: forget the last one's deaths.
  void reset(uint32_t s);
  /// `tb` (one of d.held) is HELD by the main process: requeue it, or give it up (its payload
  /// says why and it is FILLED, to be raised or reported at its place).
  void on_reclaimed(const WorkerDeath& d, const ipc::SlotRing::Reclaimed& tb);
  /// Samples the main process dropped from slot s's batch (on_error=skip), to report with it.
  std::vector<SkippedSample> take_skips(uint32_t s);
  /// The samples being filled at each death on slot s's batch (repeats kept), for BatchError.
  std::vector<int64_t> take_culprits(uint32_t s);

 private:
  struct History {
    std::vector<int64_t> culprits;  ///< sample in progress at each death (-1 if none)
    int64_t streak_sample = -1;     ///< the sample of the last deaths in a row ...
    size_t streak = 0;              ///< ... and how many of them were crashes, exit codes or hangs
    bool timed_out = false;         ///< the last death was the watchdog's
    std::vector<SkippedSample> skips;
  };
  std::string describe_culprits(const History& h) const;
  void give_up(uint32_t s, const WorkerDeath& d, History& h, const std::vector<int64_t>& blamed);

  const ipc::SlotRing& ring_;
  const SlotLayout& layout_;
  const ResolvedOptions& opts_;
  std::function<std::string(uint32_t)> describe_task_;
  std::function<std::string(int64_t)> source_of_;
  bool wake_all_;              ///< stream datasets: a requeued task must reach its own worker
  std::vector<History> hist_;  ///< per slot
};

}  // namespace ringloader::loader::detail
