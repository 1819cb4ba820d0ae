#pragma once
// Samplers: which sample indices an epoch visits, and how they group into batches.
// PyTorch's set, with reproducible randomness: every random sampler draws from
// Rng(derive_seed(seed, epoch)), where `seed` is the sampler's own if given, else the loader's.
//
//   loader::LoaderOptions o;
//   o.sampler = std::make_shared<loader::WeightedRandomSampler>(weights, 10000);
//   o.batch_size = 64;
//
// Samplers are built in the main process and only read afterwards (const methods): safe to
// share across threads. They run in the main process only.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace ringloader::loader {

/// What a sampler may depend on: the loader's seed and the epoch number.
struct EpochContext {
  uint64_t seed = 0;
  uint64_t epoch = 0;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  /// Indices per epoch.
  virtual size_t size() const = 0;
  /// This epoch's indices, in visiting order.
  virtual std::vector<int64_t> indices(const EpochContext& ctx) const = 0;
  /// Which share of the dataset this sampler gives, out of how many: a saved state names them,
  /// so a resume on another rank or world size is refused. Samplers that shard override both.
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
};

/// 0, 1, ..., n-1.
class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(size_t n) : n_(n) {}
  size_t size() const override { return n_; }
  std::vector<int64_t> indices(const EpochContext& ctx) const override;

 private:
  size_t n_;
};

/// A permutation of 0..n-1 per epoch, or `num_samples` draws with replacement.
class RandomSampler : public Sampler {
 public:
  explicit RandomSampler(size_t n, bool replacement = false, std::optional<size_t> num_samples = {},
                         std::optional<uint64_t> seed = {});
  size_t size() const override { return num_samples_; }
  std::vector<int64_t> indices(const EpochContext& ctx) const override;

 private:
  size_t n_, num_samples_;
  bool replacement_;
  std::optional<uint64_t> seed_;
};

/// A permutation of the given indices per epoch.
class SubsetRandomSampler : public Sampler {
 public:
  explicit SubsetRandomSampler(std::vector<int64_t> indices, std::optional<uint64_t> seed = {});
  size_t size() const override { return indices_.size(); }
  std::vector<int64_t> indices(const EpochContext& ctx) const override;

 private:
  std::vector<int64_t> indices_;
  std::optional<uint64_t> seed_;
};

/// `num_samples` indices drawn with probability proportional to `weights` (with replacement by
/// default; without: each index at most once, num_samples <= number of positive weights).
class WeightedRandomSampler : public Sampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, size_t num_samples, bool replacement = true,
                        std::optional<uint64_t> seed = {});
  size_t size() const override { return num_samples_; }
  std::vector<int64_t> indices(const EpochContext& ctx) const override;

 private:
  std::vector<double> cumulative_;  ///< running sums of the weights
  std::vector<double> weights_;
  size_t num_samples_;
  bool replacement_;
  std::optional<uint64_t> seed_;
};

/// Near-sequential shuffling of data stored in blocks (packed shards: datasets::Shards::
/// shard_sizes()). Each epoch permutes the blocks, then shuffles together the samples of each
/// `window` consecutive blocks of that order: reads stay within `window` shards at a time,
/// every sample comes exactly once, and the order follows from (seed, epoch).
///
///   auto ds = std::make_shared<datasets::Shards>("/data/packed");
///   o.sampler = std::make_shared<loader::BlockShuffleSampler>(ds->shard_sizes(), 4);
///
/// With world_size > 1 each rank takes whole blocks: those at positions rank, rank + world, ...
/// of the epoch's block order (the same order on every rank), so ranks read disjoint shards
/// that together cover the dataset. Ranks whose blocks hold fewer samples repeat their own
/// from the start up to the largest rank's count (drop_last: every rank stops at the
/// smallest's), so every rank runs the same number of steps, as torch's DistributedSampler.
class BlockShuffleSampler : public Sampler {
 public:
  BlockShuffleSampler(std::vector<size_t> block_sizes, size_t window = 4, std::optional<uint64_t> seed = {},
                      int rank = 0, int world_size = 1, bool drop_last = false);
  size_t size() const override { return per_rank_; }
  std::vector<int64_t> indices(const EpochContext& ctx) const override;
  /// This rank's samples of the epoch before padding or dropping (the blocks it was dealt).
  std::vector<int64_t> own_indices(const EpochContext& ctx) const;
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

 private:
  std::vector<size_t> sizes_;
  std::vector<int64_t> starts_;  ///< first index of each block
  size_t window_;
  std::optional<uint64_t> seed_;
  int rank_, world_;
  bool drop_last_;
  size_t per_rank_ = 0;
};

/// An epoch's batches: batch b is indices[offsets[b] .. offsets[b+1]).
struct BatchPlan {
  std::vector<int64_t> indices;
  std::vector<size_t> offsets{0};
  size_t size() const { return offsets.size() - 1; }
  std::span<const int64_t> batch(size_t b) const {
    return {indices.data() + offsets[b], offsets[b + 1] - offsets[b]};
  }
  void add(std::span<const int64_t> b) {
    indices.insert(indices.end(), b.begin(), b.end());
    offsets.push_back(indices.size());
  }
};

/// Groups a sampler's indices into batches of `batch_size` (the last one partial unless
/// `drop_last`). Derive from it and override the three virtuals for a custom batch sampler.
class BatchSampler {
 public:
  BatchSampler(std::shared_ptr<Sampler> sampler, size_t batch_size, bool drop_last);
  virtual ~BatchSampler() = default;
  /// Batches per epoch.
  virtual size_t size() const;
  /// The largest batch this sampler makes: sizes the slots.
  virtual size_t max_batch_size() const { return batch_size_; }
  virtual BatchPlan batches(const EpochContext& ctx) const;

 protected:
  BatchSampler() = default;

 private:
  std::shared_ptr<Sampler> sampler_;
  size_t batch_size_ = 1;
  bool drop_last_ = false;
};

}  // namespace ringloader::loader
