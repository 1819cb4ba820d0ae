#pragma once
// run_in_child(): a test scenario that must not run in the test process itself (it changes
// limits or user ids, kills its own loader's helpers, or exits through static destructors).
// The body runs in a forked child and says what it saw through `report` (text the parent gets
// back) and its return value (the exit code); Catch2 is never used in the child. The parent
// waits at most `limit`, then SIGKILLs the child's whole process group.
//
//   auto r = test::run_in_child([](test::Report& out) { out << "message"; return 0; }, 10s);
//   CHECK(r.code == 0); CHECK_THAT(r.text, Contains("message"));
//   // or: the body returns "" on success, else what went wrong
//   auto r2 = test::run_in_child([] { return ::getuid() == 0 ? "" : "not root"; });
//   INFO(r2.describe()); CHECK(r2.ok());
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

namespace ringloader::test {

using Report = std::ostringstream;

struct ChildResult {
  int code = -1;         ///< exit code, or 128 + signal
  bool timed_out = false;
  std::chrono::milliseconds elapsed{0};
  std::string text;      ///< what the body wrote to its Report (and any escaped exception)
  bool ok() const { return code == 0 && !timed_out && text.empty(); }
  std::string describe() const {
    return (timed_out ? "child timed out" : "child exited " + std::to_string(code)) + ": " + text;
  }
};

inline ChildResult run_in_child(const std::function<int(Report&)>& body, std::chrono::milliseconds limit) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::close(fds[0]);
    for (int sig : {SIGINT, SIGTERM, SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, SIG_DFL);
    Report out;
    int code = 0;
    try {
      code = body(out);
    } catch (const std::exception& e) {
      out << "\nuncaught exception: " << e.what();
      code = 99;
    } catch (...) {
      out << "\nuncaught exception";
      code = 99;
    }
    const std::string s = out.str();
    size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = ::write(fds[1], s.data() + done, s.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(code);
  }
  ::setpgid(pid, pid);
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  ChildResult r;
  char buf[4096];
  int status = 0;
  for (;;) {
    for (;;) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      r.text.append(buf, static_cast<size_t>(n));
    }
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() - t0 > limit && !r.timed_out) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    r.text.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // The child's workers die with it; wait until none of its group is left.
  for (int i = 0; i < 200 && ::kill(-pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return r;
}

/// The same for a body that returns "" on success, else what went wrong.
inline ChildResult run_in_child(const std::function<std::string()>& body,
                                std::chrono::milliseconds limit = std::chrono::milliseconds(60000)) {
  return run_in_child(
      [&body](Report& out) {
        const std::string msg = body();
        out << msg;
        return msg.empty() ? 0 : 1;
      },
      limit);
}

/// Gives up root for the nobody user (so RLIMIT_NPROC applies). False if that fails.
inline bool become_nobody() { return ::setgid(65534) == 0 && ::setuid(65534) == 0; }

}  // namespace ringloader::test
