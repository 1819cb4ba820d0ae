// WorkerPool: the respawn budget and a stop that never respawns (issue 9: workers killed
// during shutdown were replaced; a worker dying at start-up was replaced forever).
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>
#include <thread>

#include "core/posix_error.hpp"
#include "loader/detail/worker_pool.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::loader::detail;
using namespace std::chrono_literals;

namespace {

/// Forks `body`, counting launches; throws EAGAIN (as fork under ulimit -u) past `fail_after`.
class CountingLauncher : public ipc::Launcher {
 public:
  CountingLauncher(std::function<int(int)> body, int* launches, int fail_after = 1 << 30)
      : inner_(std::move(body)), launches_(launches), fail_after_(fail_after) {}
  std::unique_ptr<ipc::Child> launch(int id) override {
    if (*launches_ >= fail_after_) throw core::posix_error(EAGAIN, "fork");
    ++*launches_;
    return inner_.launch(id);
  }

 private:
  ipc::ForkLauncher inner_;
  int* launches_;
  int fail_after_;
};

struct Fixture {
  explicit Fixture(size_t workers)
      : ring({.num_slots = 2, .max_batch = 1, .payload_bytes = 64, .region = {}, .task_bytes = 64,
              .extra_bytes = sizeof(WorkerRecord) * workers}),
        records(reinterpret_cast<WorkerRecord*>(ring.extra()), workers) {
    for (auto& r : records) new (&r) WorkerRecord{};
  }
  ipc::SlotRing ring;
  std::span<WorkerRecord> records;
};

WorkerPool::Report service_until_fatal(WorkerPool& pool, std::chrono::milliseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    auto r = pool.service();
    if (!r.fatal) r.fatal = pool.respawn();
    if (r.fatal || std::chrono::steady_clock::now() - t0 > limit) return r;
    std::this_thread::sleep_for(10ms);
  }
}

}  // namespace

TEST_CASE("stop() never respawns: a worker killed before or while stopping stays dead", "[pool]") {
  Fixture f(2);
  int launches = 0;
  PoolConfig cfg;
  cfg.num_workers = 2;
  {
    WorkerPool pool(f.ring, f.records,
                    std::make_unique<CountingLauncher>(
                        [](int) {
                          for (;;) ::pause();  // deaf to the shutdown flag: stop() must SIGKILL it
                          return 0;
                        },
                        &launches),
                    cfg);
    pool.start();
    const auto pids = pool.pids();
    REQUIRE(pids.size() == 2);
    ::kill(pids[0], SIGKILL);
    std::thread late([p = pids[1]] {
      std::this_thread::sleep_for(300ms);
      ::kill(p, SIGKILL);  // during stop()'s grace period
    });
    const auto t0 = std::chrono::steady_clock::now();
    pool.stop();
    late.join();
    CHECK(std::chrono::steady_clock::now() - t0 < 4s);
    CHECK(pool.pids().empty());
    CHECK(pool.service().deaths.empty());  // stopped: nothing is reaped or replaced any more
    CHECK_FALSE(pool.respawn());
  }
  CHECK(launches == 2);
  CHECK(test::own_children().empty());
}

TEST_CASE("stop() with a limit waits no longer than it: the next() that ends an epoch stays within timeout", "[pool]") {
  // Before, stop() gave deaf workers 0.5 s whatever the loader's timeout.
  Fixture f(2);
  int launches = 0;
  PoolConfig cfg;
  cfg.num_workers = 2;
  WorkerPool pool(f.ring, f.records,
                  std::make_unique<CountingLauncher>(
                      [](int) {
                        for (;;) ::pause();  // deaf to the shutdown flag
                        return 0;
                      },
                      &launches),
                  cfg);
  pool.start();
  REQUIRE(pool.pids().size() == 2);
  const auto t0 = std::chrono::steady_clock::now();
  pool.stop(true, 50ms);
  CHECK(std::chrono::steady_clock::now() - t0 < 400ms);
  CHECK(pool.pids().empty());
  const auto reaped_by = std::chrono::steady_clock::now() + 5s;  // SIGKILLed: reaped later if not at once
  while (!test::own_children().empty() && std::chrono::steady_clock::now() < reaped_by) std::this_thread::sleep_for(10ms);
  CHECK(test::own_children().empty());
}

TEST_CASE("a worker that keeps dying at start-up is fatal on its third death in a row", "[pool]") {
  Fixture f(1);
  int launches = 0;
  PoolConfig cfg;
  cfg.num_workers = 1;
  WorkerPool pool(f.ring, f.records, std::make_unique<CountingLauncher>([](int) { return 1; }, &launches), cfg);
  pool.start();
  const auto r = service_until_fatal(pool, 10s);
  REQUIRE(r.fatal);
  CHECK_THAT(*r.fatal, Catch::Contains("worker 0 died 3 times in a row while starting, before filling any batch") &&
                           Catch::Contains("exited with code 1"));
  CHECK(launches == 3);
  CHECK(pool.restarts() == 2);
  // Fatal: no more forks, however long the pool is serviced.
  for (int i = 0; i < 20; ++i) {
    (void)pool.service();
    CHECK_FALSE(pool.respawn());
    std::this_thread::sleep_for(10ms);
  }
  CHECK(launches == 3);
  pool.stop();
  CHECK(test::own_children().empty());
}

TEST_CASE("forks that keep failing with no worker left are fatal - with backoff, not a busy loop", "[pool]") {
  Fixture f(1);
  int launches = 0;
  PoolConfig cfg;
  cfg.num_workers = 1;
  cfg.max_spawn_failures = 4;
  WorkerPool pool(f.ring, f.records, std::make_unique<CountingLauncher>([](int) { return 0; }, &launches, 1), cfg);
  pool.start();
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = service_until_fatal(pool, 10s);
  REQUIRE(r.fatal);
  CHECK_THAT(*r.fatal, Catch::Contains("cannot start worker 0") && Catch::Contains("Resource temporarily unavailable") &&
                           Catch::Contains("4 attempts in a row"));
  CHECK(std::chrono::steady_clock::now() - t0 > 250ms);  // 0 + 100 + 200 ms of backoff
  pool.stop();
  CHECK(test::own_children().empty());
}
