#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>

#include "core/error.hpp"
#include "loader/distributed.hpp"

using namespace ringloader;
using namespace ringloader::loader;

namespace {

/// Sets environment variables for one scope, restoring the previous state.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const char* name : kAll) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) ::setenv(k, v, 1);
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  static constexpr const char* kAll[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK",
                                         "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_PROCID",
                                         "SLURM_NTASKS", "SLURM_LOCALID"};
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace

TEST_CASE("DistributedSampler pads by wrap-around like PyTorch and gives disjoint shards", "[distributed]") {
  // n = 10, world = 3: 4 per rank, total 12 = 10 + 2 padded from the start of the list.
  std::multiset<int64_t> all;
  for (int r = 0; r < 3; ++r) {
    DistributedSampler s(10, r, 3, false);
    CHECK(s.size() == 4);
    const auto v = s.indices({0, 0});
    CHECK(v.size() == 4);
    all.insert(v.begin(), v.end());
  }
  CHECK(DistributedSampler(10, 0, 3, false).indices({0, 0}) == std::vector<int64_t>{0, 3, 6, 9});
  CHECK(DistributedSampler(10, 1, 3, false).indices({0, 0}) == std::vector<int64_t>{1, 4, 7, 0});
  CHECK(DistributedSampler(10, 2, 3, false).indices({0, 0}) == std::vector<int64_t>{2, 5, 8, 1});
  CHECK(all.size() == 12);
  for (int64_t i = 0; i < 10; ++i) CHECK(all.count(i) == (i < 2 ? 2u : 1u));
  // drop_last: 3 per rank, the tail (index 9) is cut.
  CHECK(DistributedSampler(10, 0, 3, false, {}, true).indices({0, 0}) == std::vector<int64_t>{0, 3, 6});
  CHECK(DistributedSampler(10, 2, 3, false, {}, true).size() == 3);
  // Fewer samples than ranks: padding repeats the list as often as needed.
  CHECK(DistributedSampler(2, 4, 5, false).indices({0, 0}) == std::vector<int64_t>{0});
}

TEST_CASE("DistributedSampler shuffles alike on every rank and anew each epoch", "[distributed]") {
  std::set<int64_t> e0, e1;
  std::vector<int64_t> first0, first1;
  for (int r = 0; r < 4; ++r) {
    const auto a = DistributedSampler(1000, r, 4, true).indices({7, 0});
    const auto b = DistributedSampler(1000, r, 4, true).indices({7, 1});
    e0.insert(a.begin(), a.end());
    e1.insert(b.begin(), b.end());
    if (r == 0) {
      first0 = a;
      first1 = b;
    }
  }
  CHECK(e0.size() == 1000);  // disjoint shards covering everything
  CHECK(e1.size() == 1000);
  CHECK(first0 != first1);
  CHECK_THROWS_AS(DistributedSampler(10, 3, 3), ConfigError);
}

TEST_CASE("rank and world size come from torchrun, Open MPI or Slurm variables", "[distributed][env]") {
  {
    ScopedEnv env({});
    const auto e = DistributedEnv::detect();
    CHECK(e.rank == 0);
    CHECK(e.world_size == 1);
    CHECK(e.source == "default");
  }
  {
    ScopedEnv env({{"RANK", "2"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}});
    const auto e = DistributedEnv::detect();
    CHECK(e.rank == 2);
    CHECK(e.world_size == 4);
    CHECK(e.source == "torchrun");
  }
  {
    ScopedEnv env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "3"}});
    CHECK(DistributedEnv::detect().source == "openmpi");
    CHECK(DistributedEnv::detect().rank == 1);
  }
  {
    ScopedEnv env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}});
    const auto e = DistributedEnv::detect();
    CHECK(e.source == "slurm");
    CHECK(e.local_rank == 1);
  }
  {
    ScopedEnv env({{"RANK", "1"}});
    CHECK_THROWS_WITH(DistributedEnv::detect(), Catch::Contains("partial torchrun") && Catch::Contains("WORLD_SIZE"));
  }
  {
    ScopedEnv env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
    CHECK_THROWS_WITH(DistributedEnv::detect(), Catch::Contains("inconsistent"));
  }
  {
    ScopedEnv env({{"RANK", "3"}, {"WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH(DistributedEnv::detect(), Catch::Contains("rank 3 is not below world size 2"));
  }
  {
    ScopedEnv env({{"RANK", "x"}, {"WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH(DistributedEnv::detect(), Catch::Contains("RANK='x'"));
  }
  {
    ScopedEnv env({{"RANK", "1"}, {"WORLD_SIZE", "2"}});
    const auto e = DistributedEnv::resolve(0, 3);
    CHECK(e.rank == 0);
    CHECK(e.world_size == 3);
    CHECK(e.source == "explicit");
    CHECK_THROWS_AS(DistributedEnv::resolve(5, std::nullopt), ConfigError);
  }
}
