#pragma once
// Dataset and IterableDataset: what the loader asks samples from.
//
//   class Squares : public datasets::Dataset {
//    public:
//     size_t size() const override { return 1000; }
//     Schema schema() const override { return {{{"x", DType::kInt64, {}}}}; }
//     void get(size_t i, SampleWriter& out) override { out.field<int64_t>(0)[0] = i * i; }
//   };
//
// A dataset object is built in the main process and reaches forked workers as it is (no
// serialisation): get() runs in a worker, in-process (num_workers = 0) or in a test. It knows
// no process and no shared memory; it writes through the SampleWriter only.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "datasets/sample_writer.hpp"
#include "datasets/schema.hpp"

namespace ringloader::datasets {

/// Who runs the dataset code: PyTorch's get_worker_info(). In-process: id 0 of 1, pid = own.
struct WorkerInfo {
  int id = 0;
  int num_workers = 1;
  uint64_t seed = 0;  ///< the loader's seed (per-sample randomness comes from SampleWriter::rng)
  int pid = 0;
  int64_t epoch = -1;  ///< the epoch the worker was started in; -1 where not known (fork-server workers)
};

/// Map-style dataset: a size and random access by index.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  /// The fields and their largest shapes; fixes the slot layout. Must not change after the
  /// loader is built.
  virtual Schema schema() const = 0;
  /// Write sample `index` through `out`. Throw (DecodeError, SampleError, anything) to fail it:
  /// the exception reaches the training loop at this batch's place, or is counted under `skip`.
  virtual void get(size_t index, SampleWriter& out) = 0;
  /// The file behind `index`, for error messages ("" if none).
  virtual std::string source(size_t /*index*/) const { return {}; }
  /// Called once in each worker right after it starts (and once in-process), before any get().
  virtual void on_worker_start(const WorkerInfo& /*info*/) {}
  /// After on_worker_start(), in the same process: a degradation it accepted rather than fail
  /// the worker (e.g. fewer reader threads than asked, the system refusing the rest), for the
  /// caller to log once as a warning. "" if none.
  virtual std::string worker_start_warning() const { return {}; }
  /// Identifies the data (e.g. a hash of the file list): a saved loader state is refused on a
  /// dataset whose fingerprint differs. "" = only size and schema are compared.
  virtual std::string fingerprint() const { return {}; }
  /// Hint: these indices are about to be requested, in this order (a batch). A dataset with
  /// slow reads starts fetching them; the default ignores it.
  virtual void prefetch(std::span<const int64_t> /*indices*/) {}
};

/// Stream-style dataset: each worker reads its own shard of a stream. PyTorch's IterableDataset.
class IterableDataset {
 public:
  virtual ~IterableDataset() = default;
  virtual Schema schema() const = 0;
  /// Start this worker's stream for `epoch`; shard with info.id / info.num_workers.
  virtual void start(const WorkerInfo& info, uint64_t epoch) = 0;
  /// Write the next sample through `out`; false when this worker's shard is exhausted.
  virtual bool next(SampleWriter& out) = 0;
};

}  // namespace ringloader::datasets
