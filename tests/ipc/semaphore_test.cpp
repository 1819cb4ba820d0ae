#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "ipc/semaphore.hpp"

using namespace ringloader;
using namespace std::chrono_literals;

namespace {
void on_usr1(int) {}
}  // namespace

TEST_CASE("wait_for waits out its timeout and takes a posted count", "[semaphore]") {
  ipc::Semaphore s(0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(s.wait_for(120ms));
  // A lower bound only: a timed wait must not return early (its slices are recomputed from steady_clock).
  CHECK(std::chrono::steady_clock::now() - t0 >= 120ms);
  s.post();
  CHECK(s.wait_for(1s));
  CHECK_FALSE(s.try_wait());
}

TEST_CASE("a signal during wait() or wait_for() is not an exception", "[semaphore]") {
  struct sigaction sa {};
  sa.sa_handler = on_usr1;  // no SA_RESTART: sem_wait returns EINTR
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  ::sigaction(SIGUSR1, &sa, &old);
  ipc::Semaphore s(0);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    s.wait();
    CHECK(s.wait_for(2s));
    done = true;
  });
  const pthread_t h = waiter.native_handle();
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(20ms);
    ::pthread_kill(h, SIGUSR1);
  }
  s.post();
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(20ms);
    ::pthread_kill(h, SIGUSR1);
  }
  s.post();
  waiter.join();
  CHECK(done);
  ::sigaction(SIGUSR1, &old, nullptr);
}
