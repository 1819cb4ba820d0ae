#include "loader/detail/worker_pool.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <system_error>
#include <thread>

#include "core/error.hpp"
#include "loader/detail/log.hpp"

namespace ringloader::loader::detail {
namespace {

using namespace std::chrono_literals;
constexpr auto kStopGrace = 500ms;   ///< workers asked to stop get this long before SIGKILL
constexpr auto kReapWait = 1000ms;   ///< after SIGKILL, how long stop() waits to reap

int64_t ns(std::chrono::nanoseconds d) { return d.count(); }

/// After the n-th failure in a row, the wait before the next fork: none after the first (a
/// one-off death is replaced at once), then 100 ms, 200 ms, 400 ms ... capped at 2 s.
int64_t backoff_ns(int n) {
  if (n <= 1) return 0;
  return ns(std::min<std::chrono::nanoseconds>(100ms * (1 << std::min(n - 2, 5)), 2000ms));
}

std::string seconds(int64_t d_ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d_ns) / 1e9);
  return buf;
}

/// ", stopped (SIGSTOP)" etc. from /proc/<pid>/stat; "" when running normally or unknown.
std::string run_state(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return "";
  const auto rp = line.rfind(')');
  if (rp == std::string::npos || rp + 2 >= line.size()) return "";
  switch (line[rp + 2]) {
    case 'T': return ", stopped by a signal (SIGSTOP/SIGTSTP)";
    case 't': return ", stopped by a debugger";
    case 'D': return ", in uninterruptible sleep (I/O)";
    case 'Z': return ", dead";
    default: return "";
  }
}

std::string last_log_of(const WorkerRecord& r) {
  std::string s(r.last_log, strnlen(r.last_log, sizeof r.last_log));
  return s;
}

}  // namespace

const char* worker_phase_name(WorkerPhase p) {
  switch (p) {
    case WorkerPhase::kStarting: return "starting";
    case WorkerPhase::kStartHook: return "in on_worker_start / worker_init_fn";
    case WorkerPhase::kIdle: return "idle";
    case WorkerPhase::kFilling: return "filling a batch";
    case WorkerPhase::kStartHookFailed: return "after its on_worker_start / worker_init_fn threw";
  }
  return "?";
}

std::string WorkerDeath::describe() const {
  std::string d = "worker " + std::to_string(id) + " (pid " + std::to_string(pid) + ") ";
  d += killed_by_watchdog ? "was killed by the watchdog (past timeout)" : status.describe();
  if (held.empty()) {
    // kFilling with nothing held: it died between filling a batch and saying it was idle.
    d += phase == WorkerPhase::kFilling ? std::string(" just after filling a batch")
                                        : std::string(" while ") + worker_phase_name(phase);
  }
  if (!last_log.empty()) d += "; its last log line: \"" + last_log + "\"";
  return d;
}

WorkerPool::WorkerPool(const ipc::SlotRing& ring, std::span<WorkerRecord> records, std::unique_ptr<ipc::Launcher> launcher,
                       PoolConfig config)
    : ring_(ring),
      records_(records),
      launcher_(std::move(launcher)),
      cfg_(std::move(config)),
      workers_(cfg_.num_workers),
      watch_(ring.num_slots()),
      owner_(::getpid()) {}

bool own_fault(const ipc::ExitStatus& status, bool killed_by_watchdog) {
  if (killed_by_watchdog || !status.signaled) return true;
  return status.value != SIGKILL && status.value != SIGTERM && status.value != SIGINT;
}

void WorkerPool::launch(size_t id, bool replacement) {
  WorkerRecord& rec = records_[id];
  rec.phase.store(static_cast<uint32_t>(WorkerPhase::kStarting), std::memory_order_relaxed);
  rec.pid.store(0, std::memory_order_relaxed);
  rec.batches.store(0, std::memory_order_relaxed);
  rec.phase_since_ns.store(ipc::monotonic_ns(), std::memory_order_relaxed);
  rec.stream_generation.store(0, std::memory_order_relaxed);
  rec.stream_batches.store(0, std::memory_order_relaxed);
  rec.last_log[0] = '\0';
  if (cfg_.warn_threaded_fork) {
    if (const int threads = ipc::thread_count(); threads > 1) {
      ++threaded_forks_;
      if (!warned_threads_) {
        warned_threads_ = true;
        log().warn("forking workers from a process that runs {} threads: a lock held by another thread (malloc, a "
                   "logger, OpenMP, CUDA) stays locked in the workers. Create the loader with persistent_workers=true "
                   "before starting threads, or use the fork-server start method (ringloader::init() at the top of "
                   "main, StartMethod::kForkServer)",
                   threads);
      }
    }
  }
  if (!checked_sigchld_) {
    checked_sigchld_ = true;
    struct sigaction sa {};
    if (::sigaction(SIGCHLD, nullptr, &sa) == 0 && (sa.sa_handler == SIG_IGN || (sa.sa_flags & SA_NOCLDWAIT))) {
      log().warn("SIGCHLD is ignored in this process, so the kernel reaps the workers itself: a worker's death is "
                 "still noticed, but its exit code or signal cannot be reported");
    }
  }
  Worker& w = workers_[id];
  w.child = launcher_->launch(static_cast<int>(id));
  w.watchdog_killed = false;
  if (replacement) ++restarts_;
  log().debug("worker {} started, pid {}", id, w.child->pid());  // -1: the fork-server pool forks it soon
}

void WorkerPool::start() {
  running_ = true;
  failed_ = false;
  spawn_failures_ = 0;
  for (size_t id = 0; id < workers_.size(); ++id) {
    try {
      workers_[id] = Worker{};
      launch(id, false);
    } catch (const std::system_error& e) {
      stop();
      throw IpcError("starting worker " + std::to_string(id) + " of " + std::to_string(workers_.size()) + ": " + e.what());
    }
  }
}

bool WorkerPool::any_running() const {
  return std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.child != nullptr; });
}

WorkerPool::Report WorkerPool::reap() {
  Report r;
  if (!running_) return r;
  const int64_t now = ipc::monotonic_ns();
  for (size_t id = 0; id < workers_.size(); ++id) {
    Worker& w = workers_[id];
    if (!w.child) continue;
    const auto st = w.child->poll();
    if (!st) continue;
    const WorkerRecord& rec = records_[id];
    WorkerDeath d;
    d.id = static_cast<int>(id);
    d.pid = w.child->pid();
    d.status = *st;
    d.phase = static_cast<WorkerPhase>(rec.phase.load(std::memory_order_relaxed));
    d.last_log = last_log_of(rec);
    d.killed_by_watchdog = w.watchdog_killed;
    d.held = ring_.reclaim_from_dead(static_cast<int>(id));  // it is gone: nobody writes its slots now
    d.stream_generation = rec.stream_generation.load(std::memory_order_acquire);
    d.stream_batches = rec.stream_batches.load(std::memory_order_relaxed);
    const bool filled_any = rec.batches.load(std::memory_order_relaxed) > 0;
    w.child.reset();
    if (st->spawn_error != 0) {  // never ran (a fork-server pool could not fork it): a failed start
      ++spawn_failures_;
      w.not_before_ns = now + backoff_ns(spawn_failures_);
      if (spawn_failures_ >= cfg_.max_spawn_failures && !any_running()) {
        r.fatal = "cannot start worker " + std::to_string(id) + ": it " + st->describe() + " (" +
                  std::to_string(spawn_failures_) + " attempts in a row) and no worker is running";
      }
      continue;
    }
    ++deaths_;
    if (d.phase == WorkerPhase::kStartHookFailed && !st->signaled && st->value == kStartHookFailedExit) {
      r.fatal = "worker " + std::to_string(id) + " (pid " + std::to_string(d.pid) +
                ") failed in on_worker_start / worker_init_fn" +
                (d.last_log.empty() ? std::string() : ": " + d.last_log) + "; not restarting it";
    } else if (d.held.empty() && !filled_any) {
      // A start-up that crashes, exits or hangs (the watchdog) is the worker's own failure; a
      // SIGKILL there (an external kill, the OOM killer) counts only towards the larger budget.
      const bool at_start = d.phase == WorkerPhase::kStarting || d.phase == WorkerPhase::kStartHook;
      const bool own = own_fault(*st, d.killed_by_watchdog);
      w.fruitless += 1;
      if (!at_start) w.startup_deaths = 0;
      else if (own) w.startup_deaths += 1;
      if (w.startup_deaths >= cfg_.max_startup_deaths || w.fruitless >= cfg_.max_fruitless_deaths) {
        const int n = w.startup_deaths >= cfg_.max_startup_deaths ? w.startup_deaths : w.fruitless;
        r.fatal = "worker " + std::to_string(id) + " died " + std::to_string(n) + " times in a row " +
                  (at_start ? "while starting, " : "") + "before filling any batch; the last, " + d.describe() +
                  "; not restarting it";
      } else {
        w.not_before_ns = now + backoff_ns(std::max(w.startup_deaths, w.fruitless / 3));
      }
    } else {
      w.fruitless = 0;
      w.startup_deaths = 0;
      w.not_before_ns = now;
    }
    r.deaths.push_back(std::move(d));
  }
  if (r.fatal) failed_ = true;
  return r;
}

std::optional<std::string> WorkerPool::respawn() {
  if (!running_ || failed_) return std::nullopt;
  const int64_t now = ipc::monotonic_ns();
  for (size_t id = 0; id < workers_.size(); ++id) {
    Worker& w = workers_[id];
    if (w.child || now < w.not_before_ns) continue;
    try {
      launch(id, true);
      spawn_failures_ = 0;
    } catch (const std::system_error& e) {
      ++spawn_failures_;
      w.not_before_ns = now + backoff_ns(spawn_failures_);
      if (spawn_failures_ >= cfg_.max_spawn_failures && !any_running()) {
        failed_ = true;
        return "cannot start worker " + std::to_string(id) + ": " + e.what() + " (" + std::to_string(spawn_failures_) +
               " attempts in a row) and no worker is running";
      }
      log().warn("cannot start a replacement for worker {} ({}); trying again in {}", id, e.what(),
                 seconds(w.not_before_ns - now));
      return std::nullopt;  // the next call tries again
    }
  }
  return std::nullopt;
}

void WorkerPool::watchdog() {
  if (!running_ || cfg_.timeout.count() <= 0) return;
  const int64_t now = ipc::monotonic_ns();
  const int64_t limit = ns(cfg_.timeout);
  for (uint32_t s = 0; s < ring_.num_slots() && cfg_.kill_stuck_claims; ++s) {
    const ipc::SlotWord w = ring_.word(s);
    Watch& wt = watch_[s];
    if (w.state != ipc::SlotState::kClaimed || w.worker < 0 || static_cast<size_t>(w.worker) >= workers_.size()) {
      wt.key = 0;
      continue;
    }
    const uint64_t key = w.pack();
    if (wt.key != key) {
      // A claim not seen before: its claimant's stamp if there is one yet, else now.
      wt.key = key;
      wt.since_ns = ring_.claimed_at(s, w.ticket).value_or(now);
    }
    Worker& wk = workers_[static_cast<size_t>(w.worker)];
    if (now - wt.since_ns < limit || !wk.child || wk.watchdog_killed) continue;
    log().warn("worker {} (pid {}) has not filled {} within timeout={} ms; killing it", w.worker, wk.child->pid(),
               cfg_.describe_task ? cfg_.describe_task(s) : "its batch", cfg_.timeout.count());
    wk.watchdog_killed = true;
    wk.child->kill(SIGKILL);
  }
  for (size_t id = 0; id < workers_.size(); ++id) {
    Worker& wk = workers_[id];
    if (!wk.child || wk.watchdog_killed || wk.child->pid() <= 0) continue;  // not forked yet: nothing to kill
    const WorkerRecord& rec = records_[id];
    const auto phase = static_cast<WorkerPhase>(rec.phase.load(std::memory_order_relaxed));
    if (phase != WorkerPhase::kStarting && phase != WorkerPhase::kStartHook) continue;
    const int64_t since = rec.phase_since_ns.load(std::memory_order_relaxed);
    if (now - since < limit) continue;
    log().warn("worker {} (pid {}) has been {} for more than timeout={} ms; killing it", id, wk.child->pid(),
               worker_phase_name(phase), cfg_.timeout.count());
    wk.watchdog_killed = true;
    wk.child->kill(SIGKILL);
  }
}

void WorkerPool::stop(bool graceful, std::chrono::milliseconds limit) noexcept {
  if (owner_ != ::getpid()) return;  // a fork of the owner: its copies only unmap
  if (!running_ && !any_running()) return;
  running_ = false;  // from here on nothing is respawned
  try {
    ring_.request_shutdown(static_cast<uint32_t>(workers_.size()));
  } catch (...) {
  }
  for (auto& w : workers_) {
    if (w.child) w.child->kill(SIGCONT);  // a stopped worker cannot leave
  }
  // `limit` bounds both waits together.
  const auto start = std::chrono::steady_clock::now();
  const auto end = limit == std::chrono::milliseconds::max() ? std::chrono::steady_clock::time_point::max() : start + limit;
  const auto wait_all = [this, end](std::chrono::milliseconds wait) {
    const auto deadline = std::min(std::chrono::steady_clock::now() + wait, end);
    for (;;) {
      bool left = false;
      for (auto& w : workers_) left |= w.child && !w.child->poll();
      if (!left || std::chrono::steady_clock::now() >= deadline) return;
      std::this_thread::sleep_for(2ms);
    }
  };
  if (graceful) wait_all(kStopGrace);
  for (auto& w : workers_) {
    if (w.child && !w.child->poll()) w.child->kill(SIGKILL);
  }
  wait_all(kReapWait);
  for (auto& w : workers_) w.child.reset();  // what is still not reaped is reaped later (WorkerProcess)
  ring_.reclaim_all();  // no worker exists: its claims are void
  ring_.clear_shutdown();
  for (auto& wt : watch_) wt = Watch{};
}

void WorkerPool::drain_abandoned(std::chrono::milliseconds patience) noexcept {
  const auto claimed = [this] {
    for (uint32_t s = 0; s < ring_.num_slots(); ++s) {
      if (ring_.word(s).state == ipc::SlotState::kClaimed) return true;
    }
    return false;
  };
  try {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (claimed()) {
      if (std::chrono::steady_clock::now() > deadline) {
        log().warn("workers did not drop the abandoned epoch's batches within {} ms; restarting them", patience.count());
        stop();
        return;
      }
      (void)ring_.wait_for_fill([&] { return !claimed(); }, 20ms);
      auto report = reap();
      for (auto& d : report.deaths) {
        for (auto& tb : d.held) ring_.abandon(tb.slot);
      }
      if (report.fatal) {
        log().warn("while abandoning an epoch: {}", *report.fatal);
        stop(false);
        return;
      }
      for (uint32_t s = 0; s < ring_.num_slots(); ++s) ring_.abandon(s);
    }
  } catch (...) {
    stop(false);  // whatever failed, the next epoch starts afresh
  }
}

std::vector<int> WorkerPool::pids() const {
  std::vector<int> v;
  for (const auto& w : workers_) {
    if (w.child && w.child->pid() > 0) v.push_back(w.child->pid());
  }
  return v;
}

std::string WorkerPool::describe_workers() const {
  const int64_t now = ipc::monotonic_ns();
  std::string d;
  for (size_t id = 0; id < workers_.size(); ++id) {
    const Worker& w = workers_[id];
    const WorkerRecord& rec = records_[id];
    d += d.empty() ? "" : "; ";
    d += "worker " + std::to_string(id);
    if (!w.child) {
      d += " not running (being restarted)";
      continue;
    }
    if (w.child->pid() <= 0) {
      d += " not forked yet by the fork-server pool (is it stopped, or still building the dataset?)";
      continue;
    }
    const auto phase = static_cast<WorkerPhase>(rec.phase.load(std::memory_order_relaxed));
    d += " (pid " + std::to_string(w.child->pid()) + ") " + worker_phase_name(phase) + " for " +
         seconds(now - rec.phase_since_ns.load(std::memory_order_relaxed)) + run_state(w.child->pid());
  }
  return d;
}

}  // namespace ringloader::loader::detail
