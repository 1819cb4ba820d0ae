#include "ipc/launcher.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>

#include "core/error.hpp"
#include "core/posix_error.hpp"
#include "ipc/slot_ring.hpp"

namespace ringloader::ipc {
namespace {

class ForkChild : public Child {
 public:
  explicit ForkChild(WorkerProcess p) : proc_(std::move(p)) {}
  pid_t pid() const override { return proc_.pid(); }
  std::optional<ExitStatus> poll() override { return proc_.poll(); }
  void kill(int sig) override { proc_.kill(sig); }

 private:
  WorkerProcess proc_;  ///< killed and reaped on destruction
};

/// A spawner's worker. Asked for without waiting (the spawner answers within milliseconds, or - while
/// it builds a large dataset, or is stopped - much later, and next() must stay bounded): until
/// the answer it is pending, with no pid. Once forked, it has ended when its pidfd says so; the
/// exit status comes from the spawner's report (or is unknown when the spawner died with it).
class SpawnerChild : public Child {
 public:
  SpawnerChild(std::shared_ptr<SpawnerClient> spawner, int id)
      : spawner_(std::move(spawner)), id_(id), owner_(::getpid()), requested_ns_(monotonic_ns()) {
    spawner_->request_spawn(id);
  }
  ~SpawnerChild() override {
    if (owner_ != ::getpid() || status_ || pid_ <= 0) return;
    kill(SIGKILL);  // its spawner reaps it
  }
  pid_t pid() const override {
    if (pid_ <= 0 && !status_ && owner_ == ::getpid()) (void)await_fork();  // the answer may be in
    return pid_;
  }
  std::optional<ExitStatus> poll() override {
    if (status_ || owner_ != ::getpid()) return status_;
    if (pid_ <= 0 && !await_fork()) return status_;
    if ((status_ = spawner_->death_of(id_, pid_))) return status_;
    if (!pidfd_ended(pidfd_.get())) return std::nullopt;
    // Ended. Its spawner reports the status right after reaping it; give that a moment.
    const int64_t now = monotonic_ns();
    if (ended_seen_ns_ == 0) ended_seen_ns_ = now;
    if (spawner_->alive() && now - ended_seen_ns_ < 500'000'000) return std::nullopt;
    status_ = ExitStatus{false, -1, 0};
    return status_;
  }
  void kill(int sig) override {
    if (!status_ && pid_ > 0 && owner_ == ::getpid()) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
  }

 private:
  /// Pending: true once the spawner's answer says the worker runs; false while waiting, or with
  /// status_ set when it will not run.
  bool await_fork() const {
    if (auto s = spawner_->spawned(id_)) {
      if (s->error != 0 || !s->pidfd) {
        status_ = ExitStatus{false, -1, s->error != 0 ? s->error : EPROTO};
        return false;
      }
      pid_ = s->pid;
      pidfd_ = std::move(s->pidfd);
      return true;
    }
    if (!spawner_->alive()) {
      status_ = ExitStatus{false, -1, EPIPE};  // the spawner died before forking it
    } else if (monotonic_ns() - requested_ns_ > kForkPatienceNs) {
      spawner_->abandon();  // stuck (stopped, or a dataset that takes minutes to build): a new spawner next time
      status_ = ExitStatus{false, -1, ETIMEDOUT};
    }
    return false;
  }

  static constexpr int64_t kForkPatienceNs = 60'000'000'000;
  std::shared_ptr<SpawnerClient> spawner_;
  int id_;
  // Mutable: reading the spawner's answer (pid() does, when asked) only completes what launch began.
  mutable pid_t pid_ = -1;  ///< -1 until the spawner has forked it
  mutable core::UniqueFd pidfd_;
  pid_t owner_;
  int64_t requested_ns_;
  int64_t ended_seen_ns_ = 0;
  mutable std::optional<ExitStatus> status_;
};

}  // namespace

std::unique_ptr<Child> ForkLauncher::launch(int id) {
  return std::make_unique<ForkChild>(WorkerProcess::spawn([this, id] { return body_(id); }));
}

std::unique_ptr<Child> SpawnerLauncher::launch(int id) {
  for (;;) {
    if (spawner_ && !spawner_->failure().empty()) {
      // The spawner could not even build the dataset: another spawner would fail the same way, forever.
      throw ConfigError("the fork server cannot build the dataset: " + spawner_->failure() +
                        ". It rebuilds the dataset from its pickled recipe, so the dataset's class must be importable "
                        "there (a module, or the main script before rl.init() / ringloader::init()) and building it "
                        "must succeed there");
    }
    if (spawner_ && !spawner_->alive()) {
      unserved_ = spawner_->served() ? 0 : unserved_ + 1;
      if (unserved_ >= kMaxUnservedSpawners) {
        // It died while it rebuilt the dataset (a crash or an exit in unpickling or the
        // constructor): another spawner would die the same way, forever.
        throw WorkerError("the fork server's pool process died " + std::to_string(unserved_) +
                          " times in a row before it started a worker, while it rebuilt the dataset from its pickled "
                          "recipe (a crash or an exit in the dataset's unpickling or constructor, or it was killed); "
                          "run the loader with start_method=\"fork\" to see the failure in this process");
      }
      spawner_.reset();
    }
    if (!spawner_) spawner_ = std::make_shared<SpawnerClient>(ForkServer::open_spawner(request_(), region_fd_));
    try {
      return std::make_unique<SpawnerChild>(spawner_, id);
    } catch (const std::system_error&) {
      // The spawner died before it took the request (while it rebuilt the dataset, say): counted
      // above like any spawner gone, rather than failing the loader with a broken pipe.
      if (spawner_->alive()) throw;
    }
  }
}

}  // namespace ringloader::ipc
