#pragma once
// ForkServer, PoolClient, run_pool_host: the fork-server start method. ForkServer and
// PoolClient (the main process's side) are in fork_server.cpp, run_pool_host and
// report_pool_failure (the pool's) in pool_host.cpp.
//
// Forking a process that already runs threads is hazardous (a lock another thread held stays
// locked in the child). ForkServer::start(), called at the top of main while the process has
// one thread, forks a small server process. Later a loader asks it for a *pool*: the server
// forks a pool process, which runs the PoolEntry (built into the same binary) with the request
// text, the ring's descriptor and a channel to the main process; the pool then forks the
// workers on request, reaps them and reports each death, so workers are always forked from a
// single-threaded process.
//
//   ipc::ForkServer::start(&my_pool_entry);                       // main(), first line
//   ipc::PoolClient pool(ipc::ForkServer::open_pool(request, ring_fd));
//   auto w = pool.spawn(0);                                       // a worker, forked by the pool
//   for (auto& d : pool.poll()) ...                               // deaths, with exit status
//
// Each spawned worker comes with a pidfd (opened by the pool before it could be reaped), so
// the main process learns that a worker is gone from the kernel itself - not from the pool's
// channel closing, which can happen while the worker still runs - and signals it without a
// pid-reuse race.
//
// Lifetimes: the server dies with the main process or when its socket closes; a pool dies
// with the server, or when its PoolClient says QUIT / goes away, after stopping its workers;
// workers die with their pool. Knows no dataset: the request is text. A PoolClient copy in a
// forked child of the main process does nothing on destruction. PoolClient is used by one
// thread; ForkServer::open_pool is thread-safe.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/unique_handle.hpp"
#include "ipc/worker_process.hpp"

namespace ringloader::ipc {

/// Runs in a pool process: serve `channel` (see run_pool_host) with workers built from
/// `request` and the received region. Its return value is the pool's exit code.
using PoolEntry = int (*)(const std::string& request, core::UniqueFd region_fd, core::UniqueFd channel);

class ForkServer {
 public:
  /// Forks the server. Call once, first thing in main, while the process has one thread.
  /// Throws std::system_error naming the failing call; std::logic_error if already started.
  static void start(PoolEntry entry);
  static bool running();
  /// A new pool process for `request`, handed `region_fd`; returns the channel to it.
  /// Throws std::system_error if the server is gone.
  static core::UniqueFd open_pool(const std::string& request, int region_fd);
  /// Reaps the server if it has died (it is our child): no zombie outlives a loader that
  /// never needed the server again after it was killed.
  static void reap_if_dead();
};

/// The main process's end of one pool.
class PoolClient {
 public:
  struct Death {
    int id = -1;
    pid_t pid = -1;
    ExitStatus status;
  };
  struct Spawned {
    pid_t pid = -1;
    core::UniqueFd pidfd;  ///< readable once the worker has ended
    int error = 0;         ///< the pool's fork failed with this errno (pid -1)
  };

  explicit PoolClient(core::UniqueFd channel);
  PoolClient(const PoolClient&) = delete;
  PoolClient& operator=(const PoolClient&) = delete;
  /// In the process that opened it: says QUIT (and SIGCONTs the pool), waits at most 3 s for it
  /// to stop its workers and close, then SIGKILLs it if it still runs. Elsewhere: only closes.
  ~PoolClient();

  /// Asks the pool to fork worker `id`; the answer comes later through spawned(id).
  /// Throws std::system_error if the pool is gone.
  void request_spawn(int id);
  /// The pool's answer to request_spawn(id), once it has come (never blocks).
  std::optional<Spawned> spawned(int id);
  /// request_spawn + waiting (at most `limit`) for the answer; throws std::system_error if
  /// the fork failed, the pool is gone or did not answer.
  Spawned spawn(int id, std::chrono::milliseconds limit = std::chrono::milliseconds(10000));
  /// Deaths reported since the last call (never blocks, never throws).
  std::vector<Death> poll();
  /// The reported death of worker `id` with `pid`, once reported; others stay for poll().
  std::optional<ExitStatus> death_of(int id, pid_t pid);
  /// False once the pool's end of the channel has closed (the pool is gone).
  bool alive() const { return alive_; }
  /// Why the pool gave up before serving (report_pool_failure): "" if it did not.
  const std::string& failure() const { return failure_; }
  /// Whether the pool has answered a spawn request (so it had built the dataset).
  bool served() const { return served_; }
  /// Gives up on the pool: SIGKILLs it (its workers follow) and stops talking to it.
  void abandon();

 private:
  void drain(int timeout_ms);
  core::UniqueFd channel_;
  pid_t owner_;
  bool alive_ = true;
  pid_t pool_pid_ = -1;         ///< from the pool's HELLO
  core::UniqueFd pool_pidfd_;   ///< ditto: to signal it without a pid-reuse race
  std::vector<Death> deaths_;  ///< reported, not yet returned by poll()
  std::vector<std::pair<int, Spawned>> spawned_;  ///< answers to request_spawn() not yet taken
  std::string failure_;         ///< the pool's report_pool_failure text
  bool served_ = false;
};

/// The pool's loop: forks `body(id)` for each SPAWN, reports deaths, and on QUIT or when the
/// main process goes away waits up to 2 s for the workers, kills the rest and returns 0.
int run_pool_host(int channel, const std::function<int(int)>& body);

/// In a pool process that cannot serve (its dataset cannot be built): tells the main process
/// why, before exiting. The launcher then raises it instead of opening pool after pool.
void report_pool_failure(int channel, const std::string& why);

/// pidfd_open(2) on `pid`; -1 with errno on failure.
int pidfd_open(pid_t pid);
/// Has the process behind `pidfd` ended? (Polls it without waiting.)
bool pidfd_ended(int pidfd);

}  // namespace ringloader::ipc
