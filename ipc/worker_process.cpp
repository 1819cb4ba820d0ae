#include "ipc/worker_process.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

namespace ringloader::ipc {
namespace {

ExitStatus decode(int wstatus) {
  if (WIFSIGNALED(wstatus)) return {true, WTERMSIG(wstatus)};
  return {false, WEXITSTATUS(wstatus)};
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signaled) return "killed by signal " + std::to_string(value) + " (" + ::strsignal(value) + ")";
  return "exited with code " + std::to_string(value);
}

WorkerProcess WorkerProcess::spawn(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  std::fflush(nullptr);  // buffered output must not be written twice
  // Block every signal across fork: a signal that reaches the child before it has reset the
  // parent's handlers would run them (a test framework's, a crash reporter's) in the child.
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw std::system_error(err, std::generic_category(), "fork");
  }
  if (pid != 0) ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);  // the parent died before prctl took effect
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGPIPE, SIG_IGN);
    // A crash in dataset code must end the worker by that signal so the main process can
    // say which; the parent's handlers (a test framework's, a crash reporter's) must not run.
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGUSR1, SIGUSR2, SIGALRM, SIGHUP, SIGQUIT}) {
      ::signal(sig, SIG_DFL);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    int rc = 70;
    try {
      rc = body();
    } catch (...) {
      rc = 70;
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  WorkerProcess w;
  w.pid_ = pid;
  return w;
}

WorkerProcess::WorkerProcess(WorkerProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), status_(std::exchange(o.status_, std::nullopt)) {}

WorkerProcess& WorkerProcess::operator=(WorkerProcess&& o) noexcept {
  if (this != &o) {
    if (running()) terminate();
    pid_ = std::exchange(o.pid_, -1);
    status_ = std::exchange(o.status_, std::nullopt);
  }
  return *this;
}

WorkerProcess::~WorkerProcess() {
  if (running()) terminate();
}

std::optional<ExitStatus> WorkerProcess::poll() {
  if (status_ || pid_ <= 0) return status_;
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = decode(ws);
  else if (r < 0 && errno == ECHILD) status_ = ExitStatus{false, -1};  // reaped elsewhere
  return status_;
}

std::optional<ExitStatus> WorkerProcess::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    if (auto st = poll()) return st;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

void WorkerProcess::kill(int sig) {
  if (running()) ::kill(pid_, sig);
}

ExitStatus WorkerProcess::terminate() {
  if (status_) return *status_;
  if (pid_ <= 0) return {};
  ::kill(pid_, SIGKILL);
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, 0);
  } while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? decode(ws) : ExitStatus{false, -1};
  return *status_;
}

int thread_count() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  int n = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "Threads:", 8) == 0) {
      n = std::atoi(line + 8);
      break;
    }
  }
  std::fclose(f);
  return n;
}

}  // namespace ringloader::ipc
