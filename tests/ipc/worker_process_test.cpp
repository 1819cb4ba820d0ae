#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "ipc/worker_process.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace std::chrono_literals;

TEST_CASE("a worker's exit code and death signal are reported and it is reaped", "[worker]") {
  auto ok = ipc::WorkerProcess::spawn([] { return 7; });
  auto st = ok.wait_for(5s);
  REQUIRE(st);
  CHECK_FALSE(st->signaled);
  CHECK(st->value == 7);
  CHECK(st->describe() == "exited with code 7");

  auto crash = ipc::WorkerProcess::spawn([] {
    ::raise(SIGSEGV);
    return 0;
  });
  st = crash.wait_for(5s);
  REQUIRE(st);
  CHECK(st->signaled);
  CHECK(st->value == SIGSEGV);
  CHECK_THAT(st->describe(), Catch::Contains("signal 11"));
  CHECK(test::own_children().empty());
}

TEST_CASE("destroying a live worker kills and reaps it", "[worker]") {
  int pid = 0;
  {
    auto w = ipc::WorkerProcess::spawn([] {
      for (;;) ::pause();
      return 0;
    });
    pid = w.pid();
    CHECK_FALSE(w.poll());
  }
  CHECK(test::process_gone(pid));
  CHECK(test::own_children().empty());
}

TEST_CASE("a worker dies with its parent (PR_SET_PDEATHSIG)", "[worker]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t middle = ::fork();
  if (middle == 0) {
    auto w = ipc::WorkerProcess::spawn([] {
      for (;;) ::pause();
      return 0;
    });
    const int wpid = w.pid();
    (void)!::write(fds[1], &wpid, sizeof wpid);
    ::kill(::getpid(), SIGKILL);  // the parent dies without cleaning up
    ::_exit(0);
  }
  int wpid = 0;
  REQUIRE(::read(fds[0], &wpid, sizeof wpid) == sizeof wpid);
  int st = 0;
  ::waitpid(middle, &st, 0);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = test::process_gone(wpid);
    if (!gone) std::this_thread::sleep_for(10ms);
  }
  CHECK(gone);
  ::close(fds[0]);
  ::close(fds[1]);
}
