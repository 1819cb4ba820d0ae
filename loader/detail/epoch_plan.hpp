#pragma once
// EpochPlan: which batches an epoch has, which of them are still to come, and the loader's
// resumable position (state() / load_state()). Main process only; one thread.
//
//   EpochPlan plan(sampler, capacity, seed, {.dataset_size = n, .fingerprint = fp, .rank = r, .world_size = w});
//   plan.begin();                         // the next epoch (or the one a loaded state names)
//   for (size_t k = 0; k < plan.size(); ++k) queue(plan.batch(k), plan.seq(k));
//   plan.mark_done(seq);                  // as each batch is delivered (or raised)
//   std::string saved = plan.state(active);
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loader/sampler.hpp"

namespace ringloader::loader::detail {

class EpochPlan {
 public:
  struct Identity {
    size_t dataset_size = 0;
    std::string fingerprint;  ///< of the dataset (size, schema, its own fingerprint)
    int rank = 0;
    int world_size = 1;
  };

  /// `sampler` null: a stream dataset, which orders itself (only the epoch number is kept).
  EpochPlan(std::shared_ptr<BatchSampler> sampler, size_t capacity, uint64_t seed, Identity id);

  /// Starts the next epoch: builds its batches, leaving out those a loaded state marked done.
  /// ConfigError if the sampler makes an index outside the dataset or a batch over capacity.
  void begin();
  /// Batches left to queue in this epoch, their indices and their epoch-wide numbers.
  size_t size() const { return plan_.size(); }
  std::span<const int64_t> batch(size_t k) const { return plan_.batch(k); }
  uint64_t seq(size_t k) const { return seqs_[k]; }
  /// Batch `seq` of this epoch was delivered (or raised at its place).
  void mark_done(uint64_t seq);
  /// Batch `seq` went back to the caller's hands undelivered (see DataLoader::uncount).
  void mark_undone(uint64_t seq);

  uint64_t epoch() const { return epoch_; }
  uint64_t seed() const { return seed_; }
  /// The seed of the epochs begun from now on (DataLoader::reseed).
  void reseed(uint64_t seed) { seed_ = seed; }
  /// A loaded state waits for the next begin().
  bool resuming() const { return resume_done_.has_value(); }
  /// The epoch the next begin() starts.
  void set_next_epoch(uint64_t e) { next_epoch_ = e; }
  /// ConfigError for a stream dataset (no sampler).
  size_t batches_per_epoch() const;

  /// The position as JSON: `active` = inside an epoch (its done batches are saved), else the
  /// next epoch: from its start, or where a loaded state left it. The epoch's batch plan is
  /// fingerprinted ("plan"), so a loader that batches or orders differently cannot take it.
  std::string state(bool active) const;
  /// Takes a state(): the next begin() resumes it. `fixed_seed` is the loader's seed option,
  /// which must agree. ConfigError naming what differs: batches per epoch here; batch sizes
  /// and order when begin() has the epoch's batches (the sampler runs once per epoch, there).
  void load_state(const std::string& json, std::optional<uint64_t> fixed_seed);

 private:
  std::shared_ptr<BatchSampler> sampler_;
  size_t capacity_;
  uint64_t seed_;
  Identity id_;
  uint64_t epoch_ = 0;
  uint64_t next_epoch_ = 0;
  BatchPlan plan_;              ///< this epoch's batches still to queue
  std::vector<uint64_t> seqs_;  ///< plan_ batch k is batch seqs_[k] of the full epoch
  std::vector<uint8_t> done_;   ///< by epoch-wide seq: delivered (or raised) this epoch
  std::optional<std::vector<uint8_t>> resume_done_;  ///< from load_state, for epoch resume_epoch_
  std::optional<std::string> resume_plan_;           ///< its "plan", checked by begin()
  uint64_t plan_hash_ = 0;                           ///< plan_fingerprint of this epoch's full plan
  uint64_t resume_epoch_ = 0;
  /// FNV-1a over every batch's indices and boundaries: equal plans, equal fingerprints.
  static uint64_t plan_fingerprint(const BatchPlan& full);
};

}  // namespace ringloader::loader::detail
