#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "core/error.hpp"
#include "loader/data_loader.hpp"
#include "tests/loader/test_datasets.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::loader;
using namespace std::chrono_literals;

namespace {

struct EpochResult {
  std::vector<int64_t> order;     ///< indices in delivery order
  std::vector<size_t> batch_sizes;
  std::vector<uint64_t> seqs;
  bool content_ok = true;
};

/// Iterates one epoch and checks every delivered sample's bytes and label.
EpochResult run_epoch(DataLoader& loader, const datasets::SyntheticDataset& ds) {
  EpochResult r;
  for (auto& b : loader) {
    const auto img = b.field("image");
    const auto lbl = b.field("label").as<int64_t>();
    REQUIRE(img.shape.size() == 4);
    REQUIRE(img.shape[0] == static_cast<int64_t>(b.size()));
    const size_t per = ds.image_bytes();
    for (size_t k = 0; k < b.size(); ++k) {
      const int64_t idx = b.indices()[k];
      const auto* p = reinterpret_cast<const uint8_t*>(img.data) + k * per;
      if (!ds.check(static_cast<size_t>(idx), {p, per}) || lbl[k] != ds.label(static_cast<size_t>(idx))) r.content_ok = false;
      r.order.push_back(idx);
    }
    r.batch_sizes.push_back(b.size());
    r.seqs.push_back(b.seq());
  }
  return r;
}

void require_clean() {
  CHECK(test::own_shm_entries().empty());
  CHECK(test::own_children().empty());
}


/// An epoch through next(): each batch's seq, and kRaised where an `Exc` was raised (handed
/// to `check`); the epoch goes on after it.
constexpr uint64_t kRaised = 999;
template <class Exc, class Check>
std::vector<uint64_t> seqs_raising(DataLoader& loader, Check check) {
  std::vector<uint64_t> seqs;
  for (;;) {
    try {
      auto b = loader.next();
      if (!b) break;
      seqs.push_back(b->seq());
    } catch (const Exc& e) {
      check(e);
      seqs.push_back(kRaised);
    }
  }
  return seqs;
}

}  // namespace

TEST_CASE("every index exactly once per epoch - for 0/1/2/4 workers and partial last batches", "[loader]") {
  const size_t workers = GENERATE(0u, 1u, 2u, 4u);
  const size_t batch = GENERATE(7u, 10u, 103u, 200u);
  const bool drop_last = GENERATE(false, true);
  const bool shuffle = GENERATE(false, true);
  CAPTURE(workers, batch, drop_last, shuffle);
  auto ds = std::make_shared<test::HookDataset>(103);
  LoaderOptions o;
  o.batch_size = batch;
  o.num_workers = workers;
  o.drop_last = drop_last;
  o.shuffle = shuffle;
  o.seed = 5;
  {
    DataLoader loader(ds, o);
    const size_t full = 103 / batch, expect_batches = drop_last ? full : (103 + batch - 1) / batch;
    CHECK(loader.size() == expect_batches);
    const auto r = run_epoch(loader, *ds);
    CHECK(r.content_ok);
    CHECK(r.batch_sizes.size() == expect_batches);
    for (size_t i = 0; i + 1 < r.batch_sizes.size(); ++i) CHECK(r.batch_sizes[i] == batch);
    if (drop_last) {
      CHECK(r.order.size() == full * batch);
      std::set<int64_t> uniq(r.order.begin(), r.order.end());
      CHECK(uniq.size() == r.order.size());
    } else {
      CHECK(test::exactly_once(r.order, 103));
      if (!r.batch_sizes.empty()) CHECK(r.batch_sizes.back() == (103 % batch ? 103 % batch : batch));
    }
    if (!shuffle && !drop_last) {
      for (size_t i = 0; i < r.order.size(); ++i) CHECK(r.order[i] == static_cast<int64_t>(i));
    }
  }
  require_clean();
}

TEST_CASE("same seed gives the same order for any worker count - a new epoch a new order", "[loader][determinism]") {
  auto ds = std::make_shared<test::HookDataset>(300);
  auto order_of = [&](size_t workers, uint64_t seed, int epochs) {
    LoaderOptions o;
    o.batch_size = 16;
    o.shuffle = true;
    o.num_workers = workers;
    o.seed = seed;
    DataLoader loader(ds, o);
    std::vector<std::vector<int64_t>> out;
    for (int e = 0; e < epochs; ++e) out.push_back(run_epoch(loader, *ds).order);
    return out;
  };
  const auto a = order_of(0, 11, 2);
  const auto b = order_of(2, 11, 2);
  const auto c = order_of(4, 11, 1);
  const auto d = order_of(2, 12, 1);
  CHECK(a == b);
  CHECK(a[0] == c[0]);
  CHECK(a[0] != a[1]);
  CHECK(a[0] != d[0]);
  CHECK(test::exactly_once(a[1], 300));
  {
    LoaderOptions o;
    o.batch_size = 16;
    o.shuffle = true;
    o.seed = 11;
    DataLoader loader(ds, o);
    loader.set_epoch(1);
    CHECK(run_epoch(loader, *ds).order == a[1]);
    CHECK(loader.epoch() == 1);
  }
  require_clean();
}

TEST_CASE("in_order=true keeps sampler order - in_order=false delivers as batches fill", "[loader][order]") {
  auto ds = std::make_shared<test::HookDataset>(64);
  // Batch 0's samples are slow: with in_order=false the others overtake it.
  ds->before = [](size_t i, datasets::SampleWriter&) {
    if (i < 8) std::this_thread::sleep_for(40ms);
  };
  for (bool in_order : {true, false}) {
    CAPTURE(in_order);
    LoaderOptions o;
    o.batch_size = 8;
    o.num_workers = 2;
    o.in_order = in_order;
    o.seed = 1;
    DataLoader loader(ds, o);
    const auto r = run_epoch(loader, *ds);
    CHECK(r.content_ok);
    CHECK(test::exactly_once(r.order, 64));
    if (in_order) {
      for (size_t i = 0; i < r.seqs.size(); ++i) CHECK(r.seqs[i] == i);
    } else {
      CHECK(r.seqs.front() != 0);
    }
  }
  require_clean();
}

TEST_CASE("quietly queued tasks all reach a worker, with at most one wake-up per batch", "[loader][wakeups]") {
  // When to wake is WakePolicy's (tests/loader/wake_policy_test.cpp); here the real loader
  // delivers everything it queued quietly, and never wakes more often than it queues.
  auto ds = std::make_shared<test::HookDataset>(400);
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = 2;
  o.prefetch_factor = 4;  // 8 slots
  o.persistent_workers = true;
  o.timeout = 60s;        // a task nobody claims is a hang: fail, do not wait forever
  DataLoader loader(ds, o);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> seen;
    while (auto b = loader.next()) {
      for (int64_t i : b->indices()) seen.push_back(i);
    }
    CHECK(test::exactly_once(seen, 400));
  }
  const auto st = loader.stats();
  CHECK(st.batches == 200);
  CHECK(st.worker_wakeups <= st.batches);
}

TEST_CASE("persistent workers keep their pids across 3 epochs - others are forked per epoch", "[loader][workers]") {
  auto ds = std::make_shared<test::HookDataset>(50);
  LoaderOptions o;
  o.batch_size = 10;
  o.num_workers = 2;
  o.persistent_workers = true;
  o.seed = 3;
  {
    DataLoader loader(ds, o);
    std::vector<int> pids;
    for (int e = 0; e < 3; ++e) {
      const auto r = run_epoch(loader, *ds);
      CHECK(test::exactly_once(r.order, 50));
      if (e == 0) pids = loader.worker_pids();
      CHECK(loader.worker_pids() == pids);
      CHECK(pids.size() == 2);
    }
    CHECK(loader.stats().epochs == 3);
  }
  require_clean();
  o.persistent_workers = false;
  {
    DataLoader loader(ds, o);
    run_epoch(loader, *ds);
    CHECK(loader.worker_pids().empty());  // stopped at the end of the epoch
    CHECK(test::own_children().empty());
  }
  require_clean();
}

TEST_CASE("breaking out mid-epoch - then a full epoch", "[loader]") {
  auto ds = std::make_shared<test::HookDataset>(200);
  const size_t workers = GENERATE(0u, 2u);
  const bool persistent = GENERATE(false, true);
  CAPTURE(workers, persistent);
  LoaderOptions o;
  o.batch_size = 10;
  o.num_workers = workers;
  o.persistent_workers = persistent;
  o.shuffle = true;
  o.seed = 9;
  {
    DataLoader loader(ds, o);
    int n = 0;
    for (auto& b : loader) {
      (void)b;
      if (++n == 3) break;
    }
    const auto r = run_epoch(loader, *ds);
    CHECK(r.content_ok);
    CHECK(test::exactly_once(r.order, 200));
    // explicit next(): a short epoch, then it starts over
    int count = 0;
    while (auto b = loader.next()) ++count;
    CHECK(count == 20);
  }
  require_clean();
}

TEST_CASE("destroying a loader mid-epoch is clean - and a held Batch outlives it", "[loader]") {
  auto ds = std::make_shared<test::HookDataset>(100);
  LoaderOptions o;
  o.batch_size = 10;
  o.num_workers = 2;
  o.seed = 2;
  Batch kept;
  {
    DataLoader loader(ds, o);
    auto it = loader.begin();
    kept = std::move(*it);
    ++it;
    CHECK(it->size() == 10);
  }
  require_clean();
  REQUIRE(kept);
  const auto img = kept.field("image");
  CHECK(ds->check(static_cast<size_t>(kept.indices()[0]), {reinterpret_cast<const uint8_t*>(img.data), ds->image_bytes()}));
  kept.release();
  CHECK_FALSE(kept);
}

TEST_CASE("holding batches: up to the slot count - then a clear error instead of a hang", "[loader][slots]") {
  auto ds = std::make_shared<test::HookDataset>(100);
  const size_t workers = GENERATE(0u, 2u);
  const bool in_order = GENERATE(true, false);
  CAPTURE(workers, in_order);
  LoaderOptions o;
  o.batch_size = 5;
  o.num_workers = workers;
  o.prefetch_factor = 2;
  o.in_order = in_order;
  o.seed = 4;
  {
    DataLoader loader(ds, o);
    const size_t slots = loader.num_slots();
    CHECK(slots == (workers ? workers * 2 : 2));
    std::vector<Batch> held;
    for (size_t i = 0; i < slots; ++i) {
      auto b = loader.next();
      REQUIRE(b);
      held.push_back(std::move(*b));
    }
    CHECK_THROWS_WITH(loader.next(), Catch::Contains("ring slots are held") && Catch::Contains("prefetch_factor"));
    held.pop_back();  // release one: the loader goes on
    auto b = loader.next();
    REQUIRE(b);
    held.clear();
    b->release();
    size_t rest = 0;
    while (auto x = loader.next()) rest += x->size();
    CHECK(rest + 5 * (slots + 1) == 100);
  }
  require_clean();
}

TEST_CASE("a sample larger than its slot fails with the index and both sizes", "[loader][slots]") {
  class TooLong : public test::RaggedDataset {
   public:
    TooLong() : RaggedDataset(20, 4) {}
    void get(size_t i, datasets::SampleWriter& out) override {
      if (i == 13) {
        out.set_shape(0, {9});  // declared largest is 4
      }
      RaggedDataset::get(i % 4, out);
    }
  };
  auto ds = std::make_shared<TooLong>();
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = GENERATE(0u, 2u);
  DataLoader loader(ds, o);
  std::vector<uint64_t> got;
  try {
    for (auto& b : loader) got.push_back(b.seq());
    FAIL("expected a SampleError");
  } catch (const SampleError& e) {
    CHECK(e.index() == 13);
    CHECK_THAT(std::string(e.what()), Catch::Contains("sample 13") && Catch::Contains("needs 36 bytes") &&
                                          Catch::Contains("slot holds 16"));
  }
  CHECK(got == std::vector<uint64_t>{0, 1, 2});  // raised at batch 3's place
}

TEST_CASE("a ring that does not fit in shared memory is refused at construction", "[loader][shm]") {
  auto ds = std::make_shared<datasets::SyntheticDataset>(1000, 224, 224, 3);
  LoaderOptions o;
  o.batch_size = 256;
  o.num_workers = 2;
  ::setenv("RINGLOADER_TEST_SHM_FREE_BYTES", "67108864", 1);  // a default Docker /dev/shm
  try {
    DataLoader loader(ds, o);
    ::unsetenv("RINGLOADER_TEST_SHM_FREE_BYTES");
    FAIL("expected IpcError");
  } catch (const IpcError& e) {
    ::unsetenv("RINGLOADER_TEST_SHM_FREE_BYTES");
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("needs") && Catch::Contains("67108864 bytes") && Catch::Contains("num_workers=2") &&
                        Catch::Contains("prefetch_factor=2") && Catch::Contains("batch 256"));
  }
  // A real 32 MiB tmpfs, when this machine lets us mount one.
  const std::string dir = "/tmp/ringloader-shm-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=32m") == 0) {
    o.shm_dir = dir;
    CHECK_THROWS_WITH(DataLoader(ds, o), Catch::Contains(dir) && Catch::Contains("free"));
    o.batch_size = 8;  // 4 slots x 8 x 150 KB fits
    {
      DataLoader small(ds, o);
      size_t n = 0;
      for (auto& b : small) n += b.size();
      CHECK(n == 1000);
      CHECK(std::filesystem::is_empty(dir));
    }
    ::umount(dir.c_str());
  } else {
    WARN("no tmpfs mount here; the injected figure covers the check");
  }
  std::filesystem::remove(dir);
  require_clean();
}

TEST_CASE("variable-size fields come with per-sample offsets and shapes", "[loader][ragged]") {
  auto ds = std::make_shared<test::RaggedDataset>(23);
  LoaderOptions o;
  o.batch_size = 6;
  o.num_workers = GENERATE(0u, 2u);
  DataLoader loader(ds, o);
  size_t seen = 0;
  for (auto& b : loader) {
    const auto r = b.ragged("tokens");
    const auto vals = r.values.as<int32_t>();
    REQUIRE(r.offsets.size() == b.size() + 1);
    for (size_t k = 0; k < b.size(); ++k) {
      const int64_t idx = b.indices()[k];
      const int64_t len = r.offsets[k + 1] - r.offsets[k];
      CHECK(len == idx % 5 + 1);
      CHECK(r.shapes[k] == std::vector<int64_t>{len});
      for (int64_t t = r.offsets[k]; t < r.offsets[k + 1]; ++t) CHECK(vals[static_cast<size_t>(t)] == idx);
      CHECK(b.field("label").as<int64_t>()[k] == idx);
    }
    CHECK_THROWS_AS(b.field("tokens"), ConfigError);
    seen += b.size();
  }
  CHECK(seen == 23);
}

TEST_CASE("samplers and batch samplers plug in", "[loader][sampler]") {
  auto ds = std::make_shared<test::HookDataset>(40);
  SECTION("SubsetRandomSampler") {
    LoaderOptions o;
    o.batch_size = 3;
    o.num_workers = 2;
    o.sampler = std::make_shared<SubsetRandomSampler>(std::vector<int64_t>{1, 5, 7, 11, 13, 17, 19});
    DataLoader loader(ds, o);
    auto r = run_epoch(loader, *ds);
    std::sort(r.order.begin(), r.order.end());
    CHECK(r.order == std::vector<int64_t>{1, 5, 7, 11, 13, 17, 19});
    CHECK(r.content_ok);
  }
  SECTION("WeightedRandomSampler with replacement") {
    std::vector<double> w(40, 0.0);
    w[3] = 1;
    w[4] = 1;
    LoaderOptions o;
    o.batch_size = 8;
    o.num_workers = 1;
    o.sampler = std::make_shared<WeightedRandomSampler>(w, 32);
    DataLoader loader(ds, o);
    auto r = run_epoch(loader, *ds);
    CHECK(r.order.size() == 32);
    CHECK(std::all_of(r.order.begin(), r.order.end(), [](int64_t i) { return i == 3 || i == 4; }));
    CHECK(r.content_ok);
  }
  SECTION("a custom batch sampler with uneven batches") {
    class Uneven : public BatchSampler {
     public:
      size_t size() const override { return 3; }
      size_t max_batch_size() const override { return 5; }
      BatchPlan batches(const EpochContext&) const override {
        BatchPlan p;
        p.add(std::vector<int64_t>{0});
        p.add(std::vector<int64_t>{1, 2, 3, 4, 5});
        p.add(std::vector<int64_t>{39, 38});
        return p;
      }
    };
    LoaderOptions o;
    o.batch_sampler = std::make_shared<Uneven>();
    o.num_workers = 2;
    DataLoader loader(ds, o);
    const auto r = run_epoch(loader, *ds);
    CHECK(r.batch_sizes == std::vector<size_t>{1, 5, 2});
    CHECK(r.order == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 39, 38});
  }
  SECTION("bad combinations are ConfigErrors naming the options") {
    LoaderOptions o;
    o.sampler = std::make_shared<SequentialSampler>(40);
    o.shuffle = true;
    CHECK_THROWS_WITH(DataLoader(ds, o), Catch::Contains("sampler") && Catch::Contains("shuffle"));
    LoaderOptions z;
    z.batch_size = 0;
    CHECK_THROWS_WITH(DataLoader(ds, z), Catch::Contains("batch_size"));
    LoaderOptions big;
    big.sampler = std::make_shared<SequentialSampler>(41);
    DataLoader l(ds, big);
    CHECK_THROWS_WITH(l.next(), Catch::Contains("index 40") && Catch::Contains("40 samples"));
  }
  require_clean();
}

TEST_CASE("worker_init_fn and on_worker_start run in every worker", "[loader][workers]") {
  static int init_value = 0;  // per process after fork
  class Tagged : public test::HookDataset {
   public:
    Tagged() : HookDataset(30) {}
    void on_worker_start(const datasets::WorkerInfo& info) override { started_id = info.id; }
    int started_id = -100;
  };
  auto ds = std::make_shared<Tagged>();
  ds->before = [&ds](size_t, datasets::SampleWriter& w) {
    if (init_value != 1000 + ds->started_id || w.worker_id() != ds->started_id) throw std::runtime_error("init not run");
  };
  for (size_t workers : {0u, 3u}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.num_workers = workers;
    o.worker_init_fn = [](const datasets::WorkerInfo& info) { init_value = 1000 + info.id; };
    if (workers == 0) {
      ds->before = [&ds](size_t, datasets::SampleWriter&) {
        if (init_value != 1000 + ds->started_id) throw std::runtime_error("init not run");
      };
    }
    DataLoader loader(ds, o);
    CHECK(test::exactly_once(run_epoch(loader, *ds).order, 30));
  }
  require_clean();
}

TEST_CASE("an exception in dataset code is raised at its batch's place with index and type", "[loader][errors]") {
  auto ds = std::make_shared<test::HookDataset>(40);
  ds->before = [](size_t i, datasets::SampleWriter& w) {
    if (i == 17) {
      w.set_source("/data/cat17.jpg");
      throw std::out_of_range("bad crop");
    }
  };
  const size_t workers = GENERATE(0u, 2u);
  CAPTURE(workers);
  LoaderOptions o;
  o.batch_size = 5;
  o.num_workers = workers;
  SECTION("raise") {
    DataLoader loader(ds, o);
    bool raised = false;
    const auto seqs = seqs_raising<SampleError>(loader, [&](const SampleError& e) {
      raised = true;
      CHECK(e.index() == 17);
      CHECK(e.path() == "/data/cat17.jpg");
      CHECK(e.type() == "std::out_of_range");
      CHECK_THAT(std::string(e.what()), Catch::Contains("bad crop") && Catch::Contains("batch 3"));
    });
    CHECK(raised);
    CHECK(seqs == std::vector<uint64_t>{0, 1, 2, 999, 4, 5, 6, 7});  // the epoch goes on after it
  }
  SECTION("skip") {
    o.on_error = OnError::kSkip;
    DataLoader loader(ds, o);
    const auto r = run_epoch(loader, *ds);
    CHECK(r.order.size() == 39);
    CHECK(std::find(r.order.begin(), r.order.end(), 17) == r.order.end());
    CHECK(r.batch_sizes[3] == 4);
    REQUIRE(loader.skipped().size() == 1);
    CHECK(loader.skipped()[0].index == 17);
    CHECK(loader.skipped()[0].path == "/data/cat17.jpg");
    CHECK(loader.skipped()[0].reason == "bad crop");
  }
  require_clean();
}

TEST_CASE("stream datasets shard by worker_info and end when every shard ends", "[loader][stream]") {
  const size_t workers = GENERATE(0u, 1u, 3u);
  const bool drop_last = GENERATE(false, true);
  CAPTURE(workers, drop_last);
  auto ds = std::make_shared<test::CountingStream>(100);
  LoaderOptions o;
  o.batch_size = 7;
  o.num_workers = workers;
  o.drop_last = drop_last;
  DataLoader loader(ds, o);
  CHECK_THROWS_AS(loader.size(), ConfigError);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> values;
    for (auto& b : loader) {
      if (drop_last) CHECK(b.size() == 7);
      for (int64_t v : b.field("value").as<int64_t>()) values.push_back(v);
    }
    std::set<int64_t> uniq(values.begin(), values.end());
    CHECK(uniq.size() == values.size());
    if (!drop_last) CHECK(test::exactly_once(values, 100));
  }
}

TEST_CASE("a killed worker is replaced and the epoch still delivers every index once", "[loader][fault]") {
  auto ds = std::make_shared<test::HookDataset>(200);
  ds->before = [](size_t, datasets::SampleWriter&) { std::this_thread::sleep_for(1ms); };
  LoaderOptions o;
  o.batch_size = 10;
  o.num_workers = 2;
  o.persistent_workers = true;
  o.seed = 8;
  {
    DataLoader loader(ds, o);
    EpochResult r;
    int n = 0;
    for (auto& b : loader) {
      if (++n == 3) ::kill(loader.worker_pids()[0], SIGKILL);
      for (int64_t i : b.indices()) r.order.push_back(i);
      const auto img = b.field("image");
      for (size_t k = 0; k < b.size(); ++k) {
        CHECK(ds->check(static_cast<size_t>(b.indices()[k]),
                        {reinterpret_cast<const uint8_t*>(img.data) + k * ds->image_bytes(), ds->image_bytes()}));
      }
    }
    CHECK(test::exactly_once(r.order, 200));
    CHECK(loader.stats().worker_restarts == 1);
  }
  require_clean();
}

TEST_CASE("a hung worker is killed after timeout - a batch that always hangs is a TimeoutError", "[loader][fault]") {
  auto ds = std::make_shared<test::HookDataset>(30);
  SECTION("hangs once: next() raises within the timeout naming the wait - then the retry delivers everything") {
    // Exactly one process wins the O_EXCL create of the marker and hangs; the retry does not.
    static std::string marker;
    marker = "/tmp/ringloader-hang-" + std::to_string(::getpid());
    std::filesystem::remove(marker);
    ds->before = [](size_t i, datasets::SampleWriter&) {
      if (i != 12) return;
      const int fd = ::open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
      if (fd >= 0) {
        ::close(fd);
        for (;;) ::pause();
      }
    };
    LoaderOptions o;
    o.batch_size = 5;
    o.num_workers = 2;
    o.timeout = 300ms;
    DataLoader loader(ds, o);
    std::vector<int64_t> order;
    int waits = 0;
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        auto b = loader.next();
        if (!b) break;
        for (int64_t i : b->indices()) order.push_back(i);
      } catch (const TimeoutError& e) {
        ++waits;
        CHECK_FALSE(e.batch_given_up());
        CHECK(std::chrono::steady_clock::now() - t0 < 1s);  // bounded by the timeout, not by the hang
        CHECK_THAT(std::string(e.what()), Catch::Contains("timed out after") && Catch::Contains("batch 2") &&
                                              Catch::Contains("call next() again"));
      }
    }
    CHECK(waits >= 1);
    CHECK(test::exactly_once(order, 30));
    CHECK(loader.stats().worker_restarts == 1);
    CHECK(loader.stats().timeouts == static_cast<uint64_t>(waits));
    std::filesystem::remove(marker);
  }
  SECTION("always hangs: TimeoutError at the batch's place - then the epoch goes on") {
    ds->before = [](size_t i, datasets::SampleWriter&) {
      if (i == 12) for (;;) ::pause();
    };
    LoaderOptions o;
    o.batch_size = 5;
    o.num_workers = 2;
    o.timeout = 200ms;
    o.max_retries = 2;
    DataLoader loader(ds, o);
    std::vector<uint64_t> seqs;
    int waits = 0;
    for (;;) {
      try {
        auto b = loader.next();
        if (!b) break;
        seqs.push_back(b->seq());
      } catch (const TimeoutError& e) {
        if (!e.batch_given_up()) {
          ++waits;  // next() waited its timeout; the hung worker was (or will be) killed
          continue;
        }
        CHECK_THAT(std::string(e.what()), Catch::Contains("batch 2") && Catch::Contains("10,11,12,13,14") &&
                                              Catch::Contains("timeout=200 ms") &&
                                              Catch::Contains("they hung in sample 12 (synthetic:12)"));
        seqs.push_back(kRaised);
      }
    }
    CHECK(seqs == std::vector<uint64_t>{0, 1, kRaised, 3, 4, 5});
    CHECK(waits >= 1);
  }
  SECTION("always crashes under on_error=skip: the batch's samples are skipped and reported") {
    ds->before = [](size_t i, datasets::SampleWriter&) {
      if (i == 7) ::raise(SIGSEGV);
    };
    LoaderOptions o;
    o.batch_size = 5;
    o.num_workers = 2;
    o.on_error = OnError::kSkip;
    DataLoader loader(ds, o);
    const auto r = run_epoch(loader, *ds);
    CHECK(r.content_ok);
    CHECK(r.order.size() == 29);  // only the sample the workers died in is dropped
    CHECK(std::find(r.order.begin(), r.order.end(), 7) == r.order.end());
    REQUIRE(loader.skipped().size() == 1);
    CHECK(loader.skipped()[0].index == 7);
    CHECK(loader.skipped()[0].path == "synthetic:7");
    CHECK_THAT(loader.skipped()[0].reason, Catch::Contains("took down 3 workers") && Catch::Contains("signal 11") &&
                                               Catch::Contains("in sample 7 (synthetic:7)"));
    CHECK(loader.stats().worker_restarts == 3);
  }
  SECTION("always crashes under on_error=raise: BatchError at the batch's place names indices and files") {
    ds->before = [](size_t i, datasets::SampleWriter&) {
      if (i == 7) ::abort();
    };
    LoaderOptions o;
    o.batch_size = 5;
    o.num_workers = 2;
    DataLoader loader(ds, o);
    const auto seqs = seqs_raising<BatchError>(loader, [](const BatchError& e) {
      CHECK(e.indices() == std::vector<int64_t>{5, 6, 7, 8, 9});
      CHECK(e.culprits() == std::vector<int64_t>{7, 7, 7});
      CHECK_THAT(std::string(e.what()), Catch::Contains("batch 1") && Catch::Contains("took down 3 workers") &&
                                            Catch::Contains("signal 6") && Catch::Contains("sample 7 (synthetic:7)"));
    });
    CHECK(seqs == std::vector<uint64_t>{0, 999, 2, 3, 4, 5});
  }
  require_clean();
}
