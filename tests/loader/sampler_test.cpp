#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <numeric>

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
