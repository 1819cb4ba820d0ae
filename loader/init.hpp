#pragma once
// The fork-server start method: workers forked from a small single-threaded helper process
// instead of the (possibly multi-threaded) training process.
//
//   int main() {
//     ringloader::register_dataset("folder", [](const std::string& root) {
//       return std::make_shared<ringloader::datasets::ImageFolder>(root);
//     });
//     ringloader::init();                       // first thing, before any thread starts
//     start_my_threads();
//     loader::LoaderOptions o;
//     o.num_workers = 4;
//     o.start_method = loader::StartMethod::kForkServer;
//     loader::DataLoader loader(loader::DatasetRecipe{"folder", "/data/train"}, o);
//   }
//
// A recipe (a registered factory's name and an argument string) is how the dataset reaches
// a fork-server spawner: the spawner builds it once and forks every worker from it. The main
// process builds its own copy from the same recipe (for size, schema and file names).
#include <functional>
#include <memory>
#include <string>

#include "datasets/dataset.hpp"

namespace ringloader {

using DatasetFactory = std::function<std::shared_ptr<datasets::Dataset>(const std::string& args)>;

/// Registers a dataset factory under `name`. Call before init() for fork-server use.
void register_dataset(const std::string& name, DatasetFactory factory);

/// Starts the fork server. Call once, first thing in main, while the process has one thread.
/// Throws IpcError if it cannot start; ConfigError if called twice.
void init();

}  // namespace ringloader
