#pragma once
// WorkerProcess: one forked child running a function, owned by the process that forked it.
//
//   auto w = ipc::WorkerProcess::spawn([&] { return run_worker(); });   // child: body, then _exit
//   if (auto st = w.poll()) spdlog::warn("worker {} {}", w.pid(), st->describe());
//
// The child is set up by core::become_child (it dies with this process, not with the thread
// that forked it; Ctrl-C is ours; crash signals keep their default action) and leaves only
// through _exit(): no parent static destructor or atexit handler runs twice.
// Destroying a live WorkerProcess SIGKILLs and reaps it, waiting a bounded time: no zombie, no
// orphan, and no hang on a child stuck in the kernel (one that outlives the wait is reaped
// later, by the next spawn or poll). In any process other than the one that forked the
// child (a fork of it), every operation is a no-op: a copy never kills or reaps.
// Move-only; used by one thread at a time.
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ringloader::ipc {

struct ExitStatus {
  bool signaled = false;
  int value = 0;        ///< exit code, or signal number when `signaled`; -1 with !signaled: unknown
  int spawn_error = 0;  ///< the process was never started: the errno of the failed fork
  bool clean() const { return !signaled && value == 0 && spawn_error == 0; }
  /// "exited with code 3" / "killed by signal 9 (Killed)" / "could not be started (fork: ...)".
  std::string describe() const;
};

class WorkerProcess {
 public:
  /// Forks; the child runs `body` and _exit()s with its return value (70 if it throws).
  /// Throws std::system_error naming fork() on failure.
  static WorkerProcess spawn(const std::function<int()>& body);

  WorkerProcess() = default;
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;
  WorkerProcess(WorkerProcess&& o) noexcept;
  WorkerProcess& operator=(WorkerProcess&& o) noexcept;
  ~WorkerProcess();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }
  /// Reaps without blocking; the exit status once the child has ended (and forever after).
  std::optional<ExitStatus> poll();
  /// Waits up to `timeout` for the child to end (polling); its status, or nothing.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  /// Sends `sig` if the child is still running.
  void kill(int sig);
  /// SIGKILL (if running) and reap, waiting at most `timeout`; nothing if the child has not
  /// been reaped by then (a process in uninterruptible sleep): it is reaped later.
  std::optional<ExitStatus> terminate(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

 private:
  bool mine() const;
  pid_t pid_ = -1;                    ///< child pid, -1 when empty
  pid_t owner_ = -1;                  ///< the process that forked it
  std::optional<ExitStatus> status_;  ///< set once reaped
};

/// What the child of fork_with_hooks needs to set itself up.
struct ForkOrigin {
  pid_t parent = 0;
  bool main_thread = false;  ///< forked by the parent's main thread
  sigset_t old{};            ///< the signal mask to restore
};
/// fork() with the process-wide ForkHooks run around it (before, after_parent) and every
/// signal blocked across it. The child must call after_fork_in_child(origin) first. Returns
/// fork()'s value (errno set on -1).
pid_t fork_with_hooks(ForkOrigin& origin);
/// In a child of fork_with_hooks: core::become_child, then the after_child hook.
void after_fork_in_child(const ForkOrigin& origin);

/// Number of threads in this process (from /proc/self/status), 0 if unknown.
int thread_count();

/// Pids whose parent is this process (from /proc), zombies included unless `live_only`.
std::vector<int> child_pids(bool live_only = false);

}  // namespace ringloader::ipc
