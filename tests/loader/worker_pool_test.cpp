// WorkerPool: the respawn budget and a stop that never respawns (issue 9: a worker killed
// during shutdown stays dead; one dying at start-up is not replaced forever), and a
// watchdog that times a claim from its own stamp or from when it first saw it, never from 0 or
// from the slot's previous claim.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

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

/// A worker that is alive and past start-up (the phase watchdog leaves it alone) and then waits:
/// the test makes its claims.
int idle_worker(std::span<WorkerRecord> records, int id) {
  WorkerRecord& rec = records[static_cast<size_t>(id)];
  rec.phase_since_ns.store(ipc::monotonic_ns(), std::memory_order_relaxed);
  rec.phase.store(static_cast<uint32_t>(WorkerPhase::kFilling), std::memory_order_release);
  for (;;) ::pause();
  return 0;
}

/// Claims queued slot `s` for `worker` as SlotRing::try_claim does (the CAS QUEUED ->
/// CLAIMED), without the claimant's stamp (claimed_at_ns, claim_ticket) that follows it: where a
/// worker descheduled right after its CAS stands. Returns the claim's ticket.
uint32_t claim_without_stamp(const ipc::SlotRing& ring, uint32_t s, int worker) {
  const ipc::SlotWord w = ring.word(s);
  REQUIRE(w.state == ipc::SlotState::kQueued);
  uint64_t expected = w.pack();
  auto& state = const_cast<ipc::SlotHeader&>(ring.slot(s)).state;
  REQUIRE(state.compare_exchange_strong(expected, ipc::SlotWord{ipc::SlotState::kClaimed, worker, w.ticket}.pack()));
  return w.ticket;
}

/// Runs the watchdog and reaps every 5 ms for `span`; the deaths seen (a kill in the last round
/// too: the last reap comes 50 ms after it).
std::vector<WorkerDeath> supervise_for(WorkerPool& pool, std::chrono::milliseconds span) {
  std::vector<WorkerDeath> deaths;
  const auto end = std::chrono::steady_clock::now() + span;
  while (std::chrono::steady_clock::now() < end) {
    pool.watchdog();
    for (auto& d : pool.reap().deaths) deaths.push_back(std::move(d));
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(50ms);
  for (auto& d : pool.reap().deaths) deaths.push_back(std::move(d));
  return deaths;
}

/// Runs the watchdog and reaps until a worker dies or `limit` passes; the first death.
std::optional<WorkerDeath> supervise_until_death(WorkerPool& pool, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    pool.watchdog();
    auto r = pool.reap();
    if (!r.deaths.empty()) return std::move(r.deaths.front());
    std::this_thread::sleep_for(5ms);
  }
  return std::nullopt;
}

/// Starts `pool`'s one worker (idle_worker) and waits until it is past start-up.
void start_idle(WorkerPool& pool, std::span<WorkerRecord> records) {
  pool.start();
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (records[0].phase.load(std::memory_order_acquire) != static_cast<uint32_t>(WorkerPhase::kFilling) &&
         std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(records[0].phase.load() == static_cast<uint32_t>(WorkerPhase::kFilling));
}

WorkerPool::Report reap_until_fatal(WorkerPool& pool, std::chrono::milliseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    auto r = pool.reap();
    if (!r.fatal) r.fatal = pool.respawn();
    if (r.fatal || std::chrono::steady_clock::now() - t0 > limit) return r;
    std::this_thread::sleep_for(10ms);
  }
}

/// Workers deaf to the shutdown flag: stop() must SIGKILL them.
std::unique_ptr<CountingLauncher> deaf_workers(int* launches) {
  return std::make_unique<CountingLauncher>(
      [](int) {
        for (;;) ::pause();
        return 0;
      },
      launches);
}

}  // namespace

TEST_CASE("stop() never respawns: a worker killed before or while stopping stays dead", "[pool]") {
  Fixture f(2);
  int launches = 0;
  PoolConfig cfg;
  cfg.num_workers = 2;
  {
    WorkerPool pool(f.ring, f.records, deaf_workers(&launches), cfg);
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
    CHECK(std::chrono::steady_clock::now() - t0 < 30s);  // bounded: a stop that respawned would not end
    CHECK(pool.pids().empty());
    CHECK(pool.reap().deaths.empty());  // stopped: nothing is reaped or replaced any more
    CHECK_FALSE(pool.respawn());
  }
  CHECK(launches == 2);
  CHECK(test::own_children().empty());
}

TEST_CASE("stop() with a limit waits no longer than it: the next() that ends an epoch is bounded by timeout", "[pool]") {
  // A next() that ends an epoch stops the workers; with timeout set it must not overrun it.
  Fixture f(2);
  int launches = 0;
  PoolConfig cfg;
  cfg.num_workers = 2;
  WorkerPool pool(f.ring, f.records, deaf_workers(&launches), cfg);
  pool.start();
  REQUIRE(pool.pids().size() == 2);
  const auto t0 = std::chrono::steady_clock::now();
  pool.stop(true, 50ms);
  // No seam for the clock here: a stop that ignored its limit gives deaf workers the full grace
  // (0.5 s) before SIGKILL, so staying under it is the behaviour, not a speed.
  CHECK(std::chrono::steady_clock::now() - t0 < 500ms);
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
  const auto r = reap_until_fatal(pool, 10s);
  REQUIRE(r.fatal);
  CHECK_THAT(*r.fatal, Catch::Contains("worker 0 died 3 times in a row while starting, before filling any batch") &&
                           Catch::Contains("exited with code 1"));
  CHECK(launches == 3);
  CHECK(pool.restarts() == 2);
  // Fatal: no more forks, however long the pool is reaped.
  for (int i = 0; i < 20; ++i) {
    (void)pool.reap();
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
  const auto r = reap_until_fatal(pool, 10s);
  REQUIRE(r.fatal);
  CHECK_THAT(*r.fatal, Catch::Contains("cannot start worker 0") && Catch::Contains("Resource temporarily unavailable") &&
                           Catch::Contains("4 attempts in a row"));
  // A lower bound only: the backoff (0 + 100 + 200 ms) is a floor, a retry must not come sooner.
  CHECK(std::chrono::steady_clock::now() - t0 > 250ms);
  pool.stop();
  CHECK(test::own_children().empty());
}

// The watchdog reads a claim's time from the claimant's stamp, which follows the claim's CAS:
// until it lands the slot holds no time for this claim - 0 if the slot was never claimed, else
// the time of its previous claim. Read as the claim's time, either is older than any timeout
// and a healthy worker was killed at once. Each test stands at that moment (the CAS made, the
// stamp not yet) and checks the worker lives until the claim has been seen for the timeout.
constexpr auto kWatchdogTimeout = 400ms;

namespace {

/// An unstamped claim made at `claimed` by worker `pid`: spared for half the timeout (a missing
/// or stale stamp read as the claim's time would kill it at the first look), then, still
/// unstamped once seen for the timeout, killed as a stuck claim.
void spared_then_killed(WorkerPool& pool, int pid, std::chrono::steady_clock::time_point claimed) {
  const auto deaths = supervise_for(pool, kWatchdogTimeout / 2);
  CHECK(deaths.empty());
  CHECK(pool.pids() == std::vector<int>{pid});
  const auto d = supervise_until_death(pool, 10s);
  REQUIRE(d);
  CHECK(d->pid == pid);
  CHECK(d->killed_by_watchdog);
  CHECK(std::chrono::steady_clock::now() - claimed >= kWatchdogTimeout);  // a lower bound: never killed early
  pool.stop();
  CHECK(test::own_children().empty());
}

/// One idle worker, started, under a pool whose watchdog times claims out after kWatchdogTimeout.
struct WatchedWorker {
  WatchedWorker()
      : pool(f.ring, f.records, std::make_unique<ipc::ForkLauncher>([this](int id) { return idle_worker(f.records, id); }),
             config()) {
    start_idle(pool, f.records);
    pid = pool.pids().at(0);
  }
  static PoolConfig config() {
    PoolConfig cfg;
    cfg.num_workers = 1;
    cfg.timeout = kWatchdogTimeout;
    return cfg;
  }
  Fixture f{1};
  WorkerPool pool;
  int pid = 0;
};

}  // namespace

TEST_CASE("the watchdog does not kill a worker whose first claim of a slot is not stamped yet", "[pool][watchdog]") {
  WatchedWorker w;
  auto& f = w.f;
  REQUIRE(f.ring.slot(0).claimed_at_ns.load() == 0);  // never claimed: no stamp at all

  f.ring.queue(0);
  const auto claimed = std::chrono::steady_clock::now();
  const uint32_t ticket = claim_without_stamp(f.ring, 0, 0);
  CHECK_FALSE(f.ring.claimed_at(0, ticket));  // no time for this claim yet

  spared_then_killed(w.pool, w.pid, claimed);
}

TEST_CASE("the watchdog does not time a new claim by the slot's previous claim's stamp", "[pool][watchdog]") {
  WatchedWorker w;
  auto& f = w.f;

  // A claim of slot 0, stamped, filled and handed back; then longer than the timeout passes.
  f.ring.queue(0);
  const auto first = f.ring.try_claim(0);
  REQUIRE(first);
  REQUIRE(f.ring.claimed_at(first->slot, first->ticket));
  REQUIRE(f.ring.mark_filled(*first, 0));
  REQUIRE(f.ring.hand_out(first->slot));
  REQUIRE(f.ring.release(first->slot));
  std::this_thread::sleep_for(kWatchdogTimeout + 100ms);

  // The slot's next task, claimed by the same healthy worker, its stamp not written yet: the
  // slot still holds the first claim's time, now older than the timeout.
  f.ring.queue(0);
  const auto claimed = std::chrono::steady_clock::now();
  const uint32_t ticket = claim_without_stamp(f.ring, 0, 0);
  CHECK(ticket != first->ticket);
  CHECK(f.ring.slot(0).claimed_at_ns.load() != 0);
  CHECK_FALSE(f.ring.claimed_at(0, ticket));

  spared_then_killed(w.pool, w.pid, claimed);
}

TEST_CASE("own_fault: crashes, exit codes and hangs are the worker's; SIGKILL, SIGTERM and SIGINT are not",
          "[worker_pool][rule]") {
  // One rule for the pool's start-up budget and recovery's blame, so that they cannot disagree.
  using ringloader::ipc::ExitStatus;
  using ringloader::loader::detail::own_fault;
  CHECK(own_fault(ExitStatus{true, SIGSEGV, 0}, false));
  CHECK(own_fault(ExitStatus{true, SIGABRT, 0}, false));
  CHECK(own_fault(ExitStatus{false, 3, 0}, false));
  for (int sig : {SIGKILL, SIGTERM, SIGINT}) {
    CAPTURE(sig);
    CHECK_FALSE(own_fault(ExitStatus{true, sig, 0}, false));
    CHECK(own_fault(ExitStatus{true, sig, 0}, true));  // the watchdog killed a hang: the worker's
  }
}
