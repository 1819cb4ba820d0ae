#pragma once
// LoaderOptions: PyTorch DataLoader's keyword arguments, as a struct.
//
//   loader::LoaderOptions o;
//   o.batch_size = 256; o.shuffle = true; o.num_workers = 4; o.seed = 42;
//   loader::DataLoader loader(dataset, o);
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "datasets/dataset.hpp"
#include "loader/sampler.hpp"

namespace ringloader::loader {

/// What happens when dataset code throws for a sample.
enum class OnError : uint8_t {
  kRaise = 0,  ///< the training loop gets the exception at that batch's place
  kSkip = 1,   ///< the sample is dropped (the batch is delivered smaller), counted and reported
};

/// How worker processes are started.
enum class StartMethod : uint8_t {
  kFork = 0,        ///< fork the training process itself: the dataset object reaches workers as is
  kForkServer = 1,  ///< fork from the server started by ringloader::init() (needs a DatasetRecipe)
};

struct LoaderOptions {
  /// Samples per batch (ignored when batch_sampler is set).
  size_t batch_size = 1;
  /// Random order each epoch (RandomSampler seeded from seed and epoch). Not with `sampler`.
  bool shuffle = false;
  /// Drop the last partial batch.
  bool drop_last = false;
  /// Custom index order; exclusive with shuffle.
  std::shared_ptr<Sampler> sampler;
  /// Custom batches; exclusive with batch_size != 1, shuffle, sampler, drop_last.
  std::shared_ptr<BatchSampler> batch_sampler;
  /// Worker processes; 0 runs the dataset in the calling process (the debuggable path).
  size_t num_workers = 0;
  /// Slots per worker: the ring has num_workers x prefetch_factor slots (prefetch_factor if 0 workers).
  size_t prefetch_factor = 2;
  /// Keep the workers alive across epochs (same pids) instead of forking them per epoch.
  bool persistent_workers = false;
  /// A batch not filled within this gets its worker killed and is retried; 0 = no limit.
  std::chrono::milliseconds timeout{0};
  /// Runs in each worker after fork (and once in-process), after Dataset::on_worker_start.
  std::function<void(const datasets::WorkerInfo&)> worker_init_fn;
  /// Seed of every random choice; unset = drawn once per loader from std::random_device.
  std::optional<uint64_t> seed;
  /// true: batches in sampler order; false: as they are filled.
  bool in_order = true;
  /// Dataset exceptions: raise at the batch's place, or skip the sample and report it.
  OnError on_error = OnError::kRaise;
  /// A batch that takes down (or hangs) workers this many times is reported and given up.
  size_t max_retries = 3;
  /// Where the ring's shared memory lives; "" = POSIX shared memory (/dev/shm).
  std::string shm_dir;
  /// kForkServer: workers come from ringloader::init()'s server, safe in a threaded program.
  StartMethod start_method = StartMethod::kFork;
};

}  // namespace ringloader::loader
