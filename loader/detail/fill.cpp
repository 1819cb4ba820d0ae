#include "loader/detail/fill.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <new>
#include <system_error>
#include <thread>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>

#include "core/error.hpp"
#include "core/posix_error.hpp"
#include "loader/detail/batch_error.hpp"

namespace ringloader::loader::detail {
namespace {

/// Pauses before each retry of a sample that failed for want of a resource.
constexpr std::chrono::milliseconds kResourceRetries[] = {std::chrono::milliseconds(10), std::chrono::milliseconds(100),
                                                          std::chrono::milliseconds(500)};

void reset_meta(BatchMeta* m) {
  m->count = 0;
  m->status = BatchStatus::kOk;
  m->num_skipped = 0;
  m->end_of_stream = 0;
  m->error_index = -1;
  m->error_pid = 0;
  m->error_kind = ErrorKind::kSample;
  m->error_errno = 0;
  m->error_type[0] = m->error_path[0] = m->error_message[0] = '\0';
}

struct SampleTargets {
  std::vector<datasets::FieldTarget> targets;
  std::vector<int64_t> var_cursor;  ///< next free element per variable field
};

void prepare_targets(const SlotLayout& layout, std::byte* payload, size_t pos, SampleTargets& t) {
  const auto& fields = layout.schema().fields;
  t.targets.resize(fields.size());
  for (size_t f = 0; f < fields.size(); ++f) {
    const auto& fd = fields[f];
    auto& tg = t.targets[f];
    if (!fd.variable) {
      tg.data = layout.field_data(payload, f) + pos * layout.field_bytes(f);
      tg.capacity = layout.field_bytes(f);
      tg.shape_out = nullptr;
    } else {
      int64_t* offs = layout.var_offsets(payload, f);
      tg.data = layout.field_data(payload, f) + static_cast<size_t>(offs[pos]) * datasets::dtype_size(fd.dtype);
      tg.capacity = layout.field_bytes(f);
      tg.shape_out = layout.var_shapes(payload, f) + pos * fd.shape.size();
      for (size_t d = 0; d < fd.shape.size(); ++d) tg.shape_out[d] = fd.shape[d];  // default: the largest
    }
  }
}

void commit_sample(const SlotLayout& layout, std::byte* payload, size_t pos) {
  const auto& fields = layout.schema().fields;
  for (size_t f = 0; f < fields.size(); ++f) {
    if (!fields[f].variable) continue;
    int64_t* offs = layout.var_offsets(payload, f);
    const int64_t* shape = layout.var_shapes(payload, f) + pos * fields[f].shape.size();
    int64_t n = 1;
    for (size_t d = 0; d < fields[f].shape.size(); ++d) n *= shape[d];
    offs[pos + 1] = offs[pos] + n;
  }
}

void init_offsets(const SlotLayout& layout, std::byte* payload) {
  for (size_t f = 0; f < layout.schema().fields.size(); ++f) {
    if (int64_t* offs = layout.var_offsets(payload, f)) offs[0] = 0;
  }
}

std::string describe_current(const char* fallback_type, std::string& type_out, std::string* traceback_out = nullptr) {
  type_out = current_exception_type();
  try {
    throw;
  } catch (const ForeignError& e) {
    type_out = e.type();  // the Python type, not the C++ wrapper's
    if (traceback_out) *traceback_out = e.traceback();
    return e.what();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    if (type_out.empty()) type_out = fallback_type;
    return "unknown exception";
  }
}

std::string path_of(const std::string& writer_source) {
  if (!writer_source.empty()) return writer_source;
  try {
    throw;
  } catch (const DecodeError& e) {
    return e.path();
  } catch (const SampleError& e) {
    return e.path();
  } catch (...) {
    return {};
  }
}

/// The errno of the exception being handled if it is the system running short of a resource
/// (descriptors, memory, processes), else 0.
int resource_errno() {
  try {
    throw;
  } catch (const ResourceError& e) {
    return e.error_number() != 0 ? e.error_number() : ENOMEM;
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  } catch (const std::system_error& e) {
    const int v = e.code().value();
    if ((e.code().category() == std::generic_category() || e.code().category() == std::system_category()) &&
        core::is_resource_errno(v)) {
      return v;
    }
  } catch (...) {
  }
  return 0;
}

/// Records the failure of sample `index`: a skip record (true: go on filling) under kSkip,
/// else - or whatever the policy when `err` says the system ran short of a resource - the
/// batch's error record (false: stop).
bool record_failure(const SlotLayout& layout, std::byte* payload, const FillContext& ctx, int64_t index,
                    const std::string& path, const std::string& type, const std::string& what, int err = 0,
                    const std::string& traceback = {}) {
  BatchMeta* meta = layout.meta(payload);
  if (ctx.on_error == OnError::kSkip && err == 0) {
    // A stream can fail more samples than a batch holds: the last record then names the latest.
    const uint32_t k = std::min<uint32_t>(meta->num_skipped, static_cast<uint32_t>(layout.max_batch()) - 1);
    meta->num_skipped = k + 1;
    SkipRecord& r = layout.skips(payload)[k];
    r.index = index;
    copy_to_field(r.path, path);
    copy_to_field(r.reason, what);
    return true;
  }
  write_batch_error(*meta, err != 0 ? ErrorKind::kResource : ErrorKind::kSample, index, ctx.pid, err, type, path, what,
                    traceback);
  return false;
}

}  // namespace

void give_up_batch(const SlotLayout& layout, std::byte* payload, std::span<const int64_t> indices, ErrorKind kind,
                   const std::string& message, OnError policy) {
  BatchMeta* meta = layout.meta(payload);
  reset_meta(meta);
  if (policy == OnError::kSkip) {
    for (int64_t index : indices) {
      SkipRecord& r = layout.skips(payload)[meta->num_skipped++];
      r.index = index;
      r.path[0] = '\0';
      copy_to_field(r.reason, message);
    }
    return;
  }
  write_batch_error(*meta, kind, indices.empty() ? -1 : indices[0], 0, 0,
                    kind == ErrorKind::kTimeout ? "ringloader::TimeoutError" : "ringloader::WorkerError", {}, message);
}

std::string current_exception_type() {
  if (const std::type_info* t = abi::__cxa_current_exception_type()) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(t->name(), nullptr, nullptr, &status), std::free);
    return status == 0 && name ? std::string(name.get()) : std::string(t->name());
  }
  return {};
}

/// A slot about to be filled: its meta reset and its variable fields' offsets at 0.
static BatchMeta* begin_batch(const SlotLayout& layout, std::byte* payload) {
  BatchMeta* meta = layout.meta(payload);
  reset_meta(meta);
  init_offsets(layout, payload);
  return meta;
}

void fill_batch(datasets::Dataset& ds, const SlotLayout& layout, std::byte* payload, std::span<const int64_t> indices,
                const FillContext& ctx) {
  BatchMeta* meta = begin_batch(layout, payload);
  int64_t* delivered = layout.delivered(payload);
  SampleTargets t;
  size_t pos = 0;
  try {
    ds.prefetch(indices);
  } catch (...) {
    // a failed hint is not an error: get() reports the sample's own failure
  }
  for (const int64_t index : indices) {
    if (ctx.abandoned && ctx.abandoned()) {
      meta->status = BatchStatus::kAbandoned;
      meta->count = static_cast<uint32_t>(pos);
      return;
    }
    prepare_targets(layout, payload, pos, t);
    datasets::SampleWriter writer(layout.schema(), t.targets,
                                  datasets::SampleContext{index, ctx.epoch, ctx.seed, ctx.worker_id, ctx.batch});
    if (ctx.progress) ctx.progress->store(index, std::memory_order_relaxed);
    bool ok = false;
    std::chrono::milliseconds slept{0};
    for (size_t attempt = 0;; ++attempt) {
      try {
        ds.get(static_cast<size_t>(index), writer);
        ok = true;
        break;
      } catch (const PassThrough&) {
        throw;  // Ctrl-C in a dataset run in-process: the caller's, not the sample's
      } catch (...) {
        const int err = resource_errno();
        const bool may_retry = err != 0 && attempt < std::size(kResourceRetries) &&
                               (ctx.retry_budget.count() == 0 || slept + kResourceRetries[attempt] <= ctx.retry_budget) &&
                               !(ctx.abandoned && ctx.abandoned());
        if (may_retry) {
          std::this_thread::sleep_for(kResourceRetries[attempt]);  // the system may recover: try again
          slept += kResourceRetries[attempt];
          prepare_targets(layout, payload, pos, t);
          continue;
        }
        std::string type, traceback;
        std::string what = describe_current("unknown", type, &traceback);
        if (err != 0) what += " (tried " + std::to_string(attempt + 1) + (attempt ? " times)" : " time)");
        std::string path = path_of(writer.source());
        if (path.empty()) {
          try {
            path = ds.source(static_cast<size_t>(index));
          } catch (...) {
          }
        }
        if (record_failure(layout, payload, ctx, index, path, type, what, err, traceback)) break;
        meta->count = static_cast<uint32_t>(pos);
        return;
      }
    }
    if (!ok) continue;
    commit_sample(layout, payload, pos);
    delivered[pos] = index;
    ++pos;
  }
  meta->count = static_cast<uint32_t>(pos);
  if (ctx.progress) ctx.progress->store(-1, std::memory_order_relaxed);
}

void fill_stream_batch(datasets::IterableDataset& ds, const SlotLayout& layout, std::byte* payload, size_t batch_size,
                       const FillContext& ctx, bool& exhausted, int64_t& stream_position) {
  BatchMeta* meta = begin_batch(layout, payload);
  int64_t* delivered = layout.delivered(payload);
  SampleTargets t;
  size_t pos = 0;
  while (pos < batch_size && !exhausted) {
    if (ctx.abandoned && ctx.abandoned()) {
      meta->status = BatchStatus::kAbandoned;
      break;
    }
    prepare_targets(layout, payload, pos, t);
    const int64_t index = stream_position;
    datasets::SampleWriter writer(layout.schema(), t.targets,
                                  datasets::SampleContext{index, ctx.epoch, ctx.seed, ctx.worker_id, ctx.batch});
    bool got = false;
    try {
      got = ds.next(writer);
    } catch (...) {
      const int err = resource_errno();  // a stream cannot retry a sample: raised at once
      std::string type, traceback;
      const std::string what = describe_current("unknown", type, &traceback);
      ++stream_position;
      if (record_failure(layout, payload, ctx, index, path_of(writer.source()), type, what, err, traceback)) continue;
      break;
    }
    if (!got) {
      exhausted = true;
      break;
    }
    commit_sample(layout, payload, pos);
    delivered[pos] = index;  // the position in this worker's stream
    ++stream_position;
    ++pos;
  }
  meta->count = static_cast<uint32_t>(pos);
  meta->end_of_stream = exhausted ? 1 : 0;
}

void fail_stream_start(const SlotLayout& layout, std::byte* payload, const FillContext& ctx) {
  BatchMeta* meta = begin_batch(layout, payload);
  const int err = resource_errno();
  std::string type, traceback;
  const std::string what = "starting the stream (set_epoch / __iter__) raised " + describe_current("unknown", type, &traceback);
  (void)record_failure(layout, payload, ctx, -1, {}, type, what, err, traceback);
  meta->count = 0;
  meta->end_of_stream = 1;  // this worker's part of the stream cannot be read this epoch
}

}  // namespace ringloader::loader::detail
