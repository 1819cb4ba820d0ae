#include "loader/detail/recovery.hpp"

#include <signal.h>

#include <algorithm>

#include "loader/detail/fill.hpp"
#include "loader/detail/log.hpp"
#include "loader/detail/records.hpp"

namespace ringloader::loader::detail {

Recovery::Recovery(const ipc::SlotRing& ring, const SlotLayout& layout, const ResolvedOptions& options,
                   std::function<std::string(uint32_t)> describe_task, std::function<std::string(int64_t)> source_of)
    : ring_(ring),
      layout_(layout),
      opts_(options),
      describe_task_(std::move(describe_task)),
      source_of_(std::move(source_of)),
      wake_all_(options.stream),
      hist_(ring.num_slots()) {}

void Recovery::reset(uint32_t s) { hist_[s] = History{}; }

std::vector<SkippedSample> Recovery::take_skips(uint32_t s) { return std::exchange(hist_[s].skips, {}); }

std::vector<int64_t> Recovery::take_culprits(uint32_t s) {
  std::vector<int64_t> c = std::move(hist_[s].culprits);
  hist_[s].culprits.clear();
  std::erase(c, -1);
  return c;
}

std::string Recovery::describe_culprits(const History& h) const {
  std::vector<int64_t> u = h.culprits;
  std::erase(u, -1);
  if (u.empty()) return {};
  std::sort(u.begin(), u.end());
  u.erase(std::unique(u.begin(), u.end()), u.end());
  std::string d = "in sample";
  d += u.size() > 1 ? "s " : " ";
  for (size_t i = 0; i < u.size() && i < 8; ++i) {
    const std::string src = source_of_(u[i]);
    d += (i ? ", " : "") + std::to_string(u[i]) + (src.empty() ? "" : " (" + src + ")");
  }
  return d;
}

void Recovery::on_reclaimed(const WorkerDeath& d, const ipc::SlotRing::Reclaimed& tb) {
  const uint32_t s = tb.slot;
  History& h = hist_[s];
  h.culprits.push_back(tb.progress);
  h.timed_out = d.killed_by_watchdog;
  // Evidence against a sample: a crash signal, an exit code or a hang (the watchdog) while it
  // was being filled. A SIGKILL may be anyone's - an external kill, the OOM killer, a killer
  // faster than one sample (every retry restarts at the batch's first sample) - so it neither
  // counts nor breaks the streak; a death in another sample starts a new one.
  const bool strong = own_fault(d.status, d.killed_by_watchdog);
  if (tb.progress < 0) {
    h.streak_sample = -1;
    h.streak = 0;
  } else if (tb.progress != h.streak_sample) {
    h.streak_sample = tb.progress;
    h.streak = strong ? 1 : 0;
  } else if (strong) {
    ++h.streak;
  }
  const size_t attempts = ring_.slot(s).attempts;
  const size_t max = opts_.user.max_retries;
  const bool blamed = h.streak >= max;
  const bool spent = attempts >= 4 * max;
  std::string in_sample;
  if (tb.progress >= 0) {
    const std::string src = source_of_(tb.progress);
    in_sample = ", in sample " + std::to_string(tb.progress) + (src.empty() ? "" : " (" + src + ")");
  }
  if (!blamed && !spent) {
    log().warn("{} while filling {}{}; retrying the batch (attempt {})", d.describe(), describe_task_(s), in_sample,
               attempts + 1);
    ring_.requeue(s, false, wake_all_);
    return;
  }
  give_up(s, d, h, blamed ? std::vector<int64_t>{h.streak_sample} : std::vector<int64_t>{});
}

void Recovery::give_up(uint32_t s, const WorkerDeath& d, History& h, const std::vector<int64_t>& blamed) {
  auto& task = ring_.task<TaskRecord>(s);
  const size_t attempts = ring_.slot(s).attempts;
  std::string msg = describe_task_(s);
  const std::string pid = std::to_string(d.pid);
  const std::string where = describe_culprits(h);
  if (blamed.empty()) {
    // Many deaths and no sample to blame: not the data's fault, so never skipped as if it were.
    // Killed: by the watchdog, or from outside (own_fault's rule); a worker that aborts or
    // faults crashed itself.
    const bool killed = d.killed_by_watchdog || !own_fault(d.status, false);
    msg += " took down " + std::to_string(attempts) + " workers without a sample to blame (" +
           (where.empty() ? std::string("none was in progress") : "they died " + where) + "; the last, pid " + pid +
           ", " + (d.killed_by_watchdog ? std::string("hung past timeout") : d.status.describe()) +
           (killed ? "): its workers are being killed from outside, or by the OOM killer (see dmesg), faster than a "
                     "batch can be filled"
                   : "): its workers crash outside any one sample (in the dataset's batch set-up or a thread of its "
                     "own), so no sample is blamed");
    log().error("{}", msg);
    give_up_batch(layout_, ring_.payload(s), std::span<const int64_t>(ring_.indices(s).data(), task.count),
                  ErrorKind::kWorker, msg, OnError::kRaise);
    ring_.put_filled(s);
    return;
  }
  if (h.timed_out) {
    msg += " was not filled within timeout=" + std::to_string(opts_.user.timeout.count()) + " ms by " +
           std::to_string(attempts) + " workers in turn (the last, pid " + pid + ", was killed); they hung " + where;
  } else {
    msg += " took down " + std::to_string(attempts) + " workers (max_retries=" + std::to_string(opts_.user.max_retries) +
           "); the last, pid " + pid + ", " + d.status.describe() + "; they died " + where;
  }
  log().error("{}", msg);
  const std::span<const int64_t> indices(ring_.indices(s).data(), task.count);
  if (opts_.user.on_error == OnError::kSkip) {
    // Drop only the sample to blame; retry the rest as a new task.
    std::vector<int64_t> keep;
    for (int64_t i : indices) {
      if (std::find(blamed.begin(), blamed.end(), i) == blamed.end()) keep.push_back(i);
    }
    if (!keep.empty() && keep.size() < indices.size()) {
      for (int64_t i : indices) {
        if (std::find(keep.begin(), keep.end(), i) == keep.end()) h.skips.push_back({i, source_of_(i), msg});
      }
      std::copy(keep.begin(), keep.end(), ring_.indices(s).begin());
      task.count = static_cast<uint32_t>(keep.size());
      h.culprits.clear();
      h.streak = 0;
      h.streak_sample = -1;
      ring_.requeue(s, /*fresh=*/true, wake_all_);
      return;
    }
  }
  give_up_batch(layout_, ring_.payload(s), indices, h.timed_out ? ErrorKind::kTimeout : ErrorKind::kWorker, msg,
                opts_.user.on_error);
  ring_.put_filled(s);
}

}  // namespace ringloader::loader::detail
