#include "loader/detail/resolved_options.hpp"

#include <limits>
#include <random>
#include <string>

#include "core/error.hpp"
#include "ipc/fork_server.hpp"
#include "loader/detail/registry.hpp"

namespace ringloader::loader::detail {
namespace {

/// Slots are numbered with 32 bits, and a slot's worker id with 24 (SlotWord).
constexpr size_t kMaxSlots = 1 << 16;
constexpr size_t kMaxWorkers = 1024;
constexpr size_t kMaxBatch = std::numeric_limits<uint32_t>::max();

void check_fork_server(const LoaderOptions& o, bool stream, const std::optional<DatasetRecipe>& recipe) {
  if (o.start_method != StartMethod::kForkServer) return;
  if (!recipe) {
    throw ConfigError("start_method=kForkServer needs the dataset as a DatasetRecipe (a factory registered with "
                      "ringloader::register_dataset before ringloader::init()), not as an object");
  }
  if (!ipc::ForkServer::running()) {
    throw ConfigError("start_method=kForkServer but the fork server is not running: call ringloader::init() first "
                      "thing in main");
  }
  if (!registered_before_server(recipe->factory)) {
    throw ConfigError("dataset factory '" + recipe->factory +
                      "' was registered after ringloader::init(): the fork server does not know it");
  }
  if (stream) throw ConfigError("start_method=kForkServer takes a map-style dataset given as a DatasetRecipe");
  if (o.worker_init_fn) {
    throw ConfigError("worker_init_fn cannot reach fork-server workers (a function is not sent to the pool): "
                      "do per-worker set-up in Dataset::on_worker_start");
  }
}

}  // namespace

ResolvedOptions resolve_options(const LoaderOptions& o, const datasets::Dataset* map, bool stream,
                                const std::optional<DatasetRecipe>& recipe) {
  if (!map && !stream) throw ConfigError("DataLoader: dataset is null");
  if (o.batch_size == 0) throw ConfigError("batch_size must be positive, got 0");
  if (o.batch_size > kMaxBatch) throw ConfigError("batch_size=" + std::to_string(o.batch_size) + " is more than 2^32-1");
  if (o.prefetch_factor == 0) throw ConfigError("prefetch_factor must be positive, got 0");
  if (o.num_workers > kMaxWorkers) {
    throw ConfigError("num_workers=" + std::to_string(o.num_workers) + " is more than " + std::to_string(kMaxWorkers));
  }
  if (o.max_retries == 0) throw ConfigError("max_retries must be positive, got 0");
  if (o.timeout.count() < 0) throw ConfigError("timeout must not be negative, got " + std::to_string(o.timeout.count()) + " ms");
  if (o.batch_sampler && (o.batch_size != 1 || o.shuffle || o.sampler || o.drop_last)) {
    throw ConfigError("batch_sampler is mutually exclusive with batch_size, shuffle, sampler and drop_last");
  }
  if (o.sampler && o.shuffle) throw ConfigError("sampler is mutually exclusive with shuffle=true");
  if (stream && (o.sampler || o.batch_sampler || o.shuffle)) {
    throw ConfigError("a stream (iterable) dataset takes no sampler, batch_sampler or shuffle: it orders itself");
  }
  check_fork_server(o, stream, recipe);

  ResolvedOptions r;
  r.user = o;
  r.stream = stream;
  r.seed = o.seed           ? *o.seed
           : o.default_seed ? *o.default_seed
                            : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  // num_workers <= 1024 (checked above); the product must not wrap and the slots stay countable.
  size_t slots = 0;
  if (__builtin_mul_overflow(o.num_workers > 0 ? o.num_workers : 1, o.prefetch_factor, &slots) ||
      __builtin_add_overflow(slots, o.extra_slots, &slots) || slots > kMaxSlots) {
    throw ConfigError("num_workers=" + std::to_string(o.num_workers) + " x prefetch_factor=" +
                      std::to_string(o.prefetch_factor) + " + extra_slots=" + std::to_string(o.extra_slots) +
                      " slots is more than " + std::to_string(kMaxSlots));
  }
  r.num_slots = static_cast<uint32_t>(slots);
  size_t capacity = o.batch_size;
  if (map) {
    if (o.batch_sampler) {
      r.batch_sampler = o.batch_sampler;
    } else {
      std::shared_ptr<Sampler> s = o.sampler;
      if (!s && o.shuffle) s = std::make_shared<RandomSampler>(map->size());
      if (!s) s = std::make_shared<SequentialSampler>(map->size());
      r.batch_sampler = std::make_shared<BatchSampler>(s, o.batch_size, o.drop_last);
    }
    capacity = r.batch_sampler->max_batch_size();
    if (capacity == 0) throw ConfigError("batch_sampler's max_batch_size() is 0");
    if (capacity > kMaxBatch) {
      throw ConfigError("batch_sampler's max_batch_size()=" + std::to_string(capacity) + " is more than 2^32-1");
    }
  }
  r.batch_capacity = static_cast<uint32_t>(capacity);
  return r;
}

}  // namespace ringloader::loader::detail
