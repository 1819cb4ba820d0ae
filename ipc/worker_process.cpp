#include "ipc/worker_process.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core/child_setup.hpp"
#include "core/posix_error.hpp"
#include "ipc/fork_hooks.hpp"

namespace ringloader::ipc {
namespace {

ExitStatus decode(int wstatus) {
  if (WIFSIGNALED(wstatus)) return {true, WTERMSIG(wstatus)};
  return {false, WEXITSTATUS(wstatus)};
}

/// Children killed whose reaping outlived terminate()'s wait; reaped by later calls.
std::mutex g_late_mutex;
std::vector<pid_t> g_late;

void reap_late() {
  std::lock_guard lock(g_late_mutex);
  std::erase_if(g_late, [](pid_t p) {
    int ws = 0;
    const pid_t r = ::waitpid(p, &ws, WNOHANG);
    return r == p || (r < 0 && errno == ECHILD);
  });
}

ForkHooks& hooks_storage() {
  static ForkHooks h;
  return h;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (spawn_error != 0) return std::string("could not be started (fork: ") + std::strerror(spawn_error) + ")";
  if (signaled) return "killed by signal " + std::to_string(value) + " (" + ::strsignal(value) + ")";
  if (value < 0) return "ended (exit status unknown)";
  return "exited with code " + std::to_string(value);
}

void set_fork_hooks(ForkHooks hooks) { hooks_storage() = std::move(hooks); }
const ForkHooks& fork_hooks() { return hooks_storage(); }

pid_t fork_with_hooks(ForkOrigin& origin) {
  const ForkHooks& h = fork_hooks();
  std::fflush(nullptr);  // buffered output must not be written twice
  origin.parent = ::getpid();
  origin.main_thread = core::on_main_thread();
  if (h.before) h.before();
  core::block_all_signals(origin.old);
  const pid_t pid = ::fork();
  const int err = errno;
  if (pid != 0) {
    core::restore_signals(origin.old);
    if (h.after_parent) h.after_parent();
  }
  errno = err;
  return pid;
}

void after_fork_in_child(const ForkOrigin& origin) {
  core::become_child(origin.parent, origin.old, origin.main_thread);
  if (const ForkHooks& h = fork_hooks(); h.after_child) h.after_child();
}

WorkerProcess WorkerProcess::spawn(const std::function<int()>& body) {
  reap_late();
  ForkOrigin origin;
  const pid_t pid = fork_with_hooks(origin);
  if (pid < 0) throw core::posix_error(errno, "fork");
  if (pid == 0) {
    after_fork_in_child(origin);
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
  w.owner_ = origin.parent;
  return w;
}

bool WorkerProcess::mine() const { return pid_ > 0 && owner_ == ::getpid(); }

WorkerProcess::WorkerProcess(WorkerProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), owner_(std::exchange(o.owner_, -1)), status_(std::exchange(o.status_, std::nullopt)) {}

WorkerProcess& WorkerProcess::operator=(WorkerProcess&& o) noexcept {
  if (this != &o) {
    if (running() && mine()) terminate();
    pid_ = std::exchange(o.pid_, -1);
    owner_ = std::exchange(o.owner_, -1);
    status_ = std::exchange(o.status_, std::nullopt);
  }
  return *this;
}

WorkerProcess::~WorkerProcess() {
  // Short: a caller that stops many workers has already given them time; one stuck in the
  // kernel is reaped later rather than held up here.
  if (running() && mine()) terminate(std::chrono::milliseconds(100));
}

std::optional<ExitStatus> WorkerProcess::poll() {
  if (status_ || !mine()) return status_;
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
    if (!mine() || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

void WorkerProcess::kill(int sig) {
  if (running() && mine()) ::kill(pid_, sig);
}

std::optional<ExitStatus> WorkerProcess::terminate(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (!mine()) return std::nullopt;
  ::kill(pid_, SIGKILL);
  if (auto st = wait_for(timeout)) return st;
  // Stuck in the kernel (D state): it dies when the kernel lets it. Reap it later instead of
  // blocking here.
  std::lock_guard lock(g_late_mutex);
  g_late.push_back(pid_);
  status_ = ExitStatus{true, SIGKILL};
  return std::nullopt;
}

std::vector<int> child_pids(bool live_only) {
  std::vector<int> out;
  const int me = static_cast<int>(::getpid());
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE* f = std::fopen(path, "r");
    if (!f) continue;
    char line[512];
    const bool got = std::fgets(line, sizeof line, f) != nullptr;
    std::fclose(f);
    if (!got) continue;
    const char* rp = std::strrchr(line, ')');  // the command name may hold spaces and parentheses
    char state = 0;
    int ppid = 0;
    if (rp && std::sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == me && !(live_only && state == 'Z')) {
      out.push_back(pid);
    }
  }
  ::closedir(d);
  return out;
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
