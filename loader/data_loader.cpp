#include "loader/data_loader.hpp"

#include "core/error.hpp"
#include "loader/detail/loader_core.hpp"
#include "loader/detail/log.hpp"

namespace ringloader::loader {

DataLoader::DataLoader(std::shared_ptr<datasets::Dataset> dataset, LoaderOptions options)
    : core_(std::make_shared<detail::LoaderCore>(std::move(dataset), nullptr, std::move(options))) {}

DataLoader::DataLoader(std::shared_ptr<datasets::IterableDataset> dataset, LoaderOptions options)
    : core_(std::make_shared<detail::LoaderCore>(nullptr, std::move(dataset), std::move(options))) {}

DataLoader::DataLoader(const DatasetRecipe& recipe, LoaderOptions options)
    : core_(std::make_shared<detail::LoaderCore>(recipe, std::move(options))) {}

DataLoader::DataLoader(DataLoader&&) noexcept = default;

DataLoader& DataLoader::operator=(DataLoader&& o) noexcept {
  if (this != &o) {
    if (core_) core_->shutdown();
    core_ = std::move(o.core_);
  }
  return *this;
}

DataLoader::~DataLoader() {
  if (core_) core_->shutdown();  // Batches still alive keep the mapping, not the workers
}

DataLoader::Iterator::Iterator(DataLoader* l) : loader_(l) {}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  current_.reset();  // releases the slot unless the Batch was moved out
  current_ = loader_->core().next();
  return *this;
}

DataLoader::Iterator DataLoader::begin() {
  core().start_epoch();
  Iterator it(this);
  it.current_ = core().next();
  return it;
}

void DataLoader::start_epoch() { core().start_epoch(); }
std::optional<Batch> DataLoader::next() { return core().next(); }
void DataLoader::uncount(const Batch& b) { core().count_delivered(b, false); }
void DataLoader::recount(const Batch& b) { core().count_delivered(b, true); }
size_t DataLoader::size() const { return core().size(); }
void DataLoader::set_epoch(uint64_t epoch) { core().set_epoch(epoch); }
uint64_t DataLoader::epoch() const { return core().epoch(); }
uint64_t DataLoader::seed() const { return core().seed(); }
void DataLoader::reseed(uint64_t seed) { core().reseed(seed); }
bool DataLoader::resuming() const { return core().resuming(); }
size_t DataLoader::num_slots() const { return core().num_slots(); }
size_t DataLoader::held_batches() const { return core().held_batches(); }
size_t DataLoader::ring_bytes() const { return core().ring_bytes(); }
std::span<std::byte> DataLoader::shared_memory() const { return core().shared_memory(); }
std::vector<int> DataLoader::worker_pids() const { return core().worker_pids(); }
const std::vector<SkippedSample>& DataLoader::skipped() const { return core().skipped(); }
LoaderStats DataLoader::stats() const { return core().stats(); }
std::string DataLoader::state() const { return core().state(); }
void DataLoader::load_state(const std::string& json) { core().load_state(json); }

detail::LoaderCore& DataLoader::core() const {
  if (!core_) throw ConfigError("this DataLoader was closed (close()): make a new one to load again");
  return *core_;
}

void DataLoader::close() noexcept {
  if (core_) core_->shutdown();  // Batches still alive keep the mapping, not the workers
  core_.reset();
}

void DataLoader::interrupt() noexcept {
  if (core_) core_->interrupt();
}

void set_log_level(const std::string& level) { detail::set_level(level); }

}  // namespace ringloader::loader
