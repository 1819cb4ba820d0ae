#pragma once
// ForkServer, SpawnerClient, run_spawner: the fork-server start method. ForkServer and
// SpawnerClient (the main process's side) are in fork_server.cpp, run_spawner and
// report_spawner_failure (the spawner's) in spawner.cpp.
//
// Forking a process that already runs threads is hazardous (a lock another thread held stays
// locked in the child). ForkServer::start(), called at the top of main while the process has
// one thread, forks a small server process. Later a loader asks it for a *spawner*: the server
// forks a spawner process, which runs the SpawnerEntry (built into the same binary) with the request
// text, the ring's descriptor and a channel to the main process; the spawner then forks the
// workers on request, reaps them and reports each death, so workers are always forked from a
// single-threaded process.
//
//   ipc::ForkServer::start(&my_spawner_entry);     // main(), first line
//   ipc::SpawnerClient spawner(ipc::ForkServer::open_spawner(request, ring_fd));
//   auto w = spawner.spawn(0);                     // a worker, forked by the spawner
//   for (auto& d : spawner.poll()) ...             // deaths, with exit status
//
// Each spawned worker comes with a pidfd (opened by the spawner before it could be reaped), so
// the main process learns that a worker is gone from the kernel itself - not from the spawner's
// channel closing, which can happen while the worker still runs - and signals it without a
// pid-reuse race.
//
// Lifetimes: the server dies with the main process or when its socket closes; a spawner dies
// with the server, or when its SpawnerClient says QUIT / goes away, after stopping its workers;
// workers die with their spawner. Knows no dataset: the request is text. A SpawnerClient copy in a
// forked child of the main process does nothing on destruction. SpawnerClient is used by one
// thread; ForkServer::open_spawner is thread-safe.
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

/// Runs in a spawner process: serve `channel` (see run_spawner) with workers built from
/// `request` and the received region. Its return value is the spawner's exit code.
using SpawnerEntry = int (*)(const std::string& request, core::UniqueFd region_fd, core::UniqueFd channel);

class ForkServer {
 public:
  /// Forks the server. Call once, first thing in main, while the process has one thread.
  /// Throws std::system_error naming the failing call; std::logic_error if already started.
  static void start(SpawnerEntry entry);
  static bool running();
  /// A new spawner process for `request`, handed `region_fd`; returns the channel to it.
  /// Throws std::system_error if the server is gone.
  static core::UniqueFd open_spawner(const std::string& request, int region_fd);
  /// Reaps the server if it has died (it is our child): no zombie outlives a loader that
  /// never needed the server again after it was killed.
  static void reap_if_dead();
};

/// The main process's end of one spawner.
class SpawnerClient {
 public:
  struct Death {
    int id = -1;
    pid_t pid = -1;
    ExitStatus status;
  };
  struct Spawned {
    pid_t pid = -1;
    core::UniqueFd pidfd;  ///< readable once the worker has ended
    int error = 0;         ///< the spawner's fork failed with this errno (pid -1)
  };

  explicit SpawnerClient(core::UniqueFd channel);
  SpawnerClient(const SpawnerClient&) = delete;
  SpawnerClient& operator=(const SpawnerClient&) = delete;
  /// In the process that opened it: says QUIT (and SIGCONTs the spawner), waits at most 3 s for it
  /// to stop its workers and close, then SIGKILLs it if it still runs. Elsewhere: only closes.
  ~SpawnerClient();

  /// Asks the spawner to fork worker `id`; the answer comes later through spawned(id).
  /// Throws std::system_error if the spawner is gone.
  void request_spawn(int id);
  /// The spawner's answer to request_spawn(id), once it has come (never blocks).
  std::optional<Spawned> spawned(int id);
  /// request_spawn + waiting (at most `limit`) for the answer; throws std::system_error if
  /// the fork failed, the spawner is gone or did not answer.
  Spawned spawn(int id, std::chrono::milliseconds limit = std::chrono::milliseconds(10000));
  /// Deaths reported since the last call (never blocks, never throws).
  std::vector<Death> poll();
  /// The reported death of worker `id` with `pid`, once reported; others stay for poll().
  std::optional<ExitStatus> death_of(int id, pid_t pid);
  /// False once the spawner's end of the channel has closed (the spawner is gone).
  bool alive() const { return alive_; }
  /// Why the spawner gave up before serving (report_spawner_failure): "" if it did not.
  const std::string& failure() const { return failure_; }
  /// Whether the spawner has answered a spawn request (so it had built the dataset).
  bool served() const { return served_; }
  /// Gives up on the spawner: SIGKILLs it (its workers follow) and stops talking to it.
  void abandon();

 private:
  void drain(int timeout_ms);
  core::UniqueFd channel_;
  pid_t owner_;
  bool alive_ = true;
  pid_t spawner_pid_ = -1;        ///< from the spawner's HELLO
  core::UniqueFd spawner_pidfd_;  ///< ditto: to signal it without a pid-reuse race
  std::vector<Death> deaths_;  ///< reported, not yet returned by poll()
  std::vector<std::pair<int, Spawned>> spawned_;  ///< answers to request_spawn() not yet taken
  std::string failure_;        ///< the spawner's report_spawner_failure text
  bool served_ = false;
};

/// The spawner's loop: forks `body(id)` for each SPAWN, reports deaths, and on QUIT or when the
/// main process goes away waits up to 2 s for the workers, kills the rest and returns 0.
int run_spawner(int channel, const std::function<int(int)>& body);

/// In a spawner process that cannot serve (its dataset cannot be built): tells the main process
/// why, before exiting. The launcher then raises it instead of opening spawner after spawner.
void report_spawner_failure(int channel, const std::string& why);

/// pidfd_open(2) on `pid`; -1 with errno on failure.
int pidfd_open(pid_t pid);
/// Has the process behind `pidfd` ended? (Polls it without waiting.)
bool pidfd_ended(int pidfd);

}  // namespace ringloader::ipc
