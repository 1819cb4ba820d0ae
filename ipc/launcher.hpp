#pragma once
// Launcher / Child: starting worker processes, behind one interface for both start methods.
//
//   ForkLauncher launcher([&](int id) { return run_worker(id); });    // fork this process
//   SpawnerLauncher launcher([&] { return request; }, ring_fd);        // fork-server spawner
//   std::unique_ptr<ipc::Child> w = launcher.launch(0);
//   if (auto st = w->poll()) log("worker {} {}", w->pid(), st->describe());
//   w->kill(SIGKILL);
//
// A Child tells when its process has ended from the kernel (waitpid for our own children, a
// pidfd for a spawner's), never from a channel closing, so "ended" means nothing of it runs any
// more. Destroying a Child that still runs kills it (bounded wait, see WorkerProcess).
// A SpawnerLauncher opens its spawner on the first launch and a new one if that spawner died.
// Used by one thread of the process that made them; a fork of that process only unmaps.
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ipc/fork_server.hpp"
#include "ipc/worker_process.hpp"

namespace ringloader::ipc {

class Child {
 public:
  virtual ~Child() = default;
  /// -1 while a fork-server spawner has not forked it yet.
  virtual pid_t pid() const = 0;
  /// The exit status once the process has ended, without blocking.
  virtual std::optional<ExitStatus> poll() = 0;
  /// Sends `sig` if it still runs.
  virtual void kill(int sig) = 0;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  /// Starts worker `id` without waiting for long. Throws std::system_error naming what failed
  /// (fork: EAGAIN, ...); a failure noticed later shows as a status with spawn_error.
  virtual std::unique_ptr<Child> launch(int id) = 0;
};

/// Workers are forks of this process running body(id).
class ForkLauncher : public Launcher {
 public:
  explicit ForkLauncher(std::function<int(int)> body) : body_(std::move(body)) {}
  std::unique_ptr<Child> launch(int id) override;

 private:
  std::function<int(int)> body_;
};

/// Workers are forked by a fork-server spawner built from request() and the region `region_fd`.
class SpawnerLauncher : public Launcher {
 public:
  /// Spawners in a row that may die before serving a spawn; the next launch() throws WorkerError.
  static constexpr int kMaxUnservedSpawners = 3;
  SpawnerLauncher(std::function<std::string()> request, int region_fd)
      : request_(std::move(request)), region_fd_(region_fd) {}
  std::unique_ptr<Child> launch(int id) override;

 private:
  std::function<std::string()> request_;
  int region_fd_;
  std::shared_ptr<SpawnerClient> spawner_;  ///< shared with its children, which read their deaths from it
  int unserved_ = 0;  ///< spawners in a row that ended before serving a spawn (died building the dataset)
};

}  // namespace ringloader::ipc
