#pragma once
// Distributed training: one loader per rank, each reading its own shard.
//
//   auto dist = loader::DistributedEnv::detect();          // torchrun, Open MPI or Slurm
//   loader::LoaderOptions o;
//   o.sampler = std::make_shared<loader::DistributedSampler>(dataset->size(), dist.rank, dist.world_size);
//   loader::DataLoader loader(dataset, o);                  // set_epoch() reshuffles every rank alike
//
// DistributedSampler follows torch.utils.data.DistributedSampler: every rank gets
// ceil(n / world) indices; without drop_last the shuffled list is padded by wrapping around
// to a multiple of world_size, with drop_last its tail is cut; rank r takes positions
// r, r + world, r + 2 world, ... The shuffle is the same permutation on every rank (seeded from
// seed and epoch) but is ringloader's own Rng, not torch.randperm.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "loader/sampler.hpp"

namespace ringloader::loader {

struct DistributedEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string source = "default";  ///< "torchrun", "openmpi", "slurm", "explicit" or "default"

  /// Rank and world size from the environment: torchrun (RANK, WORLD_SIZE, LOCAL_RANK), Open MPI
  /// (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK), Slurm
  /// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), in that order; rank 0 of 1 when none is set.
  /// A partial set (RANK without WORLD_SIZE), a non-number, rank >= world size, or two
  /// launchers that disagree is a ConfigError naming the variables.
  static DistributedEnv detect();
  /// `rank` / `world_size` given explicitly win over the environment (each may be absent).
  static DistributedEnv resolve(std::optional<int> rank, std::optional<int> world_size);
};

class DistributedSampler : public Sampler {
 public:
  DistributedSampler(size_t n, int rank, int world_size, bool shuffle = true, std::optional<uint64_t> seed = {},
                     bool drop_last = false);
  size_t size() const override { return num_samples_; }
  std::vector<int64_t> indices(const EpochContext& ctx) const override;
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

 private:
  size_t n_;
  int rank_, world_;
  bool shuffle_, drop_last_;
  std::optional<uint64_t> seed_;
  size_t num_samples_, total_size_;
};

}  // namespace ringloader::loader
