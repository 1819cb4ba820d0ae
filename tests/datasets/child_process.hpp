#pragma once
// run_in_child(): runs a test body in a forked child, for what must not touch the test
// process (lowered rlimits, dropped privileges). Catch2 knows nothing of fork, so the child
// never REQUIREs: the body returns "" on success or what went wrong, the child sends that
// through a pipe and leaves through _exit, and the parent checks it.
//
//   const ChildResult r = run_in_child([] { return ::getuid() == 0 ? "" : "not root"; });
//   INFO(r.describe());
//   CHECK(r.ok());
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <functional>
#include <string>

namespace ringloader::test {

struct ChildResult {
  int status = 0;       ///< waitpid's status
  std::string message;  ///< what the body returned (or the exception that escaped it)
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0 && message.empty(); }
  std::string describe() const {
    if (WIFSIGNALED(status)) return "child killed by signal " + std::to_string(WTERMSIG(status)) + "; " + message;
    return "child exited " + std::to_string(WEXITSTATUS(status)) + ": " + message;
  }
};

inline ChildResult run_in_child(const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return {1 << 8, "pipe failed"};
  const pid_t pid = ::fork();
  if (pid < 0) return {1 << 8, "fork failed"};
  if (pid == 0) {
    ::close(fds[0]);
    std::string msg;
    try {
      msg = body();
    } catch (const std::exception& e) {
      msg = std::string("exception escaped the body: ") + e.what();
    } catch (...) {
      msg = "unknown exception escaped the body";
    }
    for (size_t done = 0; done < msg.size();) {
      const ssize_t n = ::write(fds[1], msg.data() + done, msg.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(msg.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  ChildResult r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.message.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

}  // namespace ringloader::test
