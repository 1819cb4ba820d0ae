#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "core/error.hpp"
#include "loader/sampler.hpp"

using namespace ringloader;
using namespace ringloader::loader;

TEST_CASE("SequentialSampler and BatchSampler with and without drop_last", "[sampler]") {
  auto seq = std::make_shared<SequentialSampler>(10);
  BatchSampler keep(seq, 4, false), drop(seq, 4, true);
  CHECK(keep.size() == 3);
  CHECK(drop.size() == 2);
  const auto p = keep.batches({0, 0});
  REQUIRE(p.size() == 3);
  CHECK(std::vector<int64_t>(p.batch(2).begin(), p.batch(2).end()) == std::vector<int64_t>{8, 9});
  CHECK(drop.batches({0, 0}).size() == 2);
  CHECK_THROWS_AS(BatchSampler(seq, 0, false), ConfigError);
}

TEST_CASE("RandomSampler: a permutation - same seed same order - new epoch new order", "[sampler]") {
  RandomSampler r(1000);
  const auto a = r.indices({1, 0}), b = r.indices({1, 0}), c = r.indices({1, 1}), d = r.indices({2, 0});
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != d);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) CHECK(sorted[static_cast<size_t>(i)] == i);
  RandomSampler own(1000, false, {}, 77);
  CHECK(own.indices({1, 0}) == own.indices({2, 0}));  // its own seed wins over the loader's
  RandomSampler rep(5, true, 50);
  const auto v = rep.indices({3, 0});
  CHECK(v.size() == 50);
  CHECK(std::all_of(v.begin(), v.end(), [](int64_t i) { return i >= 0 && i < 5; }));
  CHECK_THROWS_AS(RandomSampler(5, false, 6), ConfigError);
}

TEST_CASE("SubsetRandomSampler permutes exactly its subset", "[sampler]") {
  SubsetRandomSampler s({3, 9, 27, 81});
  auto v = s.indices({5, 2});
  std::sort(v.begin(), v.end());
  CHECK(v == std::vector<int64_t>{3, 9, 27, 81});
}

TEST_CASE("WeightedRandomSampler follows the weights", "[sampler]") {
  WeightedRandomSampler w({0.0, 1.0, 3.0}, 40000);
  std::map<int64_t, int> hist;
  for (int64_t i : w.indices({1, 0})) ++hist[i];
  CHECK(hist[0] == 0);
  CHECK(hist[2] / static_cast<double>(hist[1]) == Approx(3.0).epsilon(0.1));
  WeightedRandomSampler nr({1, 1, 1, 0, 5}, 4, false);
  auto v = nr.indices({1, 0});
  std::sort(v.begin(), v.end());
  CHECK(v == std::vector<int64_t>{0, 1, 2, 4});
  CHECK_THROWS_AS(WeightedRandomSampler({1, 0}, 2, false), ConfigError);
  CHECK_THROWS_AS(WeightedRandomSampler({1, -1}, 2), ConfigError);
}

namespace {

/// Block of each index for blocks of `sizes` laid end to end.
std::vector<size_t> block_of(const std::vector<size_t>& sizes) {
  std::vector<size_t> b;
  for (size_t k = 0; k < sizes.size(); ++k) b.insert(b.end(), sizes[k], k);
  return b;
}

/// Checks the reading pattern BlockShuffleSampler promises for one rank's own indices: whole
/// blocks only, each index once, and the sequence splits into consecutive windows that each hold
/// every sample of `window` blocks (the last one fewer) and nothing else - so at most `window`
/// blocks are ever being read at once. Returns the blocks in the order they were started.
std::vector<size_t> check_windows(const std::vector<int64_t>& v, const std::vector<size_t>& sizes, size_t window) {
  const std::vector<size_t> block = block_of(sizes);
  std::map<size_t, size_t> left;  // blocks of the current window -> samples not yet seen
  std::vector<size_t> started;
  std::vector<bool> seen(block.size(), false);
  size_t in_window = 0;  // blocks started in the current window
  for (const int64_t i : v) {
    REQUIRE(i >= 0);
    REQUIRE(static_cast<size_t>(i) < block.size());
    CHECK_FALSE(seen[static_cast<size_t>(i)]);
    seen[static_cast<size_t>(i)] = true;
    const size_t b = block[static_cast<size_t>(i)];
    if (left.count(b) == 0) {
      CHECK(std::find(started.begin(), started.end(), b) == started.end());  // a block is read once
      REQUIRE(in_window < window);  // a block past the window before the window was done
      left[b] = sizes[b];
      started.push_back(b);
      ++in_window;
    }
    REQUIRE(left[b] > 0);
    --left[b];
    // The window closes once its `window` blocks are all read.
    if (in_window == window && std::all_of(left.begin(), left.end(), [](const auto& kv) { return kv.second == 0; })) {
      left.clear();
      in_window = 0;
    }
  }
  for (const auto& [b, n] : left) CHECK(n == 0);  // the last window complete too
  // Empty blocks are never "started"; every non-empty block taken was taken whole.
  for (const size_t b : started) {
    size_t n = 0;
    for (const int64_t i : v) n += block[static_cast<size_t>(i)] == b ? 1 : 0;
    CHECK(n == sizes[b]);
  }
  return started;
}

}  // namespace

TEST_CASE("BlockShuffleSampler: every sample once per epoch, shards read window by window", "[sampler][block]") {
  const std::vector<std::vector<size_t>> layouts = {
      {50, 50, 50, 50, 50, 50, 50, 50},          // packed shards of one size
      {37, 5, 64, 1, 20, 20, 8, 33, 12, 40, 3},  // uneven, the last shard short
      {100},                                     // one shard
  };
  for (const auto& sizes : layouts) {
    const size_t total = std::accumulate(sizes.begin(), sizes.end(), size_t{0});
    for (const size_t window : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{100}}) {
      CAPTURE(sizes.size(), window);
      BlockShuffleSampler s(sizes, window);
      CHECK(s.size() == total);
      std::set<std::vector<int64_t>> epochs;
      std::set<std::vector<size_t>> block_orders;
      for (const uint64_t seed : {uint64_t{1}, uint64_t{2}}) {
        for (uint64_t epoch = 0; epoch < 5; ++epoch) {
          CAPTURE(seed, epoch);
          const auto v = s.indices({seed, epoch});
          REQUIRE(v.size() == total);
          CHECK(v == s.indices({seed, epoch}));  // the same seed and epoch: the same order
          CHECK(v == s.own_indices({seed, epoch}));  // one rank: nothing padded or dropped
          auto sorted = v;
          std::sort(sorted.begin(), sorted.end());
          for (size_t i = 0; i < total; ++i) REQUIRE(sorted[i] == static_cast<int64_t>(i));  // each once
          const auto order = check_windows(v, sizes, window);
          CHECK(order.size() == sizes.size());
          epochs.insert(v);
          block_orders.insert(order);
          if (window == 1) {  // a block's samples are shuffled too, not read in file order
            CHECK_FALSE(std::is_sorted(v.begin(), v.end()));
          }
        }
      }
      CHECK(epochs.size() == 10);  // every (seed, epoch) its own order
      if (sizes.size() > 1) CHECK(block_orders.size() > 5);  // the block order changes too
    }
  }
  // The sampler's own seed wins over the loader's.
  BlockShuffleSampler own({10, 10, 10}, 2, 77);
  CHECK(own.indices({1, 3}) == own.indices({2, 3}));
  CHECK(own.indices({1, 3}) != own.indices({1, 4}));
}

TEST_CASE("BlockShuffleSampler across ranks: disjoint whole shards covering the dataset, equal lengths",
          "[sampler][block]") {
  const std::vector<std::vector<size_t>> layouts = {
      {50, 50, 50, 50, 50, 50, 50, 50, 50},
      {37, 5, 64, 1, 20, 20, 8, 33, 12, 40, 3},
      {10, 10, 10, 10, 1},
  };
  for (const auto& sizes : layouts) {
    const size_t total = std::accumulate(sizes.begin(), sizes.end(), size_t{0});
    const std::vector<size_t> block = block_of(sizes);
    for (int world = 1; world <= 4; ++world) {
      for (const bool drop_last : {false, true}) {
        for (const size_t window : {size_t{1}, size_t{3}}) {
          std::vector<BlockShuffleSampler> ranks;
          for (int r = 0; r < world; ++r) ranks.emplace_back(sizes, window, std::nullopt, r, world, drop_last);
          const size_t per_rank = ranks[0].size();
          for (uint64_t epoch = 0; epoch < 6; ++epoch) {
            CAPTURE(sizes.size(), world, drop_last, window, epoch);
            std::vector<int> count(total, 0);
            std::vector<int> owner(sizes.size(), -1);
            for (int r = 0; r < world; ++r) {
              CAPTURE(r);
              const auto& s = ranks[static_cast<size_t>(r)];
              CHECK(s.size() == per_rank);  // every rank runs the same number of steps
              const auto own = s.own_indices({5, epoch});
              check_windows(own, sizes, window);  // whole blocks, read window by window
              for (const int64_t i : own) {
                ++count[static_cast<size_t>(i)];
                const size_t b = block[static_cast<size_t>(i)];
                CHECK((owner[b] == -1 || owner[b] == r));  // a block belongs to one rank
                owner[b] = r;
              }
              // Blocks are dealt round-robin: floor or ceil(blocks / world) of them.
              std::set<size_t> mine;
              for (const int64_t i : own) mine.insert(block[static_cast<size_t>(i)]);
              CHECK(mine.size() >= sizes.size() / static_cast<size_t>(world));
              CHECK(mine.size() <= (sizes.size() + static_cast<size_t>(world) - 1) / static_cast<size_t>(world));
              const auto v = s.indices({5, epoch});
              REQUIRE(v.size() == per_rank);
              if (drop_last) {
                CHECK(per_rank <= own.size());  // stops at the smallest rank's count
                CHECK(std::equal(v.begin(), v.end(), own.begin()));
              } else {
                CHECK(per_rank >= own.size());  // pads with its own samples from the start
                for (size_t k = 0; k < v.size(); ++k) CHECK(v[k] == own[k % own.size()]);
              }
            }
            for (size_t i = 0; i < total; ++i) CHECK(count[i] == 1);  // together: everything once
          }
          if (world == 1) CHECK(per_rank == total);
        }
      }
    }
  }
  // Equal blocks that divide evenly: no padding, nothing dropped.
  for (const bool drop_last : {false, true}) {
    BlockShuffleSampler r0({8, 8, 8, 8}, 2, std::nullopt, 0, 2, drop_last);
    CHECK(r0.size() == 16);
  }
  // Uneven: the padded count is the largest a rank can be dealt, the dropped one the smallest.
  CHECK(BlockShuffleSampler({1, 2, 3, 10, 20}, 1, std::nullopt, 1, 2, false).size() == 30 + 3);
  CHECK(BlockShuffleSampler({1, 2, 3, 10, 20}, 1, std::nullopt, 1, 2, true).size() == 1 + 2);
}

TEST_CASE("BlockShuffleSampler refuses what it cannot do (no shard, fewer shards than ranks)", "[sampler][block]") {
  CHECK_THROWS_AS(BlockShuffleSampler({}, 4), ConfigError);
  CHECK_THROWS_AS(BlockShuffleSampler({0, 0}, 4), ConfigError);
  CHECK_THROWS_WITH(BlockShuffleSampler({5, 5}, 0), Catch::Contains("window"));
  CHECK_THROWS_WITH(BlockShuffleSampler({5, 5}, 1, std::nullopt, 2, 2), Catch::Contains("rank 2"));
  CHECK_THROWS_AS(BlockShuffleSampler({5, 5}, 1, std::nullopt, -1, 2), ConfigError);
  CHECK_THROWS_AS(BlockShuffleSampler({5, 5}, 1, std::nullopt, 0, 0), ConfigError);
  CHECK_THROWS_WITH(BlockShuffleSampler({5, 5}, 1, std::nullopt, 0, 3), Catch::Contains("--shard-size"));
}
