#include "loader/distributed.hpp"

#include <cstdlib>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "datasets/rng.hpp"

namespace ringloader::loader {
namespace {

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 24) {
    throw ConfigError(std::string("environment variable ") + name + "='" + v + "' is not a non-negative integer");
  }
  return static_cast<int>(x);
}

struct Launcher {
  const char* name;
  const char* rank_var;
  const char* size_var;
  const char* local_var;
};

constexpr Launcher kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
};

void check(const DistributedEnv& e, const std::string& where) {
  if (e.world_size < 1) throw ConfigError(where + ": world size " + std::to_string(e.world_size) + " must be at least 1");
  if (e.rank >= e.world_size) {
    throw ConfigError(where + ": rank " + std::to_string(e.rank) + " is not below world size " + std::to_string(e.world_size));
  }
}

}  // namespace

DistributedEnv DistributedEnv::detect() {
  std::optional<DistributedEnv> found;
  for (const Launcher& l : kLaunchers) {
    const auto r = env_int(l.rank_var), w = env_int(l.size_var);
    if (!r && !w) continue;
    if (!r || !w) {
      throw ConfigError(std::string("partial ") + l.name + " environment: " + (r ? l.rank_var : l.size_var) + " is set but " +
                        (r ? l.size_var : l.rank_var) + " is not");
    }
    DistributedEnv e;
    e.rank = *r;
    e.world_size = *w;
    e.local_rank = env_int(l.local_var).value_or(0);
    e.source = l.name;
    check(e, std::string(l.name) + " environment (" + l.rank_var + ", " + l.size_var + ")");
    if (found && (found->rank != e.rank || found->world_size != e.world_size)) {
      throw ConfigError("inconsistent launcher environment: " + found->source + " says rank " + std::to_string(found->rank) +
                        " of " + std::to_string(found->world_size) + ", " + l.name + " says rank " + std::to_string(e.rank) +
                        " of " + std::to_string(e.world_size));
    }
    if (!found) found = e;
  }
  return found.value_or(DistributedEnv{});
}

DistributedEnv DistributedEnv::resolve(std::optional<int> rank, std::optional<int> world_size) {
  if (rank && world_size) {
    DistributedEnv e{*rank, *world_size, 0, "explicit"};
    check(e, "--rank/--world-size");
    return e;
  }
  DistributedEnv e = detect();
  if (rank) e.rank = *rank;
  if (world_size) e.world_size = *world_size;
  if (rank || world_size) e.source = "explicit";
  check(e, "rank/world size");
  return e;
}

DistributedSampler::DistributedSampler(size_t n, int rank, int world_size, bool shuffle, std::optional<uint64_t> seed,
                                       bool drop_last)
    : n_(n), rank_(rank), world_(world_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed) {
  if (world_size < 1) throw ConfigError("DistributedSampler: world_size must be at least 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size) {
    throw ConfigError("DistributedSampler: rank " + std::to_string(rank) + " is not in [0, " + std::to_string(world_size) + ")");
  }
  if (n == 0) throw ConfigError("DistributedSampler: the dataset is empty");
  const size_t w = static_cast<size_t>(world_size);
  if (drop_last && n % w != 0) num_samples_ = (n - w + w - 1) / w;  // ceil((n - w) / w), as PyTorch
  else num_samples_ = (n + w - 1) / w;
  total_size_ = num_samples_ * w;
}

std::vector<int64_t> DistributedSampler::indices(const EpochContext& ctx) const {
  std::vector<int64_t> all(n_);
  std::iota(all.begin(), all.end(), int64_t{0});
  if (shuffle_) datasets::Rng(datasets::derive_seed(seed_.value_or(ctx.seed), ctx.epoch, 0x44495354)).shuffle(all.begin(), all.end());
  if (!drop_last_) {
    for (size_t i = 0; all.size() < total_size_; ++i) all.push_back(all[i % n_]);  // wrap around
  } else {
    all.resize(total_size_);
  }
  std::vector<int64_t> mine;
  mine.reserve(num_samples_);
  for (size_t i = static_cast<size_t>(rank_); i < total_size_; i += static_cast<size_t>(world_)) mine.push_back(all[i]);
  return mine;
}

}  // namespace ringloader::loader
