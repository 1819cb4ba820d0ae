#include "loader/detail/worker_main.hpp"

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "ipc/fork_server.hpp"
#include "loader/detail/log.hpp"
#include "loader/detail/registry.hpp"

namespace ringloader::loader::detail {
namespace {

using namespace std::chrono_literals;
constexpr auto kWorkerIdle = 200ms;  ///< longest a worker sleeps before re-checking its parent

/// A worker allocates and frees the same few buffers for every sample (file bytes in reader
/// threads, the decoders' scratch). glibc would hand large ones back to the kernel on free and
/// fault them in again, zeroed, on the next sample - measured at ~5 page faults and ~10% of
/// a worker's CPU time on this project's photo benchmark. A worker's heap is ours: keep
/// freed memory (bounded by the worker's peak) for reuse.
void tune_worker_heap() {
  ::mallopt(M_MMAP_THRESHOLD, 64 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace

int run_worker(const WorkerEnv& env, int id) {
  use_worker_logger(id);
  tune_worker_heap();
  const int pid = static_cast<int>(::getpid());
  datasets::WorkerInfo info{id, env.num_workers, env.seed, pid};
  try {
    if (env.map_ds) env.map_ds->on_worker_start(info);
    if (env.init_fn) env.init_fn(info);
  } catch (const std::exception& e) {
    log().error("worker {} (pid {}) failed to start: {}", id, pid, e.what());
    return kInitFailedExit;
  }
  auto& hdr = env.ring->ring();
  bool exhausted = false;
  int64_t stream_pos = 0;
  uint64_t stream_gen = 0;
  for (;;) {
    if (hdr.shutdown.load(std::memory_order_acquire)) return 0;
    if (::getppid() != env.parent_pid) return 0;  // the main process is gone
    (void)hdr.tasks.wait_for(kWorkerIdle);
    while (!hdr.shutdown.load(std::memory_order_acquire)) {
      const auto s = env.ring->try_claim(id, pid);
      if (!s) break;
      const ipc::SlotHeader& sh = env.ring->slot(*s);
      const uint64_t gen = sh.generation;
      FillContext ctx;
      ctx.epoch = sh.epoch;
      ctx.seed = sh.seed;
      ctx.worker_id = id;
      ctx.pid = pid;
      ctx.on_error = env.on_error;
      ctx.progress = &env.ring->slot(*s).progress;
      ctx.abandoned = [&hdr, gen] {
        return hdr.generation.load(std::memory_order_relaxed) != gen || hdr.shutdown.load(std::memory_order_relaxed);
      };
      if (env.map_ds) {
        fill_batch(*env.map_ds, *env.layout, env.ring->payload(*s), std::span<const int64_t>(env.ring->indices(*s).data(), sh.count), ctx);
      } else {
        if (gen != stream_gen) {
          env.stream_ds->start(info, sh.epoch);
          exhausted = false;
          stream_pos = 0;
          stream_gen = gen;
        }
        fill_stream_batch(*env.stream_ds, *env.layout, env.ring->payload(*s), sh.count, ctx, exhausted, stream_pos);
      }
      env.ring->mark_filled(*s, id);
    }
  }
}

std::string pool_request(const std::string& factory, const std::string& args, size_t ring_bytes, int num_workers,
                         uint64_t seed, OnError on_error) {
  // One "key=value" per line; args last, since it may hold anything but a NUL.
  std::ostringstream o;
  o << "factory=" << factory << '\n'
    << "ring_bytes=" << ring_bytes << '\n'
    << "num_workers=" << num_workers << '\n'
    << "seed=" << seed << '\n'
    << "on_error=" << static_cast<int>(on_error) << '\n'
    << "args=" << args;
  return o.str();
}

int pool_main(const std::string& request, ipc::UniqueFd region_fd, ipc::UniqueFd channel) {
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
  use_worker_logger(-1);
  std::shared_ptr<datasets::Dataset> ds;
  try {
    ds = make_registered_dataset(kv["factory"], kv["args"]);
  } catch (const std::exception& e) {
    log().error("fork-server pool: cannot build dataset '{}': {}", kv["factory"], e.what());
    return 4;
  }
  ipc::SlotRing ring(region_fd.get(), std::stoull(kv["ring_bytes"]));
  region_fd.reset();
  const SlotLayout layout(ds->schema(), ring.max_batch());
  WorkerEnv env;
  env.ring = &ring;
  env.layout = &layout;
  env.map_ds = ds.get();
  env.on_error = static_cast<OnError>(std::stoi(kv["on_error"]));
  env.num_workers = std::stoi(kv["num_workers"]);
  env.seed = std::stoull(kv["seed"]);
  env.parent_pid = static_cast<int>(::getpid());
  return ipc::run_pool_host(channel.get(), [&env](int id) { return run_worker(env, id); });
}

}  // namespace ringloader::loader::detail
