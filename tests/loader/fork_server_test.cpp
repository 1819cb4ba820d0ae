// The fork-server start method. A separate binary: the fork server started here lives as long
// as the test process, which the other loader tests would count as a leftover child.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "core/error.hpp"
#include "loader/data_loader.hpp"
#include "loader/init.hpp"
#include "tests/loader/test_datasets.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::loader;
using namespace std::chrono_literals;

namespace {

/// Registers the test datasets and starts the fork server, once, while the process has one thread.
void ensure_server() {
  static bool started = false;
  if (started) return;
  register_dataset("hook", [](const std::string& args) { return std::make_shared<test::HookDataset>(std::stoul(args)); });
  register_dataset("failing", [](const std::string&) -> std::shared_ptr<datasets::Dataset> {
    throw std::runtime_error("cannot open the dataset");
  });
  ringloader::init();
  started = true;
}

/// Threads that keep malloc, a mutex and stdio busy: what makes plain fork() hazardous.
class BusyThreads {
 public:
  explicit BusyThreads(int n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        while (!stop_) {
          std::vector<std::string> v;
          for (int k = 0; k < 64; ++k) v.emplace_back(std::string(static_cast<size_t>(100 + k), 'x'));
          std::lock_guard<std::mutex> lock(mutex_);
          counter_ += v.size();
        }
      });
    }
  }
  ~BusyThreads() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  size_t counter_ = 0;
  std::vector<std::thread> threads_;
};


}  // namespace

TEST_CASE("fork-server workers load every index while the trainer runs threads - 25 epochs", "[forkserver]") {
  ensure_server();
  test::HookDataset check(120);
  BusyThreads busy(3);
  LoaderOptions o;
  o.batch_size = 8;
  o.num_workers = 2;
  o.shuffle = true;
  o.seed = 3;
  o.start_method = StartMethod::kForkServer;
  {
    DataLoader loader(DatasetRecipe{"hook", "120"}, o);
    std::vector<int> first_pids;
    for (int e = 0; e < 25; ++e) {
      std::vector<int64_t> seen;
      bool content_ok = true;
      for (auto& b : loader) {
        if (first_pids.empty()) first_pids = loader.worker_pids();
        const auto img = b.field("image");
        for (size_t k = 0; k < b.size(); ++k) {
          const auto idx = static_cast<size_t>(b.indices()[k]);
          content_ok &= check.check(idx, {reinterpret_cast<const uint8_t*>(img.data) + k * check.image_bytes(),
                                          check.image_bytes()});
          seen.push_back(b.indices()[k]);
        }
      }
      CHECK(content_ok);
      CHECK(test::exactly_once(seen, 120));
    }
    CHECK(loader.stats().threaded_forks == 0);  // every worker came from the single-threaded spawner
    CHECK(loader.stats().epochs == 25);
    for (int pid : first_pids) CHECK(test::process_gone(pid));  // non-persistent: stopped per epoch
  }
  // The same loader forking directly from this threaded process counts (and warns about) it.
  o.start_method = StartMethod::kFork;
  DataLoader direct(std::make_shared<test::HookDataset>(120), o);
  size_t n = 0;
  for (auto& b : direct) n += b.size();
  CHECK(n == 120);
  CHECK(direct.stats().threaded_forks == 2);
}

TEST_CASE("a fork-server worker that dies is replaced and the epoch completes", "[forkserver][fault]") {
  ensure_server();
  LoaderOptions o;
  o.batch_size = 10;
  o.num_workers = 2;
  o.persistent_workers = true;
  o.start_method = StartMethod::kForkServer;
  DataLoader loader(DatasetRecipe{"hook", "300"}, o);
  std::vector<int64_t> seen;
  int n = 0;
  std::vector<int> killed;
  for (auto& b : loader) {
    if (++n == 4) {
      // The spawner forks workers without the loader waiting: both have pids once it answered.
      for (int i = 0; i < 200 && loader.worker_pids().size() < 2; ++i) std::this_thread::sleep_for(10ms);
      REQUIRE(loader.worker_pids().size() == 2);
      killed.push_back(loader.worker_pids()[1]);
      ::kill(killed.back(), SIGKILL);
    }
    for (int64_t i : b.indices()) seen.push_back(i);
  }
  CHECK(test::exactly_once(seen, 300));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // an epoch of tiny samples beats the death report
  seen.clear();
  for (auto& b : loader) {
    for (int64_t i : b.indices()) seen.push_back(i);
  }
  CHECK(test::exactly_once(seen, 300));
  CHECK(loader.stats().worker_restarts == 1);
  for (int i = 0; i < 200 && loader.worker_pids().size() < 2; ++i) std::this_thread::sleep_for(10ms);
  const auto pids = loader.worker_pids();
  CHECK(pids.size() == 2);
  CHECK(std::find(pids.begin(), pids.end(), killed[0]) == pids.end());
}

TEST_CASE("fork-server misuse is a ConfigError naming the fix", "[forkserver][errors]") {
  ensure_server();
  LoaderOptions o;
  o.num_workers = 1;
  o.start_method = StartMethod::kForkServer;
  CHECK_THROWS_WITH(DataLoader(std::make_shared<test::HookDataset>(5), o), Catch::Contains("DatasetRecipe"));
  CHECK_THROWS_WITH(DataLoader(DatasetRecipe{"nope", ""}, o), Catch::Contains("no dataset registered as 'nope'") &&
                                                                 Catch::Contains("hook"));
  register_dataset("late", [](const std::string&) { return std::make_shared<test::HookDataset>(5); });
  CHECK_THROWS_WITH(DataLoader(DatasetRecipe{"late", ""}, o), Catch::Contains("registered after ringloader::init()"));
  o.worker_init_fn = [](const datasets::WorkerInfo&) {};
  CHECK_THROWS_WITH(DataLoader(DatasetRecipe{"hook", "5"}, o), Catch::Contains("worker_init_fn"));
  CHECK_THROWS_AS(ringloader::init(), ConfigError);
}

TEST_CASE("after fork-server loaders no worker or spawner is left and nothing is in /dev/shm", "[forkserver]") {
  ensure_server();
  {
    LoaderOptions o;
    o.batch_size = 4;
    o.num_workers = 2;
    o.start_method = StartMethod::kForkServer;
    DataLoader loader(DatasetRecipe{"hook", "40"}, o);
    size_t n = 0;
    for (auto& b : loader) n += b.size();
    CHECK(n == 40);
  }
  CHECK(test::own_shm_entries().empty());
  CHECK(test::own_children().size() == 1);  // the fork server itself, and nothing else
}
