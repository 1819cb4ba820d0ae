#pragma once
// WorkerPool: the one place that owns a loader's worker processes - spawn, reap, watchdog,
// respawn budget, bounded stop - for both start methods (an ipc::Launcher hides which).
// Main process, one thread (the loader's). What becomes of a dead worker's batches is the
// loader's decision: reap() hands them over, HELD.
//
//   WorkerPool pool(ring, records, std::make_unique<ipc::ForkLauncher>(body), config);
//   pool.start();
//   for (;;) {
//     auto report = pool.reap();             // deaths, with the batches they held; budget charged
//     ... requeue or give up report.deaths[i].held ...
//     if (report.fatal) throw WorkerError(*report.fatal);
//     if (auto f = pool.respawn()) throw WorkerError(*f);  // forks the replacements now due
//     pool.watchdog();                       // kills workers stuck past config.timeout
//   }
//   pool.stop();                             // bounded; also on destruction
//
// The budget. A worker that dies without holding a batch and without having filled one since
// it was forked is "fruitless"; it is respawned (at once the first time, then after 100 ms,
// 200 ms, ...). Three fruitless deaths in a row of the same worker that crashed, exited or hung
// during start-up (before or inside on_worker_start) are fatal, and so are ten fruitless deaths
// in a row of any kind (SIGKILLs included: an external kill or the OOM killer rarely repeats
// that often before a worker has filled anything).
// A worker whose start hook (on_worker_start / worker_init_fn) throws is fatal at once.
// Deaths while holding a batch are the batch's business (the loader blames a sample only when
// deaths recur on it). A fork that fails (EAGAIN under ulimit -u) is retried with backoff; it
// is fatal after `max_spawn_failures` in a row while no worker runs. Fatal means reap()
// reports it: the loader raises a WorkerError naming the pid, signal or exit code and the
// worker's last log line.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ipc/launcher.hpp"
#include "ipc/slot_ring.hpp"
#include "loader/detail/records.hpp"

namespace ringloader::loader::detail {

/// A worker that ended, and what it left.
/// Was this death the worker's own doing, evidence against what it was running? A crash signal,
/// an exit code, or a hang the watchdog ended. SIGKILL, SIGTERM and SIGINT come from outside (a
/// user, the OOM killer, a shutdown; workers ignore SIGINT, so one that died of it had it reset
/// and sent): they count against no sample and no start-up. The one rule for the pool's
/// start-up budget and recovery's blame (docs/design.md, "Supervision").
bool own_fault(const ipc::ExitStatus& status, bool killed_by_watchdog);

struct WorkerDeath {
  int id = -1;
  int pid = -1;
  ipc::ExitStatus status;
  WorkerPhase phase = WorkerPhase::kStarting;  ///< what it was doing when it died
  std::string last_log;                        ///< its last warning or error, "" if none
  bool killed_by_watchdog = false;             ///< past `timeout`: a hang, not a crash
  std::vector<ipc::SlotRing::Reclaimed> held;  ///< its claims, now HELD by the main process
  uint64_t stream_generation = 0;  ///< stream datasets: the iteration whose shard it was reading ...
  uint64_t stream_batches = 0;     ///< ... and the batches of it it had filled
  /// "worker 1 (pid 123) killed by signal 9 (Killed)" (+ " while idle" when it held no batch,
  /// + its last log line).
  std::string describe() const;
};

struct PoolConfig {
  size_t num_workers = 1;
  std::chrono::milliseconds timeout{0};  ///< watchdog limit; 0 = none
  int max_startup_deaths = 3;    ///< crashes, exits or hangs in a row during start-up before it is fatal
  int max_fruitless_deaths = 10;  ///< fruitless deaths in a row, wherever they happen
  int max_spawn_failures = 5;
  bool warn_threaded_fork = true;  ///< fork start method: warn once when forking a threaded process
  /// Kill a worker whose claim is older than the timeout (its batch is retried). Off for
  /// stream datasets, whose shard position a kill would lose: there next() only raises.
  bool kill_stuck_claims = true;
  /// Describes the task in slot s for log lines ("batch 3 (indices 12,13; first file a.jpg)").
  std::function<std::string(uint32_t)> describe_task;
};

class WorkerPool {
 public:
  WorkerPool(const ipc::SlotRing& ring, std::span<WorkerRecord> records, std::unique_ptr<ipc::Launcher> launcher,
             PoolConfig config);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool() { stop(); }

  /// Forks every worker (afresh: the budget starts over). Throws IpcError naming the worker
  /// and the failing call.
  void start();
  /// Started and not stopped.
  bool running() const { return running_; }

  struct Report {
    std::vector<WorkerDeath> deaths;
    std::optional<std::string> fatal;  ///< the budget is spent: what to raise
  };
  /// Reaps dead workers (reclaiming their claims, HELD) and charges the restart budget. Never
  /// blocks and never throws for a worker's sake. A fatal report stops respawns until the next start().
  Report reap();
  /// Forks the replacements whose backoff has passed (none once a report was fatal). Returns
  /// what to raise when forks keep failing with no worker left.
  std::optional<std::string> respawn();
  /// Kills (SIGKILL) workers that have held a claim (kill_stuck_claims), or been starting up,
  /// longer than the timeout. Their deaths come out of a later reap() marked killed_by_watchdog.
  void watchdog();
  /// Stops every worker: asks (and SIGCONTs), waits up to 0.5 s (`graceful`; else not at all),
  /// SIGKILLs the rest, reaps with a bounded wait (1 s), frees every slot not handed out; the
  /// two waits together take at most `limit` (a next() bounded by `timeout`). Never respawns,
  /// never throws. Only in the process that made the pool; elsewhere (a fork of it) a no-op.
  void stop(bool graceful = true, std::chrono::milliseconds limit = std::chrono::milliseconds::max()) noexcept;

  /// After the ring's tasks were abandoned, with persistent workers: waits for their claims to
  /// come back as abandoned batches, or for the workers to die and their claims to be reclaimed.
  /// Past `patience`, or on a fatal report, stops the workers instead (the next epoch starts
  /// afresh). Never throws.
  void drain_abandoned(std::chrono::milliseconds patience) noexcept;

  std::vector<int> pids() const;
  /// One clause per worker for messages: "worker 0 (pid 12) in on_worker_start for 2.3 s, stopped".
  std::string describe_workers() const;
  uint64_t restarts() const { return restarts_; }
  uint64_t deaths() const { return deaths_; }
  uint64_t threaded_forks() const { return threaded_forks_; }

 private:
  struct Worker {
    std::unique_ptr<ipc::Child> child;  ///< null while dead or not yet started
    int fruitless = 0;                  ///< fruitless deaths in a row
    int startup_deaths = 0;             ///< of which, in a row, crashes/exits/hangs during start-up
    int64_t not_before_ns = 0;          ///< backoff: no fork before this
    bool watchdog_killed = false;
  };
  /// Forks worker `id` (a `replacement` for a dead one counts as a restart).
  void launch(size_t id, bool replacement);
  bool any_running() const;

  const ipc::SlotRing& ring_;
  std::span<WorkerRecord> records_;
  std::unique_ptr<ipc::Launcher> launcher_;
  PoolConfig cfg_;
  std::vector<Worker> workers_;
  struct Watch {
    uint64_t key = 0;  ///< SlotWord of the claim being timed (ticket + worker), 0 = none
    int64_t since_ns = 0;
  };
  std::vector<Watch> watch_;  ///< per slot: when the main process first saw its current claim
  bool running_ = false;
  bool failed_ = false;  ///< a fatal report was made: no respawn until start()
  pid_t owner_;
  int spawn_failures_ = 0;
  uint64_t restarts_ = 0, deaths_ = 0, threaded_forks_ = 0;
  bool warned_threads_ = false;
  bool checked_sigchld_ = false;
};

}  // namespace ringloader::loader::detail
