// Fault tolerance: workers killed at random points, a main process killed from a driver,
// signals. A child process never REQUIREs: it reports through its exit code or a pipe.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/error.hpp"
#include "loader/data_loader.hpp"
#include "tests/loader/test_datasets.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::loader;
using namespace std::chrono_literals;

namespace {

uint64_t fnv(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

struct Run {
  uint64_t checksum = 0xcbf29ce484222325ULL;
  std::vector<int64_t> order;
  uint64_t restarts = 0;
};

Run run(size_t workers, int kill_every, uint64_t seed) {
  auto ds = std::make_shared<test::RngDataset>(600, 16, std::chrono::microseconds(200));
  LoaderOptions o;
  o.batch_size = 12;
  o.num_workers = workers;
  o.shuffle = true;
  o.persistent_workers = true;
  o.seed = seed;
  o.max_retries = 1000;  // random kills are not the batch's fault
  DataLoader loader(ds, o);
  Run r;
  datasets::Rng pick(99);
  int n = 0;
  for (auto& b : loader) {
    const auto img = b.field("image");
    r.checksum = fnv(r.checksum, img.data, img.nbytes());
    for (int64_t i : b.indices()) r.order.push_back(i);
    if (kill_every > 0 && ++n % kill_every == 0) {
      const auto pids = loader.worker_pids();
      const int sigs[] = {SIGKILL, SIGSEGV, SIGABRT, SIGTERM};
      ::kill(pids[pick.below(pids.size())], sigs[pick.below(4)]);
      std::this_thread::sleep_for(std::chrono::microseconds(pick.below(3000)));
    }
  }
  r.restarts = loader.stats().worker_restarts;
  return r;
}

/// Forks a "training program" that builds a loader, reports its worker pids through a pipe,
/// and then loops over epochs forever (or until `handle_sigint` catches SIGINT and exits 130).
/// `on_thread`: the loader lives on a second thread (which forks the workers), as a training
/// script's data thread would; the main thread waits for it.
volatile sig_atomic_t g_stop = 0;

pid_t start_trainer(std::vector<int>& worker_pids, bool handle_sigint, bool on_thread = false) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    // A real program's dispositions, not the test framework's handlers.
    for (int sig : {SIGINT, SIGTERM, SIGSEGV, SIGABRT}) ::signal(sig, SIG_DFL);
    if (handle_sigint) {
      struct sigaction sa {};
      sa.sa_handler = [](int) { g_stop = 1; };
      ::sigaction(SIGINT, &sa, nullptr);
    }
    int rc = 0;
    auto body = [&] {
    try {
      auto ds = std::make_shared<test::HookDataset>(400);
      ds->before = [](size_t, datasets::SampleWriter&) { std::this_thread::sleep_for(500us); };
      LoaderOptions o;
      o.batch_size = 8;
      o.num_workers = 2;
      o.persistent_workers = true;
      DataLoader loader(ds, o);
      bool reported = false;
      while (!g_stop) {
        for (auto& b : loader) {
          (void)b;
          if (!reported) {
            const auto pids = loader.worker_pids();
            const int n = static_cast<int>(pids.size());
            (void)!::write(fds[1], &n, sizeof n);
            (void)!::write(fds[1], pids.data(), sizeof(int) * pids.size());
            reported = true;
          }
          if (g_stop) break;
        }
      }
      rc = 130;
    } catch (...) {
      rc = 1;
    }
    };
    if (on_thread) {
      std::thread t(body);
      t.join();
    } else {
      body();
    }
    ::_exit(rc);  // the loader was destroyed above: its workers stopped cleanly
  }
  ::close(fds[1]);
  int n = 0;
  REQUIRE(::read(fds[0], &n, sizeof n) == sizeof n);
  worker_pids.resize(static_cast<size_t>(n));
  REQUIRE(::read(fds[0], worker_pids.data(), sizeof(int) * worker_pids.size()) ==
          static_cast<ssize_t>(sizeof(int) * worker_pids.size()));
  ::close(fds[0]);
  return pid;
}

bool all_gone_within(const std::vector<int>& pids, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (std::all_of(pids.begin(), pids.end(), test::process_gone)) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

bool shm_clean_for(pid_t pid) {
  const std::string prefix = "ringloader-" + std::to_string(pid) + "-";
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("workers killed at random points many times in one epoch - same bytes as an undisturbed run",
          "[fault][random]") {
  const Run calm = run(2, 0, 5);
  const Run shaken = run(2, 3, 5);
  const Run inproc = run(0, 0, 5);
  CHECK(shaken.restarts >= 10);
  CHECK(shaken.order == calm.order);
  CHECK(shaken.checksum == calm.checksum);
  CHECK(inproc.checksum == calm.checksum);
  std::vector<int64_t> sorted = shaken.order;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) CHECK(sorted[i] == static_cast<int64_t>(i));
  CHECK(test::own_children().empty());
  CHECK(test::own_shm_entries().empty());
}

TEST_CASE("the main process SIGKILLed or SIGTERMed - its workers exit within a second and nothing remains",
          "[fault][parent]") {
  const int sig = GENERATE(SIGKILL, SIGTERM, SIGINT);
  CAPTURE(sig);
  std::vector<int> workers;
  const pid_t trainer = start_trainer(workers, false);
  REQUIRE(workers.size() == 2);
  ::kill(trainer, sig);
  int st = 0;
  REQUIRE(::waitpid(trainer, &st, 0) == trainer);
  CHECK(WIFSIGNALED(st));
  CHECK(all_gone_within(workers, 1000ms));
  CHECK(shm_clean_for(trainer));
}

TEST_CASE("a stopped worker dies with its SIGKILLed main process", "[fault][parent]") {
  // A catchable parent-death signal stays pending on a stopped worker, which would outlive its
  // main process (and keep a tmpfs ring's memory). Workers forked by a second thread get one.
  const bool on_thread = GENERATE(false, true);
  CAPTURE(on_thread);
  std::vector<int> workers;
  const pid_t trainer = start_trainer(workers, false, on_thread);
  REQUIRE(workers.size() == 2);
  ::kill(workers[0], SIGSTOP);
  ::kill(trainer, SIGKILL);
  int st = 0;
  REQUIRE(::waitpid(trainer, &st, 0) == trainer);
  CHECK(all_gone_within(workers, 1000ms));
  for (int w : workers) ::kill(w, SIGCONT);  // should it have survived, let it go
  CHECK(shm_clean_for(trainer));
}

TEST_CASE("a program that handles SIGINT shuts its loader down cleanly and exits 130", "[fault][signal]") {
  std::vector<int> workers;
  const pid_t trainer = start_trainer(workers, true);
  ::kill(trainer, SIGINT);
  int st = 0;
  REQUIRE(::waitpid(trainer, &st, 0) == trainer);
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 130);
  CHECK(all_gone_within(workers, 100ms));  // stopped by the loader's destructor, before exit
  CHECK(shm_clean_for(trainer));
}
