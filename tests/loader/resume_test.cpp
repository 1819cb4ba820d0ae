#include <catch2/catch.hpp>

#include <signal.h>

#include <thread>

#include "core/error.hpp"
#include "loader/data_loader.hpp"
#include "loader/distributed.hpp"
#include "tests/loader/test_datasets.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::loader;

namespace {

struct Seen {
  std::vector<int64_t> indices;
  std::vector<uint64_t> sums;  ///< per batch
  bool operator==(const Seen&) const = default;
};

void take(Batch& b, Seen& s) {
  const auto img = b.field("image");
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < img.nbytes(); ++i) h = (h ^ static_cast<uint8_t>(img.data[i])) * 0x100000001b3ULL;
  s.sums.push_back(h);
  for (int64_t i : b.indices()) s.indices.push_back(i);
}

LoaderOptions options(size_t workers) {
  LoaderOptions o;
  o.batch_size = 7;
  o.shuffle = true;
  o.num_workers = workers;
  o.seed = 77;
  return o;
}

}  // namespace

TEST_CASE("stop after k batches - save - restore - finish equals an uninterrupted run", "[resume]") {
  auto ds = std::make_shared<test::RngDataset>(100);  // 15 batches per epoch
  const size_t workers = GENERATE(0u, 2u);
  const size_t k = GENERATE(0u, 1u, 8u, 14u, 15u);
  const bool crash = GENERATE(false, true);
  CAPTURE(workers, k, crash);
  Seen whole;
  {
    DataLoader l(ds, options(workers));
    l.set_epoch(3);
    for (auto& b : l) take(b, whole);
    for (auto& b : l) take(b, whole);  // and the next epoch
  }
  Seen resumed;
  std::string state;
  {
    auto o = options(workers);
    o.persistent_workers = true;
    DataLoader l(ds, o);
    l.set_epoch(3);
    // Inside a range-for, state() counts the batch in hand as done: k batches seen = k done.
    size_t n = 0;
    if (k == 0) state = l.state();  // before the epoch starts
    for (auto& b : l) {
      if (k == 0) break;
      if (n == 0 && crash && workers) ::kill(l.worker_pids()[0], SIGKILL);
      if (n == k) break;
      take(b, resumed);
      if (++n == k) {
        if (crash && workers) std::this_thread::sleep_for(std::chrono::milliseconds(150));
        state = l.state();
      }
    }
    if (k == 15) CHECK(state.find("[[0,14]]") != std::string::npos);
  }
  {
    auto o = options(workers);
    o.seed.reset();  // taken from the state
    DataLoader l(ds, o);
    l.load_state(state);
    CHECK(l.seed() == 77);
    for (auto& b : l) take(b, resumed);
    for (auto& b : l) take(b, resumed);
  }
  CHECK(resumed.indices == whole.indices);
  CHECK(resumed.sums == whole.sums);
  CHECK(test::own_children().empty());
}

TEST_CASE("a state is refused on another dataset - world size - rank or seed", "[resume][errors]") {
  auto ds = std::make_shared<test::RngDataset>(100);
  DataLoader a(ds, options(0));
  a.next();
  const std::string state = a.state();
  CHECK_THAT(state, Catch::Contains("\"format\":\"ringloader-state/1\"") && Catch::Contains("\"done\":[[0,0]]"));
  {
    DataLoader other(std::make_shared<test::RngDataset>(101), options(0));
    CHECK_THROWS_WITH(other.load_state(state), Catch::Contains("another dataset") && Catch::Contains("101 samples"));
  }
  {
    auto o = options(0);
    o.shuffle = false;
    o.sampler = std::make_shared<DistributedSampler>(100, 0, 2);
    DataLoader two(ds, o);
    CHECK_THROWS_WITH(two.load_state(state), Catch::Contains("world size 1") && Catch::Contains("runs with 2"));
  }
  {
    auto o = options(0);
    o.seed = 78;
    DataLoader other_seed(ds, o);
    CHECK_THROWS_WITH(other_seed.load_state(state), Catch::Contains("seed 77") && Catch::Contains("seed=78"));
  }
  {
    auto o = options(0);
    o.batch_size = 8;
    DataLoader other_batch(ds, o);
    CHECK_THROWS_WITH(other_batch.load_state(state), Catch::Contains("batches per epoch"));
  }
  DataLoader any(ds, options(0));
  CHECK_THROWS_WITH(any.load_state("{"), Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(any.load_state("{\"format\":\"ringloader-state/1\"}"), Catch::Contains("missing"));
}

TEST_CASE("a state is refused by a loader that batches or orders the epoch differently", "[resume][errors]") {
  // Same dataset, seed and batches per epoch: only the plan's fingerprint tells them apart.
  auto ds = std::make_shared<test::RngDataset>(100);  // batch 7: 15 batches
  DataLoader a(ds, options(0));
  a.next();
  const std::string state = a.state();
  CHECK_THAT(state, Catch::Contains("\"plan\":\""));
  {
    auto o = options(0);
    o.shuffle = false;  // sequential: 15 batches too
    DataLoader sequential(ds, o);
    sequential.load_state(state);  // the order is compared when the resumed epoch has its batches
    CHECK_THROWS_WITH(sequential.next(), Catch::Contains("batched or ordered differently") && Catch::Contains("shuffle"));
    CHECK(sequential.next());  // the state is dropped: a fresh epoch
  }
  {
    auto o = options(0);
    o.drop_last = true;  // 100 / 7: 14 full batches and a partial one; drop_last keeps 14
    DataLoader dropping(ds, o);
    CHECK_THROWS(dropping.load_state(state));
  }
  DataLoader same(ds, options(0));
  CHECK_NOTHROW(same.load_state(state));
  CHECK_NOTHROW(same.next());
}

TEST_CASE("state() runs no sampler: the plan is the one the epoch runs", "[resume]") {
  // A sampler whose every call draws anew (a Python sampler over torch's generator): state()
  // called it again, which changed the next epochs' order; and load_state() compared against
  // yet another draw.
  struct Drawing : Sampler {
    mutable int calls = 0;
    size_t size() const override { return 20; }
    std::vector<int64_t> indices(const EpochContext&) const override {
      ++calls;
      std::vector<int64_t> v(20);
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>((i * 7 + static_cast<size_t>(calls)) % 20);
      return v;
    }
  };
  auto ds = std::make_shared<test::RngDataset>(20);
  auto o = options(0);
  o.shuffle = false;
  auto sampler = std::make_shared<Drawing>();
  o.sampler = sampler;
  DataLoader a(ds, o);
  a.next();
  CHECK(sampler->calls == 1);
  (void)a.state();
  (void)a.state();
  CHECK(sampler->calls == 1);
}

TEST_CASE("state() right after load_state() is the loaded position, not a fresh epoch", "[resume]") {
  auto ds = std::make_shared<test::RngDataset>(100);
  DataLoader a(ds, options(0));
  a.set_epoch(2);
  for (int k = 0; k < 4; ++k) a.next();
  const std::string saved = a.state();
  CHECK_THAT(saved, Catch::Contains("\"done\":[[0,3]]") && Catch::Contains("\"epoch\":2"));
  DataLoader b(ds, options(0));
  b.load_state(saved);
  CHECK(b.state() == saved);  // saved again before the first resumed batch: nothing is replayed
  size_t left = 0;
  while (b.next()) ++left;
  CHECK(left == 15 - 4);
}

TEST_CASE("uncount() takes a batch out of state() and stats() until recount()", "[resume]") {
  // A binding's hand-out cut short (Python: a Ctrl-C while the batch object is built) keeps the
  // batch for the next call; meanwhile a checkpoint must not count it as delivered.
  auto ds = std::make_shared<test::RngDataset>(100);
  DataLoader a(ds, options(0));
  for (int k = 0; k < 3; ++k) a.next();
  std::optional<Batch> kept = a.next();  // batch 3
  REQUIRE(kept);
  CHECK_THAT(a.state(), Catch::Contains("\"done\":[[0,3]]"));
  a.uncount(*kept);
  CHECK_THAT(a.state(), Catch::Contains("\"done\":[[0,2]]"));
  CHECK(a.stats().batches == 3);
  CHECK(a.stats().samples == 21);
  const std::string saved = a.state();
  a.recount(*kept);
  CHECK_THAT(a.state(), Catch::Contains("\"done\":[[0,3]]"));
  CHECK(a.stats().batches == 4);
  DataLoader b(ds, options(0));  // the checkpoint taken meanwhile resumes with batch 3
  b.load_state(saved);
  std::optional<Batch> first = b.next();
  REQUIRE(first);
  CHECK(std::vector<int64_t>(first->indices().begin(), first->indices().end()) ==
        std::vector<int64_t>(kept->indices().begin(), kept->indices().end()));
  a.start_epoch();  // a batch of an abandoned epoch counts nowhere
  a.uncount(*kept);
  CHECK(a.stats().batches == 4);
}

TEST_CASE("a BlockShuffleSampler's rank and world size are in the state: a cross-rank resume is refused",
          "[resume][errors]") {
  // The identity read rank and world size only from a DistributedSampler: a multi-rank
  // BlockShuffleSampler saved rank 0 / world 1, and rank 0 took rank 1's position.
  auto ds = std::make_shared<test::RngDataset>(100);
  auto o = options(0);
  o.shuffle = false;
  o.sampler = std::make_shared<BlockShuffleSampler>(std::vector<size_t>(10, 10), 2, 5, /*rank=*/1, /*world=*/2);
  DataLoader a(ds, o);
  a.next();
  const std::string state = a.state();
  CHECK_THAT(state, Catch::Contains("\"rank\":1") && Catch::Contains("\"world_size\":2"));
  auto other = o;
  other.sampler = std::make_shared<BlockShuffleSampler>(std::vector<size_t>(10, 10), 2, 5, /*rank=*/0, /*world=*/2);
  DataLoader b(ds, other);
  CHECK_THROWS_WITH(b.load_state(state), Catch::Contains("rank 1's") && Catch::Contains("rank 0"));
}

TEST_CASE("reseed: a new seed for the next epochs, refused with seed= or while a state waits", "[resume]") {
  auto ds = std::make_shared<test::RngDataset>(40);
  const size_t workers = GENERATE(0u, 2u);
  CAPTURE(workers);
  auto o = options(workers);
  o.seed.reset();
  o.default_seed = 5;
  auto epoch_of = [](DataLoader& l) {
    Seen s;
    for (auto& b : l) take(b, s);
    return s;
  };
  DataLoader a(ds, o), b(ds, o);
  b.reseed(6);
  CHECK(b.seed() == 6);
  const Seen a0 = epoch_of(a), b0 = epoch_of(b);
  CHECK(a0.indices != b0.indices);  // the order follows the seed
  CHECK(a0.sums != b0.sums);        // and so does each sample's randomness

  DataLoader c(ds, o);  // 5 again, through reseed: the same epoch as a's
  c.reseed(5);
  CHECK(epoch_of(c) == a0);

  const std::string saved = b.state();  // at the start of b's epoch 1, seed 6
  DataLoader d(ds, o);
  CHECK_FALSE(d.resuming());
  d.load_state(saved);
  CHECK(d.resuming());
  CHECK_THROWS_AS(d.reseed(7), ConfigError);  // the resumed epoch keeps its saved seed
  CHECK(d.seed() == 6);
  const Seen d1 = epoch_of(d);
  CHECK_FALSE(d.resuming());
  CHECK(d1 == epoch_of(b));
  d.reseed(7);
  CHECK(d.seed() == 7);

  auto fixed = options(workers);  // seed = 77 given
  DataLoader e(ds, fixed);
  CHECK_THROWS_WITH(e.reseed(1), Catch::Contains("seed=77"));
}
