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
  /// Slots per worker: the ring has num_workers x prefetch_factor slots (prefetch_factor if 0
  /// workers), plus extra_slots.
  size_t prefetch_factor = 2;
  /// Slots on top of those for batches the training loop keeps while the next is handed out
  /// (the Python package uses 1, and hands copies out once the loop holds more than the ring can
  /// spare: held_batches()).
  size_t extra_slots = 0;
  /// Keep the workers alive across epochs (same pids) instead of forking them per epoch.
  bool persistent_workers = false;
  /// Bounds every wait of next() (PyTorch's `timeout`; 0 = no bound). Past it next() raises a
  /// TimeoutError saying what it waited for, and nothing is lost: call next() again to go on.
  /// Also the watchdog's limit: a worker that has held a batch (or been starting up) this long
  /// is killed, and the batch retried; a batch that hangs `max_retries` workers is given up.
  std::chrono::milliseconds timeout{0};
  /// Runs in each worker after fork (and once in-process), after Dataset::on_worker_start.
  std::function<void(const datasets::WorkerInfo&)> worker_init_fn;
  /// Seed of every random choice; unset = default_seed, else drawn once per loader from
  /// std::random_device. A saved state's seed must equal this one when it is given.
  std::optional<uint64_t> seed;
  /// The seed when `seed` is unset, drawn by the caller. Unlike `seed`, a saved state's seed
  /// replaces it, and DataLoader::reseed() may change it between epochs (Python does at each
  /// iter(), drawing from torch's generator, so torch.manual_seed reproduces a run).
  std::optional<uint64_t> default_seed;
  /// true: batches in sampler order; false: as they are filled.
  bool in_order = true;
  /// Dataset exceptions: raise at the batch's place, or skip the sample and report it.
  OnError on_error = OnError::kRaise;
  /// A sample that is being filled each time a worker dies (or hangs), this many times, is
  /// blamed: its batch is given up (BatchError / TimeoutError at its place) or, under kSkip,
  /// the sample is dropped and reported. Deaths spread over different samples (external kills,
  /// the OOM killer) are not blamed on any: the batch is retried.
  size_t max_retries = 3;
  /// Where the ring's shared memory lives; "" = POSIX shared memory (/dev/shm).
  std::string shm_dir;
  /// kForkServer: workers come from ringloader::init()'s server, safe in a threaded program.
  StartMethod start_method = StartMethod::kFork;
  /// Called at least every 100 ms while next() waits, and at once when a signal interrupts the
  /// wait. Throw from it to abandon the wait: the exception leaves next() as it is, and the
  /// loader stays usable. (The Python binding raises KeyboardInterrupt this way.)
  std::function<void()> interrupt_check;
};

/// A dataset named by a factory registered with ringloader::register_dataset (loader/init.hpp)
/// and its argument string: what the fork-server start method sends to its spawner.
struct DatasetRecipe {
  std::string factory;
  std::string args;
};

struct LoaderStats {
  uint64_t batches = 0;          ///< delivered, over the loader's life
  uint64_t samples = 0;          ///< delivered
  uint64_t worker_restarts = 0;  ///< workers that died or hung and were replaced
  uint64_t worker_deaths = 0;    ///< workers that died (or were killed by the watchdog), replaced or not
  uint64_t timeouts = 0;         ///< TimeoutErrors raised by next() for a wait past `timeout`
  uint64_t epochs = 0;           ///< epochs started
  uint64_t threaded_forks = 0;   ///< workers forked while this process ran other threads
  uint64_t worker_wakeups = 0;   ///< sleeping workers woken for new tasks (each a system call in next())
};

}  // namespace ringloader::loader
