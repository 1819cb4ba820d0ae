#pragma once
// resolve_options(): every check of LoaderOptions in one place, and what follows from them
// (seed, batch sampler, slot count). Main process, at loader construction.
#include <cstdint>
#include <memory>
#include <optional>

#include "datasets/dataset.hpp"
#include "loader/options.hpp"

namespace ringloader::loader::detail {

struct ResolvedOptions {
  LoaderOptions user;                          ///< as given, checked
  uint64_t seed = 0;                           ///< user.seed, or drawn once
  std::shared_ptr<BatchSampler> batch_sampler;  ///< map-style datasets; null for streams
  uint32_t batch_capacity = 0;                 ///< most samples one batch holds (sizes a slot)
  uint32_t num_slots = 0;                      ///< num_workers x prefetch_factor (prefetch_factor in-process)
  bool stream = false;
};

/// Checks `o` for a map-style dataset (`map`, with its size) or a stream (`map` null);
/// ConfigError naming the option and value otherwise.
ResolvedOptions resolve_options(const LoaderOptions& o, const datasets::Dataset* map, bool stream,
                                const std::optional<DatasetRecipe>& recipe);

}  // namespace ringloader::loader::detail
