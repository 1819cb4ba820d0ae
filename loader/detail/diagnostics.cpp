#include "loader/detail/diagnostics.hpp"

#include "loader/detail/batch_error.hpp"
#include "loader/detail/records.hpp"

namespace ringloader::loader::detail {
namespace {

std::string millis(int64_t d_ns) { return std::to_string(d_ns / 1000000) + " ms"; }

}  // namespace

std::string source_of(const datasets::Dataset* ds, int64_t index) {
  if (!ds || index < 0) return {};
  try {
    return ds->source(static_cast<size_t>(index));
  } catch (...) {
    return {};
  }
}

std::string describe_task(const ipc::SlotRing& ring, uint32_t s, bool stream, const datasets::Dataset* ds) {
  const TaskRecord& t = ring.task<TaskRecord>(s);
  if (stream) return "batch " + std::to_string(t.seq) + " (stream shard of worker " + std::to_string(t.target_worker) + ")";
  const auto idx = std::span<const int64_t>(ring.indices(s).data(), t.count);
  std::string d = "batch " + std::to_string(t.seq) + " (indices " + join_indices(idx);
  if (!idx.empty()) {
    const std::string src = source_of(ds, idx[0]);
    if (!src.empty()) d += "; first file " + src;
  }
  return d + ")";
}

ConfigError all_slots_held(uint32_t num_slots, const LoaderOptions& o) {
  return ConfigError("all " + std::to_string(num_slots) +
                     " ring slots are held by Batches the training loop has not released (num_workers=" +
                     std::to_string(o.num_workers) + ", prefetch_factor=" + std::to_string(o.prefetch_factor) +
                     "); let one go before asking for the next (Python: drop the batch and its tensors, e.g. `del "
                     "batch`, or keep copies: copy.deepcopy(batch), or copy=True; C++: Batch::release() or let it go "
                     "out of scope), or raise prefetch_factor");
}

TimeoutError wait_timed_out(const ipc::SlotRing& ring, std::span<const uint32_t> awaited, bool stream,
                            const datasets::Dataset* ds, int64_t waited_ns, const LoaderOptions& o,
                            const std::string& workers) {
  const int64_t now = ipc::monotonic_ns();
  std::string what;
  for (const uint32_t s : awaited) {
    const ipc::SlotWord w = ring.word(s);
    std::string d = describe_task(ring, s, stream, ds);
    if (w.state == ipc::SlotState::kQueued) {
      d += ", which is queued but no worker has taken it";
    } else if (w.state == ipc::SlotState::kClaimed) {
      d += ", which worker " + std::to_string(w.worker) + " has been filling";
      if (auto at = ring.claimed_at(s, w.ticket)) d += " for " + millis(now - *at);
      const int64_t p = ring.progress(s).load(std::memory_order_relaxed);
      if (p >= 0) {
        const std::string src = source_of(ds, p);
        d += ", now in sample " + std::to_string(p) + (src.empty() ? "" : " (" + src + ")");
      }
      if (ring.slot(s).attempts > 0) d += " (retry " + std::to_string(ring.slot(s).attempts) + ")";
    } else {
      d += std::string(" (") + ipc::slot_state_name(w.state) + ")";
    }
    what += (what.empty() ? "" : "; ") + d;
  }
  if (what.empty()) what = "the next batch";
  return TimeoutError("DataLoader timed out after " + millis(waited_ns) + " (timeout=" + std::to_string(o.timeout.count()) +
                      " ms) waiting for " + what + ". Workers: " + workers +
                      ". Nothing is lost: a worker hung past the timeout is killed and its batch retried; call next() "
                      "again to keep waiting");
}

}  // namespace ringloader::loader::detail
