#pragma once
// DataLoader: batches from a dataset, decoded by forked worker processes straight into a
// shared-memory ring of slots and handed to the training loop as zero-copy Batches.
//
//   auto ds = std::make_shared<MyDataset>();
//   loader::LoaderOptions o;
//   o.batch_size = 64; o.shuffle = true; o.num_workers = 4; o.seed = 1;
//   loader::DataLoader loader(ds, o);
//   for (int epoch = 0; epoch < 3; ++epoch)
//     for (auto& batch : loader) train(batch.field("image"), batch.field("label"));
//
// Each range-for (begin()) is one epoch; breaking out early and iterating again is fine
// (the unfinished epoch is abandoned). Built and used by one thread of the main process;
// Batches may be released on other threads. Destroying the loader stops its workers.
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "loader/batch.hpp"
#include "loader/options.hpp"

namespace ringloader::loader {

class DataLoader {
 public:
  DataLoader(std::shared_ptr<datasets::Dataset> dataset, LoaderOptions options = {});
  DataLoader(std::shared_ptr<datasets::IterableDataset> dataset, LoaderOptions options = {});
  /// The dataset built from a registered factory (required by StartMethod::kForkServer).
  DataLoader(const DatasetRecipe& recipe, LoaderOptions options = {});
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;
  ~DataLoader();

  /// One epoch's batches. ++ releases the previous Batch unless it was moved out.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    Batch& operator*() { return *current_; }
    Batch* operator->() { return &*current_; }
    Iterator& operator++();
    bool operator==(std::default_sentinel_t) const { return !current_.has_value(); }

   private:
    friend class DataLoader;
    explicit Iterator(DataLoader* l);
    DataLoader* loader_;
    std::optional<Batch> current_;
  };

  /// Starts an epoch (abandoning an unfinished one) and returns its first batch.
  Iterator begin();
  std::default_sentinel_t end() { return {}; }

  /// Starts an epoch now (abandoning an unfinished one): begin() is start_epoch() + next().
  void start_epoch();
  /// Explicit iteration: the next batch of the current epoch (starting one if none is
  /// running); nothing when the epoch is over (the next call starts a new one).
  std::optional<Batch> next();

  /// For a binding whose hand-out can be cut short after next() returned (Python: a Ctrl-C
  /// while the batch object is built): uncount(b) takes b out of state() and stats() while the
  /// binding keeps it to hand out on the next call, where recount(b) counts it again. So a
  /// checkpoint taken after the interruption resumes with b instead of skipping it.
  void uncount(const Batch& b);
  void recount(const Batch& b);

  /// Batches per epoch (PyTorch's len()). Throws ConfigError for stream datasets.
  size_t size() const;
  /// The epoch number the next begin() uses; by default epochs count up from 0.
  void set_epoch(uint64_t epoch);
  /// The epoch being iterated (or the last one).
  uint64_t epoch() const;
  /// The seed every random choice derives from.
  uint64_t seed() const;
  /// For a loader built without `seed`: the seed of the epochs started from now on (an
  /// unfinished epoch is abandoned). Python draws one at each iter() from torch's generator, as
  /// torch's DataLoader draws its base seed. ConfigError when `seed` was given, or while
  /// resuming() (a loaded state's epoch runs with its saved seed).
  ///
  ///   if (!loader.resuming()) loader.reseed(draw());  loader.start_epoch();
  void reseed(uint64_t seed);
  /// load_state() was called and the epoch it resumes has not started yet.
  bool resuming() const;
  /// Slots in the ring (the most batches the training loop can hold at once).
  size_t num_slots() const;
  /// Batches handed out and not yet released (their slots are the loop's).
  size_t held_batches() const;
  /// Bytes of shared memory the ring uses.
  size_t ring_bytes() const;
  /// The shared memory every slot lives in: each Batch's tensors point inside it. Pin it once
  /// (cudaHostRegister) for asynchronous copies to a GPU.
  std::span<std::byte> shared_memory() const;
  /// Pids of the live workers (empty between epochs without persistent_workers).
  std::vector<int> worker_pids() const;
  /// The loader's position at this batch boundary, as a small JSON text: seed, epoch, the
  /// batches of this epoch already returned, rank/world size and the dataset's fingerprint.
  /// A loader built the same way and given it with load_state() continues with exactly the
  /// batches that were still to come. Map-style datasets only.
  std::string state() const;
  /// Continue from a state() of a loader over the same dataset and world size: the next
  /// begin()/next() resumes that epoch. ConfigError names what differs (dataset fingerprint,
  /// world size, rank, seed, batches per epoch).
  void load_state(const std::string& json);
  /// Stops the workers now (within the shutdown bound) and ends the loader: Batches still held
  /// stay valid; any other call afterwards throws ConfigError saying it was closed. Idempotent;
  /// the destructor does the same.
  void close() noexcept;
  /// Makes a next() that waits (or the next call to it) throw ringloader::Interrupted soon,
  /// leaving the loader usable. Async-signal-safe: meant for a SIGINT/SIGTERM handler.
  void interrupt() noexcept;
  /// Samples skipped under on_error=skip, over the loader's life.
  const std::vector<SkippedSample>& skipped() const;
  LoaderStats stats() const;

 private:
  std::shared_ptr<detail::LoaderCore> core_;  ///< null once closed (or moved from)
  detail::LoaderCore& core() const;           ///< *core_, or ConfigError once closed
};

/// Sets the library's log level ("trace", "debug", "info", "warn", "error", "off").
/// Default: warn, or RINGLOADER_LOG_LEVEL from the environment.
void set_log_level(const std::string& level);

}  // namespace ringloader::loader
