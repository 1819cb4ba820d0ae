#include "loader/detail/worker_main.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "ipc/fork_server.hpp"
#include "loader/detail/fill.hpp"
#include "loader/detail/log.hpp"
#include "loader/detail/registry.hpp"

namespace ringloader::loader::detail {
namespace {

using namespace std::chrono_literals;
constexpr auto kWorkerIdle = 200ms;  ///< longest a worker sleeps before re-checking its parent
/// First idle wait after a batch, doubling up to kWorkerIdle: the main process queues a task
/// without waking anyone while it has batches enough ready (LoaderCore::refill), so a worker
/// that has just been busy looks again soon by itself.
constexpr auto kFirstIdle = 1ms;

/// A worker allocates and frees the same few buffers for every sample (file bytes in reader
/// threads, the decoders' scratch). glibc would hand large ones back to the kernel on free and
/// fault them in again, zeroed, on the next sample - measured at ~5 page faults and ~10% of
/// a worker's CPU time on this project's photo benchmark. A worker's heap is ours: keep
/// freed memory (bounded by the worker's peak) for reuse.
void tune_worker_heap() {
  ::mallopt(M_MMAP_THRESHOLD, 64 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

void set_phase(WorkerRecord& rec, WorkerPhase p) {
  rec.phase_since_ns.store(ipc::monotonic_ns(), std::memory_order_relaxed);
  rec.phase.store(static_cast<uint32_t>(p), std::memory_order_release);
}

}  // namespace

void run_start_hooks(datasets::Dataset* map_ds, const std::function<void(const datasets::WorkerInfo&)>& init_fn,
                     const datasets::WorkerInfo& info) {
  if (map_ds) {
    map_ds->on_worker_start(info);
    if (const std::string w = map_ds->worker_start_warning(); !w.empty()) log().warn("{}", w);
  }
  if (init_fn) init_fn(info);
}

int run_worker(const WorkerEnv& env, int id) {
  WorkerRecord& rec = env.records[id];
  const int pid = static_cast<int>(::getpid());
  rec.pid.store(pid, std::memory_order_relaxed);
  use_worker_logger(id, &rec);
  tune_worker_heap();
  datasets::WorkerInfo info{id, env.num_workers, env.seed, pid, env.epoch};
  set_phase(rec, WorkerPhase::kStartHook);
  try {
    run_start_hooks(env.map_ds, env.init_fn, info);
  } catch (const std::exception& e) {
    log().error("on_worker_start / worker_init_fn threw {}: {}", current_exception_type(), e.what());
    set_phase(rec, WorkerPhase::kStartHookFailed);  // the exit code alone could be dataset code's
    return kStartHookFailedExit;
  } catch (...) {
    log().error("on_worker_start / worker_init_fn threw {}", current_exception_type());
    set_phase(rec, WorkerPhase::kStartHookFailed);
    return kStartHookFailedExit;
  }
  set_phase(rec, WorkerPhase::kIdle);
  const ipc::SlotRing& ring = *env.ring;
  const auto mine = [&ring, id](uint32_t s) {
    const int32_t target = ring.task<TaskRecord>(s).target_worker;
    return target < 0 || target == id;
  };
  bool exhausted = false;
  int64_t stream_pos = 0;
  uint64_t stream_gen = 0;
  std::chrono::nanoseconds idle = kFirstIdle;
  for (;;) {
    if (ring.shutting_down()) return 0;
    if (::getppid() != env.parent_pid) return 0;  // the main process is gone
    while (!ring.shutting_down()) {
      const auto claim = ring.try_claim(id, mine);
      if (!claim) break;
      set_phase(rec, WorkerPhase::kFilling);
      const uint32_t s = claim->slot;
      const TaskRecord& task = ring.task<TaskRecord>(s);
      const uint64_t gen = task.generation;
      FillContext ctx;
      ctx.epoch = task.epoch;
      ctx.seed = task.seed;
      ctx.batch = task.seq;
      ctx.worker_id = id;
      ctx.pid = pid;
      ctx.on_error = env.on_error;
      ctx.progress = &ring.progress(s);
      ctx.retry_budget = env.timeout / 2;
      ctx.abandoned = [&ring, gen] { return ring.generation() != gen || ring.shutting_down(); };
      if (env.map_ds) {
        fill_batch(*env.map_ds, *env.layout, ring.payload(s), std::span<const int64_t>(ring.indices(s).data(), task.count),
                   ctx);
      } else {
        bool start_failed = false;
        if (gen != stream_gen) {
          rec.stream_batches.store(0, std::memory_order_relaxed);
          rec.stream_generation.store(gen, std::memory_order_release);
          exhausted = false;
          stream_pos = 0;
          stream_gen = gen;
          try {
            env.stream_ds->start(info, task.epoch);
          } catch (...) {  // raised once with the dataset's own error, not retried by forking again
            fail_stream_start(*env.layout, ring.payload(s), ctx);
            exhausted = true;
            start_failed = true;
          }
        }
        if (!start_failed) {
          fill_stream_batch(*env.stream_ds, *env.layout, ring.payload(s), task.count, ctx, exhausted, stream_pos);
        }
      }
      if (ring.mark_filled(*claim, id)) {
        rec.batches.fetch_add(1, std::memory_order_relaxed);
        if (env.stream_ds) rec.stream_batches.fetch_add(1, std::memory_order_relaxed);
      }
      set_phase(rec, WorkerPhase::kIdle);
      idle = kFirstIdle;
    }
    ring.wait_for_task(mine, idle);
    idle = std::min<std::chrono::nanoseconds>(idle * 2, kWorkerIdle);
  }
}

std::string spawner_request(const std::string& factory, const std::string& args, size_t ring_bytes, int num_workers,
                         uint64_t seed, OnError on_error, std::chrono::milliseconds timeout) {
  // One "key=value" per line; args last, since it may hold anything but a NUL.
  std::ostringstream o;
  o << "factory=" << factory << '\n'
    << "ring_bytes=" << ring_bytes << '\n'
    << "num_workers=" << num_workers << '\n'
    << "seed=" << seed << '\n'
    << "on_error=" << static_cast<int>(on_error) << '\n'
    << "timeout_ms=" << timeout.count() << '\n'
    << "args=" << args;
  return o.str();
}

int spawner_main(const std::string& request, core::UniqueFd region_fd, core::UniqueFd channel) {
  std::map<std::string, std::string> kv;
  size_t pos = 0;
  while (pos < request.size()) {
    const size_t eq = request.find('=', pos);
    if (eq == std::string::npos) break;
    const std::string key = request.substr(pos, eq - pos);
    if (key == "args") {
      kv[key] = request.substr(eq + 1);
      break;
    }
    const size_t nl = request.find('\n', eq);
    kv[key] = request.substr(eq + 1, nl == std::string::npos ? std::string::npos : nl - eq - 1);
    pos = nl == std::string::npos ? request.size() : nl + 1;
  }
  use_worker_logger(-1, nullptr);
  std::shared_ptr<datasets::Dataset> ds;
  try {
    ds = make_registered_dataset(kv["factory"], kv["args"]);
  } catch (const std::exception& e) {
    log().error("fork-server pool: cannot build dataset '{}': {}", kv["factory"], e.what());
    ipc::report_spawner_failure(channel.get(), "'" + kv["factory"] + "' factory: " + e.what());
    return 4;
  }
  ipc::SlotRing ring(region_fd.get(), std::stoull(kv["ring_bytes"]));
  region_fd.reset();
  const SlotLayout layout(ds->schema(), ring.max_batch());
  WorkerEnv env;
  env.ring = &ring;
  env.layout = &layout;
  env.records = reinterpret_cast<WorkerRecord*>(ring.extra());
  env.map_ds = ds.get();
  env.on_error = static_cast<OnError>(std::stoi(kv["on_error"]));
  env.num_workers = std::stoi(kv["num_workers"]);
  env.seed = std::stoull(kv["seed"]);
  env.timeout = std::chrono::milliseconds(std::stoll(kv["timeout_ms"]));
  env.parent_pid = static_cast<int>(::getpid());
  return ipc::run_spawner(channel.get(), [&env](int id) { return run_worker(env, id); });
}

}  // namespace ringloader::loader::detail
