#include "loader/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <string>

#include "core/error.hpp"
#include "datasets/rng.hpp"

namespace ringloader::loader {
namespace {

datasets::Rng epoch_rng(const std::optional<uint64_t>& own, const EpochContext& ctx, uint64_t salt) {
  return datasets::Rng(datasets::derive_seed(own.value_or(ctx.seed), ctx.epoch, salt));
}

constexpr uint64_t kSaltRandom = 0x52414e44, kSaltSubset = 0x53554253, kSaltWeighted = 0x57454947,
                   kSaltBlock = 0x424c4f43;

}  // namespace

std::vector<int64_t> SequentialSampler::indices(const EpochContext&) const {
  std::vector<int64_t> v(n_);
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

RandomSampler::RandomSampler(size_t n, bool replacement, std::optional<size_t> num_samples, std::optional<uint64_t> seed)
    : n_(n), num_samples_(num_samples.value_or(n)), replacement_(replacement), seed_(seed) {
  if (num_samples && *num_samples == 0) throw ConfigError("RandomSampler: num_samples must be positive");
  if (!replacement && num_samples && *num_samples > n) {
    throw ConfigError("RandomSampler: num_samples=" + std::to_string(*num_samples) + " > dataset size " +
                      std::to_string(n) + " needs replacement=true");
  }
}

std::vector<int64_t> RandomSampler::indices(const EpochContext& ctx) const {
  auto rng = epoch_rng(seed_, ctx, kSaltRandom);
  std::vector<int64_t> v;
  if (replacement_) {
    v.resize(num_samples_);
    for (auto& x : v) x = static_cast<int64_t>(rng.below(n_));
    return v;
  }
  v.resize(n_);
  std::iota(v.begin(), v.end(), int64_t{0});
  rng.shuffle(v.begin(), v.end());
  v.resize(num_samples_);
  return v;
}

SubsetRandomSampler::SubsetRandomSampler(std::vector<int64_t> indices, std::optional<uint64_t> seed)
    : indices_(std::move(indices)), seed_(seed) {
  for (int64_t i : indices_) {
    if (i < 0) throw ConfigError("SubsetRandomSampler: negative index " + std::to_string(i));
  }
}

BlockShuffleSampler::BlockShuffleSampler(std::vector<size_t> block_sizes, size_t window, std::optional<uint64_t> seed,
                                         int rank, int world_size, bool drop_last)
    : sizes_(std::move(block_sizes)), window_(window), seed_(seed), rank_(rank), world_(world_size), drop_last_(drop_last) {
  if (sizes_.empty()) throw ConfigError("BlockShuffleSampler: no blocks");
  if (window_ == 0) throw ConfigError("BlockShuffleSampler: window must be at least 1 block");
  if (world_ < 1 || rank_ < 0 || rank_ >= world_) {
    throw ConfigError("BlockShuffleSampler: rank " + std::to_string(rank_) + " is not in [0, world_size " +
                      std::to_string(world_) + ")");
  }
  if (sizes_.size() < static_cast<size_t>(world_)) {
    throw ConfigError("BlockShuffleSampler: " + std::to_string(sizes_.size()) + " blocks cannot give each of " +
                      std::to_string(world_) + " ranks a whole one: pack with a smaller --shard-size");
  }
  int64_t at = 0;
  for (size_t n : sizes_) {
    starts_.push_back(at);
    at += static_cast<int64_t>(n);
  }
  // Every rank steps the same number of times whatever blocks the epoch deals it: the count
  // is the largest (smallest with drop_last) any rank could be dealt, over all epochs. Blocks
  // go round-robin over a permutation, so a rank gets ceil or floor(blocks / world) of them.
  if (world_ == 1) {
    per_rank_ = static_cast<size_t>(at);
  } else {
    std::vector<size_t> sorted = sizes_;
    std::sort(sorted.begin(), sorted.end());
    const size_t most = (sorted.size() + static_cast<size_t>(world_) - 1) / static_cast<size_t>(world_);
    const size_t least = sorted.size() / static_cast<size_t>(world_);
    size_t n = 0;
    if (drop_last_) {
      for (size_t i = 0; i < least; ++i) n += sorted[i];  // the smallest blocks a rank may get
    } else {
      for (size_t i = 0; i < most; ++i) n += sorted[sorted.size() - 1 - i];  // the largest
    }
    per_rank_ = n;
  }
  if (per_rank_ == 0) throw ConfigError("BlockShuffleSampler: the blocks hold no sample");
}

std::vector<int64_t> BlockShuffleSampler::own_indices(const EpochContext& ctx) const {
  auto rng = epoch_rng(seed_, ctx, kSaltBlock);
  std::vector<size_t> order(sizes_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  rng.shuffle(order.begin(), order.end());
  std::vector<size_t> mine;
  for (size_t p = static_cast<size_t>(rank_); p < order.size(); p += static_cast<size_t>(world_)) mine.push_back(order[p]);
  std::vector<int64_t> out;
  for (size_t w = 0; w < mine.size(); w += window_) {
    const size_t from = out.size();
    for (size_t k = w; k < std::min(mine.size(), w + window_); ++k) {
      for (size_t i = 0; i < sizes_[mine[k]]; ++i) out.push_back(starts_[mine[k]] + static_cast<int64_t>(i));
    }
    rng.shuffle(out.begin() + static_cast<ptrdiff_t>(from), out.end());
  }
  return out;
}

std::vector<int64_t> BlockShuffleSampler::indices(const EpochContext& ctx) const {
  std::vector<int64_t> v = own_indices(ctx);
  if (v.size() >= per_rank_) {
    v.resize(per_rank_);
    return v;
  }
  if (v.empty()) {
    throw ConfigError("BlockShuffleSampler: rank " + std::to_string(rank_) + " was dealt only empty blocks in epoch " +
                      std::to_string(ctx.epoch));
  }
  const size_t own = v.size();
  v.reserve(per_rank_);
  for (size_t i = 0; v.size() < per_rank_; ++i) {
    const int64_t again = v[i % own];
    v.push_back(again);
  }
  return v;
}

std::vector<int64_t> SubsetRandomSampler::indices(const EpochContext& ctx) const {
  auto rng = epoch_rng(seed_, ctx, kSaltSubset);
  std::vector<int64_t> v = indices_;
  rng.shuffle(v.begin(), v.end());
  return v;
}

WeightedRandomSampler::WeightedRandomSampler(std::vector<double> weights, size_t num_samples, bool replacement,
                                             std::optional<uint64_t> seed)
    : weights_(std::move(weights)), num_samples_(num_samples), replacement_(replacement), seed_(seed) {
  if (weights_.empty()) throw ConfigError("WeightedRandomSampler: weights are empty");
  if (num_samples == 0) throw ConfigError("WeightedRandomSampler: num_samples must be positive");
  double sum = 0;
  size_t positive = 0;
  cumulative_.reserve(weights_.size());
  for (size_t i = 0; i < weights_.size(); ++i) {
    const double w = weights_[i];
    if (!(w >= 0) || std::isinf(w)) {
      throw ConfigError("WeightedRandomSampler: weight[" + std::to_string(i) + "] = " + std::to_string(w) +
                        " must be finite and >= 0");
    }
    positive += w > 0;
    sum += w;
    cumulative_.push_back(sum);
  }
  if (sum <= 0) throw ConfigError("WeightedRandomSampler: all weights are zero");
  if (!replacement && num_samples > positive) {
    throw ConfigError("WeightedRandomSampler: num_samples=" + std::to_string(num_samples) + " without replacement but only " +
                      std::to_string(positive) + " weights are positive");
  }
}

std::vector<int64_t> WeightedRandomSampler::indices(const EpochContext& ctx) const {
  auto rng = epoch_rng(seed_, ctx, kSaltWeighted);
  std::vector<int64_t> v;
  v.reserve(num_samples_);
  if (replacement_) {
    const double total = cumulative_.back();
    for (size_t k = 0; k < num_samples_; ++k) {
      const double u = rng.uniform() * total;
      auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
      size_t i = static_cast<size_t>(it - cumulative_.begin());
      if (i >= weights_.size()) i = weights_.size() - 1;
      while (weights_[i] == 0 && i > 0) --i;  // u landed exactly on a boundary
      v.push_back(static_cast<int64_t>(i));
    }
    return v;
  }
  // Without replacement: Efraimidis-Spirakis keys u^(1/w); the num_samples largest win.
  using Key = std::pair<double, int64_t>;
  std::priority_queue<Key, std::vector<Key>, std::greater<Key>> top;
  for (size_t i = 0; i < weights_.size(); ++i) {
    const double u = rng.uniform();
    if (weights_[i] <= 0) continue;
    const double key = std::log(std::max(u, 1e-300)) / weights_[i];
    if (top.size() < num_samples_) top.emplace(key, static_cast<int64_t>(i));
    else if (key > top.top().first) {
      top.pop();
      top.emplace(key, static_cast<int64_t>(i));
    }
  }
  while (!top.empty()) {
    v.push_back(top.top().second);
    top.pop();
  }
  std::reverse(v.begin(), v.end());  // heaviest key first
  return v;
}

BatchSampler::BatchSampler(std::shared_ptr<Sampler> sampler, size_t batch_size, bool drop_last)
    : sampler_(std::move(sampler)), batch_size_(batch_size), drop_last_(drop_last) {
  if (!sampler_) throw ConfigError("BatchSampler: sampler is null");
  if (batch_size == 0) throw ConfigError("BatchSampler: batch_size must be positive, got 0");
}

size_t BatchSampler::size() const {
  const size_t n = sampler_->size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

BatchPlan BatchSampler::batches(const EpochContext& ctx) const {
  BatchPlan plan;
  std::vector<int64_t> idx = sampler_->indices(ctx);
  plan.indices.reserve(idx.size());
  for (size_t start = 0; start < idx.size(); start += batch_size_) {
    const size_t n = std::min(batch_size_, idx.size() - start);
    if (n < batch_size_ && drop_last_) break;
    plan.add(std::span<const int64_t>(idx.data() + start, n));
  }
  return plan;
}

}  // namespace ringloader::loader
