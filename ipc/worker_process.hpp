#pragma once
// WorkerProcess: one forked child running a function, owned by the main process.
//
//   auto w = ipc::WorkerProcess::spawn([&] { return run_worker(); });   // child: body, then _exit
//   if (auto st = w.poll()) spdlog::warn("worker {} {}", w.pid(), st->describe());
//
// The child gets PR_SET_PDEATHSIG(SIGKILL) and checks getppid() right after fork, so it never
// outlives the main process; it ignores SIGINT (Ctrl-C is the main process's to handle), has
// default handlers for crash signals (so a crash is reported as that signal), and
// leaves only through _exit(): no parent static destructor or atexit handler runs twice.
// Destroying a live WorkerProcess SIGKILLs and reaps it: no zombie, no orphan.
// Move-only; used by the main process's threads one at a time.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace ringloader::ipc {

struct ExitStatus {
  bool signaled = false;
  int value = 0;  ///< exit code, or signal number when `signaled`
  bool clean() const { return !signaled && value == 0; }
  /// "exited with code 3" / "killed by signal 9 (Killed)".
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
  /// SIGKILL (if running) and reap, blocking.
  ExitStatus terminate();

 private:
  pid_t pid_ = -1;                   ///< child pid, -1 when empty
  std::optional<ExitStatus> status_;  ///< set once reaped
};

/// Number of threads in this process (from /proc/self/status), 0 if unknown.
int thread_count();

}  // namespace ringloader::ipc
