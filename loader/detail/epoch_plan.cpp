#include "loader/detail/epoch_plan.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/error.hpp"
#include "core/fnv.hpp"

namespace ringloader::loader::detail {

EpochPlan::EpochPlan(std::shared_ptr<BatchSampler> sampler, size_t capacity, uint64_t seed, Identity id)
    : sampler_(std::move(sampler)), capacity_(capacity), seed_(seed), id_(std::move(id)) {}

void EpochPlan::begin() {
  epoch_ = next_epoch_;
  next_epoch_ = epoch_ + 1;
  if (!sampler_) return;  // a stream orders itself: only the epoch number
  BatchPlan full = sampler_->batches({seed_, epoch_});
  // Hashed here, from the batches this epoch runs: state() must not run the sampler again (a
  // Python sampler's __iter__ draws from its generator; a second call would change the order).
  plan_hash_ = plan_fingerprint(full);
  done_.assign(full.size(), 0);
  seqs_.clear();
  if (resume_done_ && resume_epoch_ != epoch_) {  // set_epoch moved away from it
    resume_done_.reset();
    resume_plan_.reset();
  }
  if (resume_done_) {
    if (resume_done_->size() != full.size()) {
      throw ConfigError("the saved state has " + std::to_string(resume_done_->size()) + " batches in epoch " +
                        std::to_string(epoch_) + " but this loader makes " + std::to_string(full.size()) +
                        " (batch_size, drop_last or sampler differ)");
    }
    // Checked now, when the resumed epoch's batches exist: a torch DistributedSampler's epoch
    // may be set after load_state_dict().
    if (resume_plan_ && *resume_plan_ != core::hex64(plan_hash_)) {
      const std::string e = std::to_string(epoch_);
      resume_done_.reset();
      resume_plan_.reset();
      throw ConfigError("the saved state's epoch " + e + " is batched or ordered differently from this loader's (same "
                        "seed, same number of batches, other batches: batch_size, shuffle, drop_last or the sampler "
                        "differ, or a sampler of your own gives another order for the same epoch, as torch's "
                        "RandomSampler does; shuffle=True resumes exactly); resume with the loader the state was "
                        "saved from");
    }
    resume_plan_.reset();
    done_ = *resume_done_;
    resume_done_.reset();
    plan_ = BatchPlan{};
    for (size_t b = 0; b < full.size(); ++b) {
      if (done_[b]) continue;
      plan_.add(full.batch(b));
      seqs_.push_back(b);
    }
  } else {
    plan_ = std::move(full);
    for (size_t b = 0; b < plan_.size(); ++b) seqs_.push_back(b);
  }
  const auto n = static_cast<int64_t>(id_.dataset_size);
  for (int64_t i : plan_.indices) {
    if (i < 0 || i >= n) {
      throw ConfigError("the sampler produced index " + std::to_string(i) + " but the dataset has " + std::to_string(n) +
                        " samples");
    }
  }
  for (size_t b = 0; b < plan_.size(); ++b) {
    if (plan_.batch(b).size() > capacity_) {
      throw ConfigError("batch_sampler made a batch of " + std::to_string(plan_.batch(b).size()) +
                        " but its max_batch_size() is " + std::to_string(capacity_));
    }
  }
}

uint64_t EpochPlan::plan_fingerprint(const BatchPlan& full) {
  uint64_t h = core::kFnvOffset;
  const auto bytes = [&h](const void* p, size_t n) { h = core::fnv1a64({static_cast<const char*>(p), n}, h); };
  bytes(full.offsets.data(), full.offsets.size() * sizeof(size_t));
  bytes(full.indices.data(), full.indices.size() * sizeof(int64_t));
  return h;
}

void EpochPlan::mark_undone(uint64_t seq) {
  if (seq < done_.size()) done_[seq] = 0;
}

void EpochPlan::mark_done(uint64_t seq) {
  if (seq < done_.size()) done_[seq] = 1;
}

size_t EpochPlan::batches_per_epoch() const {
  if (!sampler_) throw ConfigError("the number of batches of a stream (iterable) dataset is not known in advance");
  return sampler_->size();
}

std::string EpochPlan::state(bool active) const {
  if (!sampler_) throw ConfigError("state() needs a map-style dataset: a stream dataset keeps its own position");
  nlohmann::json j;
  j["format"] = "ringloader-state/1";
  j["seed"] = seed_;
  j["rank"] = id_.rank;
  j["world_size"] = id_.world_size;
  j["dataset"] = {{"size", id_.dataset_size}, {"fingerprint", id_.fingerprint}};
  j["batches_per_epoch"] = sampler_->size();
  // Batches already returned, as [first, last] ranges of the epoch's batch numbers.
  const auto ranges_of = [](const std::vector<uint8_t>& done) {
    nlohmann::json ranges = nlohmann::json::array();
    for (size_t b = 0; b < done.size();) {
      if (!done[b]) {
        ++b;
        continue;
      }
      size_t e = b;
      while (e + 1 < done.size() && done[e + 1]) ++e;
      ranges.push_back({b, e});
      b = e + 1;
    }
    return ranges;
  };
  if (active) {
    j["epoch"] = epoch_;
    j["done"] = ranges_of(done_);
    j["plan"] = core::hex64(plan_hash_);
  } else {
    // Between epochs: the next one, from where a loaded state left it (a state saved again
    // before the resumed epoch starts must not replay it), else from its beginning.
    const bool resuming = resume_done_ && resume_epoch_ == next_epoch_;
    j["epoch"] = next_epoch_;
    j["done"] = resuming ? ranges_of(*resume_done_) : nlohmann::json::array();
    // Nothing done yet: any order resumes it, so there is no plan to check.
    if (resuming && resume_plan_) j["plan"] = *resume_plan_;
  }
  return j.dump();
}

void EpochPlan::load_state(const std::string& text, std::optional<uint64_t> fixed_seed) {
  if (!sampler_) throw ConfigError("load_state() needs a map-style dataset");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("loader state is not valid JSON: ") + e.what());
  }
  try {
    if (j.at("format") != "ringloader-state/1") throw ConfigError("unknown loader state format " + j.at("format").dump());
    const auto& ds = j.at("dataset");
    const std::string fp = ds.at("fingerprint");
    if (fp != id_.fingerprint || ds.at("size").get<size_t>() != id_.dataset_size) {
      throw ConfigError("the saved state belongs to another dataset (" + std::to_string(ds.at("size").get<size_t>()) +
                        " samples, fingerprint " + fp + "); this one has " + std::to_string(id_.dataset_size) +
                        " samples, fingerprint " + id_.fingerprint);
    }
    const int w = j.at("world_size"), r = j.at("rank");
    if (w != id_.world_size) {
      throw ConfigError("the saved state is from world size " + std::to_string(w) + ", this loader runs with " +
                        std::to_string(id_.world_size) +
                        "; resuming onto a different world size is not supported (each rank's position belongs to "
                        "its shard): finish the epoch on the old world size, or restart the epoch");
    }
    if (r != id_.rank) {
      throw ConfigError("the saved state is rank " + std::to_string(r) + "'s, this loader is rank " + std::to_string(id_.rank));
    }
    const uint64_t seed = j.at("seed");
    if (fixed_seed && *fixed_seed != seed) {
      throw ConfigError("the saved state has seed " + std::to_string(seed) + " but this loader was given seed=" +
                        std::to_string(*fixed_seed) + " (leave seed unset to take the saved one)");
    }
    if (j.at("batches_per_epoch").get<size_t>() != sampler_->size()) {
      throw ConfigError("the saved state has " + j.at("batches_per_epoch").dump() + " batches per epoch, this loader " +
                        std::to_string(sampler_->size()) + " (batch_size, drop_last or sampler differ)");
    }
    const uint64_t epoch = j.at("epoch");
    std::optional<std::string> plan;  // compared when the epoch starts (begin())
    if (j.contains("plan")) plan = j.at("plan").get<std::string>();
    std::vector<uint8_t> done(sampler_->size(), 0);
    for (const auto& range : j.at("done")) {
      const size_t a = range.at(0), b = range.at(1);
      if (a > b || b >= done.size()) throw ConfigError("loader state has a bad batch range " + range.dump());
      for (size_t k = a; k <= b; ++k) done[k] = 1;
    }
    seed_ = seed;
    next_epoch_ = epoch;
    resume_epoch_ = next_epoch_;
    const bool any_done = std::find(done.begin(), done.end(), 1) != done.end();
    if (any_done && !plan) {
      throw ConfigError("loader state has batches done but no \"plan\" (the fingerprint of its epoch's batches): "
                        "without it a resume could skip or repeat samples");
    }
    resume_done_ = std::move(done);
    resume_plan_ = std::move(plan);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("loader state is missing or has a bad field: ") + e.what());
  }
}

}  // namespace ringloader::loader::detail
