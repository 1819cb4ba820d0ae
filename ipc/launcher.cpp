#include "ipc/launcher.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>

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

/// A pool's worker: ended when its pidfd says so; its exit status comes from the pool's
/// report (or is unknown when the pool died with it).
class PoolChild : public Child {
 public:
  PoolChild(std::shared_ptr<PoolClient> pool, int id, PoolClient::Spawned s)
      : pool_(std::move(pool)), id_(id), pid_(s.pid), pidfd_(std::move(s.pidfd)), owner_(::getpid()) {}
  ~PoolChild() override {
    if (owner_ != ::getpid() || status_) return;
    kill(SIGKILL);  // its pool reaps it
  }
  pid_t pid() const override { return pid_; }
  std::optional<ExitStatus> poll() override {
    if (status_ || owner_ != ::getpid()) return status_;
    if ((status_ = pool_->death_of(id_, pid_))) return status_;
    if (!pidfd_ended(pidfd_.get())) return std::nullopt;
    // Ended. Its pool reports the status right after reaping it; give that a moment.
    const int64_t now = monotonic_ns();
    if (ended_seen_ns_ == 0) ended_seen_ns_ = now;
    if (pool_->alive() && now - ended_seen_ns_ < 500'000'000) return std::nullopt;
    status_ = ExitStatus{false, -1};
    return status_;
  }
  void kill(int sig) override {
    if (!status_ && owner_ == ::getpid()) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
  }

 private:
  std::shared_ptr<PoolClient> pool_;
  int id_;
  pid_t pid_;
  core::UniqueFd pidfd_;
  pid_t owner_;
  int64_t ended_seen_ns_ = 0;
  std::optional<ExitStatus> status_;
};

}  // namespace

std::unique_ptr<Child> ForkLauncher::launch(int id) {
  return std::make_unique<ForkChild>(WorkerProcess::spawn([this, id] { return body_(id); }));
}

std::unique_ptr<Child> PoolLauncher::launch(int id) {
  if (!pool_ || !pool_->alive()) pool_ = std::make_shared<PoolClient>(ForkServer::open_pool(request_(), region_fd_));
  return std::make_unique<PoolChild>(pool_, id, pool_->spawn(id));
}

}  // namespace ringloader::ipc
