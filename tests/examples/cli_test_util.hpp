#pragma once
// Helpers for the CLI tests: run a real binary (in its own process group, so the test can
// send it Ctrl-C as a terminal would and then check that no process of the group remains),
// capture its stdout/stderr, and build generated image folders with bad files in them.
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace ringloader::test {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

struct RunResult {
  int exit_code = -1;  ///< exit status, or 128 + signal if killed
  std::string out;
  std::string err;
  bool group_empty_after = false;  ///< no process of its group remained once it exited
  bool timed_out = false;          ///< still running at the limit: its group was SIGKILLed
};

/// Runs `argv` (argv[0] a path) in a new process group with stdout/stderr captured.
/// `while_running(pid)` is called once the child has started (and its stderr file exists);
/// the helper then waits for the child, at most `limit` (zero: no limit) before it SIGKILLs
/// the child's group.
class Child {
 public:
  explicit Child(std::vector<std::string> argv) : argv_(std::move(argv)) {}

  RunResult run(const std::function<void(pid_t, const std::string& err_path)>& while_running = {},
                std::chrono::milliseconds limit = std::chrono::milliseconds::zero()) {
    TempDir io;
    const std::string out_path = io / "out", err_path = io / "err";
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);
      const int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int in = ::open("/dev/null", O_RDONLY);
      if (o < 0 || e < 0 || in < 0) ::_exit(120);
      ::dup2(in, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> args;
      for (auto& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // both sides, so it holds before either one goes on
    if (while_running) while_running(pid, err_path);
    RunResult r;
    int status = 0;
    if (limit.count() > 0) {
      const auto deadline = std::chrono::steady_clock::now() + limit;
      for (;;) {
        const pid_t got = ::waitpid(pid, &status, WNOHANG);
        if (got == pid || (got < 0 && errno != EINTR)) break;
        if (std::chrono::steady_clock::now() >= deadline) {
          r.timed_out = true;
          ::kill(-pid, SIGKILL);
          while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
          }
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    } else {
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    // Workers exit with the main process; give them a moment, then ask whether any is left.
    for (int i = 0; i < 50; ++i) {
      if (::kill(-pid, 0) != 0 && errno == ESRCH) {
        r.group_empty_after = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!r.group_empty_after) ::kill(-pid, SIGKILL);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
  }

 private:
  std::vector<std::string> argv_;
};

inline RunResult run(std::vector<std::string> argv) { return Child(std::move(argv)).run(); }
/// As run(argv), killing the program (and its group) if it runs past `limit`.
inline RunResult run(std::vector<std::string> argv, std::chrono::milliseconds limit) {
  return Child(std::move(argv)).run({}, limit);
}

/// Runs `argv` with stdin/stdout/stderr on a pseudo-terminal; everything it wrote, and its exit code.
inline std::pair<int, std::string> run_on_terminal(std::vector<std::string> argv) {
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) throw std::runtime_error("forkpty failed");
  if (pid == 0) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  std::string all;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      all.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO once the child has closed the terminal
    }
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), all};
}

/// Polls `path` until it holds `needle` or `timeout` passes.
inline bool wait_for_text(const std::string& path, const std::string& needle, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (slurp(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace ringloader::test
