#include "loader/detail/ring_factory.hpp"

#include <algorithm>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "core/error.hpp"

namespace ringloader::loader::detail {

std::unique_ptr<ipc::SlotRing> make_ring(const ResolvedOptions& opts, const SlotLayout& layout) {
  const LoaderOptions& o = opts.user;
  const size_t workers = o.num_workers;
  const size_t records = std::max<size_t>(1, workers);  // in-process, the main process has one
  ipc::SlotRing::Config cfg;
  cfg.num_slots = opts.num_slots;
  cfg.max_batch = opts.batch_capacity;
  cfg.payload_bytes = layout.payload_bytes();
  cfg.task_bytes = sizeof(TaskRecord);
  cfg.extra_bytes = sizeof(WorkerRecord) * records;
  cfg.region.dir = o.shm_dir;
  cfg.region.anonymous = workers == 0;
  cfg.region.keep_fd = o.start_method == StartMethod::kForkServer && workers > 0;
  // What the messages name, made only on failure.
  const auto slots = [&] { return std::to_string(cfg.num_slots) + " slots"; };
  const auto options = [&] {
    return "num_workers=" + std::to_string(workers) + " x prefetch_factor=" + std::to_string(o.prefetch_factor);
  };
  const auto slot_size = [&] {
    return std::to_string(layout.payload_bytes()) + " bytes (batch " + std::to_string(opts.batch_capacity) + " x " +
           std::to_string(layout.schema().max_sample_bytes()) + " bytes per sample)";
  };
  std::unique_ptr<ipc::SlotRing> ring;
  try {
    ring = std::make_unique<ipc::SlotRing>(cfg);
  } catch (const ipc::RegionTooLarge& e) {
    throw IpcError(std::string(e.what()) + " [" + slots() + " (" + options() + ") of " + slot_size() + "]");
  } catch (const std::length_error& e) {
    throw ConfigError("the ring's size overflows (" + std::string(e.what()) + "): " + options() + " = " + slots() + " of " +
                      slot_size() + "; lower batch_size, num_workers or prefetch_factor");
  } catch (const std::system_error& e) {
    throw IpcError(std::string("creating the shared-memory ring: ") + e.what());
  }
  for (size_t w = 0; w < records; ++w) new (&worker_records(*ring)[w]) WorkerRecord{};
  return ring;
}

}  // namespace ringloader::loader::detail
