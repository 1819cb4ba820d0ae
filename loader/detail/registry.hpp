#pragma once
// The dataset factories registered with ringloader::register_dataset (main process, before
// init(); the fork server and its spawners hold the copy they were forked with).
#include <memory>
#include <string>

#include "datasets/dataset.hpp"

namespace ringloader::loader::detail {

/// Builds a registered dataset; ConfigError naming the known names if `name` is unknown.
std::shared_ptr<datasets::Dataset> make_registered_dataset(const std::string& name, const std::string& args);
/// Was `name` registered before the fork server started (so its spawners know it)?
bool registered_before_server(const std::string& name);

}  // namespace ringloader::loader::detail
