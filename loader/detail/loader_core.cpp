#include "loader/detail/loader_core.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "loader/distributed.hpp"
#include "loader/detail/log.hpp"
#include "loader/detail/registry.hpp"
#include "loader/detail/worker_main.hpp"

namespace ringloader::loader::detail {
namespace {

using namespace std::chrono_literals;

constexpr auto kPoll = 100ms;       ///< longest the main process waits before checking workers
constexpr auto kStopGrace = 2000ms; ///< workers asked to stop get this long before SIGKILL

std::string join_indices(std::span<const int64_t> idx, size_t max_shown = 16) {
  std::string s;
  for (size_t i = 0; i < idx.size() && i < max_shown; ++i) s += (i ? "," : "") + std::to_string(idx[i]);
  if (idx.size() > max_shown) s += ",... (" + std::to_string(idx.size()) + " in all)";
  return s;
}

}  // namespace

LoaderCore::LoaderCore(std::shared_ptr<datasets::Dataset> map_ds, std::shared_ptr<datasets::IterableDataset> stream_ds,
                       LoaderOptions options, std::optional<DatasetRecipe> recipe)
    : opts_(std::move(options)), map_ds_(std::move(map_ds)), stream_ds_(std::move(stream_ds)), recipe_(std::move(recipe)) {
  if (!map_ds_ && !stream_ds_) throw ConfigError("DataLoader: dataset is null");
  if (opts_.batch_size == 0) throw ConfigError("batch_size must be positive, got 0");
  if (opts_.prefetch_factor == 0) throw ConfigError("prefetch_factor must be positive, got 0");
  if (opts_.num_workers > 1024) throw ConfigError("num_workers=" + std::to_string(opts_.num_workers) + " is more than 1024");
  if (opts_.max_retries == 0) throw ConfigError("max_retries must be positive, got 0");
  if (opts_.batch_sampler && (opts_.batch_size != 1 || opts_.shuffle || opts_.sampler || opts_.drop_last)) {
    throw ConfigError("batch_sampler is mutually exclusive with batch_size, shuffle, sampler and drop_last");
  }
  if (opts_.sampler && opts_.shuffle) throw ConfigError("sampler is mutually exclusive with shuffle=true");
  if (stream() && (opts_.sampler || opts_.batch_sampler || opts_.shuffle)) {
    throw ConfigError("a stream (iterable) dataset takes no sampler, batch_sampler or shuffle: it orders itself");
  }
  if (opts_.start_method == StartMethod::kForkServer) {
    if (!recipe_) {
      throw ConfigError("start_method=kForkServer needs the dataset as a DatasetRecipe (a factory registered with "
                        "ringloader::register_dataset before ringloader::init()), not as an object");
    }
    if (!ipc::ForkServer::running()) {
      throw ConfigError("start_method=kForkServer but the fork server is not running: call ringloader::init() first "
                        "thing in main");
    }
    if (!registered_before_server(recipe_->factory)) {
      throw ConfigError("dataset factory '" + recipe_->factory +
                        "' was registered after ringloader::init(): the fork server does not know it");
    }
    if (stream()) throw ConfigError("start_method=kForkServer takes a map-style dataset given as a DatasetRecipe");
    if (opts_.worker_init_fn) {
      throw ConfigError("worker_init_fn cannot reach fork-server workers (a function is not sent to the pool): "
                        "do per-worker set-up in Dataset::on_worker_start");
    }
  }
  seed_ = opts_.seed ? *opts_.seed : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  schema_ = map_ds_ ? map_ds_->schema() : stream_ds_->schema();
  schema_.validate();
  if (map_ds_) {
    if (opts_.batch_sampler) {
      batch_sampler_ = opts_.batch_sampler;
    } else {
      std::shared_ptr<Sampler> s = opts_.sampler;
      if (!s) {
        if (opts_.shuffle) s = std::make_shared<RandomSampler>(map_ds_->size());
        else s = std::make_shared<SequentialSampler>(map_ds_->size());
      }
      batch_sampler_ = std::make_shared<BatchSampler>(s, opts_.batch_size, opts_.drop_last);
    }
    batch_capacity_ = batch_sampler_->max_batch_size();
    if (batch_capacity_ == 0) throw ConfigError("batch_sampler's max_batch_size() is 0");
  } else {
    batch_capacity_ = opts_.batch_size;
  }
  layout_ = SlotLayout(schema_, batch_capacity_);
  const size_t slots = opts_.num_workers > 0 ? opts_.num_workers * opts_.prefetch_factor : opts_.prefetch_factor;
  ipc::SlotRing::Config cfg;
  cfg.num_slots = static_cast<uint32_t>(slots);
  cfg.max_batch = static_cast<uint32_t>(batch_capacity_);
  cfg.payload_bytes = layout_.payload_bytes();
  cfg.region.dir = opts_.shm_dir;
  cfg.region.anonymous = opts_.num_workers == 0;
  cfg.region.keep_fd = opts_.start_method == StartMethod::kForkServer && opts_.num_workers > 0;
  try {
    ring_ = std::make_unique<ipc::SlotRing>(cfg);
  } catch (const ipc::RegionTooLarge& e) {
    throw IpcError(std::string(e.what()) + " [" + std::to_string(slots) + " slots (num_workers=" +
                   std::to_string(opts_.num_workers) + " x prefetch_factor=" + std::to_string(opts_.prefetch_factor) +
                   ") of " + std::to_string(layout_.payload_bytes()) + " bytes (batch " + std::to_string(batch_capacity_) +
                   " x " + std::to_string(schema_.max_sample_bytes()) + " bytes per sample)]");
  } catch (const std::system_error& e) {
    throw IpcError(std::string("creating the shared-memory ring: ") + e.what());
  }
  parent_pid_ = static_cast<int>(::getpid());
  slot_seq_.assign(slots, -1);
  timed_out_.assign(slots, 0);
  culprits_.assign(slots, {});
  pending_skips_.assign(slots, {});
  log().debug("ring: {} slots x {} bytes ({} total), seed {}", slots, layout_.payload_bytes(), ring_->region_size(), seed_);
}

LoaderCore::LoaderCore(const DatasetRecipe& recipe, LoaderOptions options)
    : LoaderCore(make_registered_dataset(recipe.factory, recipe.args), nullptr, std::move(options), recipe) {}

LoaderCore::~LoaderCore() { shutdown(); }

size_t LoaderCore::size() const {
  if (!batch_sampler_) throw ConfigError("the number of batches of a stream (iterable) dataset is not known in advance");
  return batch_sampler_->size();
}

std::vector<int> LoaderCore::worker_pids() const {
  std::vector<int> v;
  for (const auto& w : workers_) v.push_back(w.pid());
  return v;
}

// ---------------------------------------------------------------- workers

void LoaderCore::start_workers() {
  for (size_t i = 0; i < opts_.num_workers; ++i) spawn_worker(static_cast<int>(i));
}

void LoaderCore::spawn_worker(int id) {
  Worker w;
  w.id = id;
  try {
    if (opts_.start_method == StartMethod::kForkServer) {
      if (!pool_) {
        pool_ = std::make_unique<ipc::PoolClient>(ipc::ForkServer::open_pool(
            pool_request(recipe_->factory, recipe_->args, ring_->region_size(), static_cast<int>(opts_.num_workers),
                         seed_, opts_.on_error),
            ring_->region_fd()));
      }
      w.remote_pid = pool_->spawn(id);
    } else {
      const int threads = ipc::thread_count();
      if (threads > 1) {
        ++stats_.threaded_forks;
        if (!warned_threads_) {
          warned_threads_ = true;
          log().warn("forking workers from a process that runs {} threads: a lock held by another thread (malloc, a "
                     "logger, OpenMP, CUDA) stays locked in the workers. Create the loader with persistent_workers=true "
                     "before starting threads, or use the fork-server start method (ringloader::init() at the top of "
                     "main, StartMethod::kForkServer)",
                     threads);
        }
      }
      w.proc = ipc::WorkerProcess::spawn([this, id] { return worker_main(id); });
    }
  } catch (const std::system_error& e) {
    throw IpcError(std::string("starting worker ") + std::to_string(id) + ": " + e.what());
  }
  log().debug("worker {} started, pid {}", id, w.pid());
  auto it = std::find_if(workers_.begin(), workers_.end(), [id](const Worker& x) { return x.id == id; });
  if (it != workers_.end()) *it = std::move(w);
  else workers_.push_back(std::move(w));
}

std::optional<ipc::ExitStatus> LoaderCore::poll_worker(Worker& w) {
  if (w.remote_pid <= 0) return w.proc.poll();
  if (!w.remote_status && pool_) {
    try {
      for (const auto& d : pool_->poll()) {
        for (auto& x : workers_) {
          if (x.id == d.id && x.remote_pid == d.pid) x.remote_status = d.status;
        }
      }
    } catch (const std::system_error& e) {
      // The pool itself is gone: every worker of it is as good as dead.
      log().warn("fork-server pool: {}", e.what());
      for (auto& x : workers_) {
        if (!x.remote_status) x.remote_status = ipc::ExitStatus{true, SIGKILL};
      }
      pool_.reset();
    }
  }
  return w.remote_status;
}

void LoaderCore::kill_worker(Worker& w, int sig) {
  if (w.remote_pid <= 0) w.proc.kill(sig);
  else if (!w.remote_status) ::kill(w.remote_pid, sig);
}

void LoaderCore::stop_workers() noexcept {
  if (workers_.empty()) return;
  auto& hdr = ring_->ring();
  hdr.shutdown.store(1, std::memory_order_release);
  try {
    for (size_t i = 0; i < workers_.size(); ++i) hdr.tasks.post();
  } catch (...) {
  }
  const auto deadline = std::chrono::steady_clock::now() + kStopGrace;
  for (auto& w : workers_) {
    if (w.remote_pid > 0) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!w.proc.wait_for(std::max(left, 0ms))) {
      log().warn("worker {} (pid {}) did not stop within {} ms; killing it", w.id, w.proc.pid(), kStopGrace.count());
      w.proc.terminate();
    }
  }
  // Fork-server workers: the pool reaps them and says so; past the grace period they are killed.
  for (auto& w : workers_) {
    if (w.remote_pid <= 0) continue;
    while (!poll_worker(w) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
    if (!w.remote_status) {
      log().warn("worker {} (pid {}) did not stop within {} ms; killing it", w.id, w.remote_pid, kStopGrace.count());
      kill_worker(w, SIGKILL);
    }
  }
  pool_.reset();  // QUIT: the pool reaps what is left and exits
  workers_.clear();
  // No worker exists now: claims they left are void.
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    const ipc::SlotWord w = ring_->word(s);
    if (w.state == ipc::SlotState::kClaimed) ring_->transition(s, w, {ipc::SlotState::kFree, -1, w.ticket});
  }
  hdr.shutdown.store(0, std::memory_order_release);
}

void LoaderCore::shutdown() noexcept {
  try {
    if (active_) abandon_epoch();
  } catch (const std::exception& e) {
    log().warn("abandoning the epoch at shutdown: {}", e.what());
  }
  stop_workers();
}

int LoaderCore::worker_main(int id) {
  WorkerEnv env;
  env.ring = ring_.get();
  env.layout = &layout_;
  env.map_ds = map_ds_.get();
  env.stream_ds = stream_ds_.get();
  env.on_error = opts_.on_error;
  env.num_workers = static_cast<int>(opts_.num_workers);
  env.seed = seed_;
  env.parent_pid = parent_pid_;
  env.init_fn = opts_.worker_init_fn;
  return run_worker(env, id);
}

void LoaderCore::check_workers() {
  for (auto& w : workers_) {
    const auto st = poll_worker(w);
    if (!st) continue;
    const int pid = w.pid();
    if (!st->signaled && st->value == kInitFailedExit) {
      throw WorkerError("worker " + std::to_string(w.id) + " (pid " + std::to_string(pid) +
                        ") failed in on_worker_start / worker_init_fn (its error is logged above); not restarting it");
    }
    // The sample it was filling, read before the batch is requeued and claimed again.
    for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
      const ipc::SlotWord sw = ring_->word(s);
      if (sw.state != ipc::SlotState::kClaimed || sw.worker != w.id) continue;
      const int64_t p = ring_->slot(s).progress.exchange(-1, std::memory_order_relaxed);
      if (p >= 0) culprits_[s].push_back(p);
    }
    const auto back = ring_->give_back(w.id, static_cast<uint32_t>(opts_.max_retries));
    std::vector<uint32_t> slots = back.requeued;
    slots.insert(slots.end(), back.held.begin(), back.held.end());
    std::string what;
    for (uint32_t s : slots) what += (what.empty() ? "" : "; ") + describe_task(s) + describe_culprits(s);
    log().warn("worker {} (pid {}) {}{}; {}", w.id, pid, st->describe(),
               what.empty() ? std::string(" while idle") : " while filling " + what,
               stream() ? "a stream dataset cannot replay its shard" : "replacing it");
    if (stream()) {
      throw WorkerError("worker " + std::to_string(w.id) + " (pid " + std::to_string(pid) + ") " + st->describe() +
                        " while reading a stream dataset; its shard's position is lost");
    }
    for (uint32_t s : back.held) give_up(s, pid, *st);
    ++stats_.worker_restarts;
    spawn_worker(w.id);
  }
}

std::string LoaderCore::describe_culprits(uint32_t s) const {
  if (culprits_[s].empty()) return {};
  std::vector<int64_t> u = culprits_[s];
  std::sort(u.begin(), u.end());
  u.erase(std::unique(u.begin(), u.end()), u.end());
  std::string d = ", in sample";
  d += u.size() > 1 ? "s " : " ";
  for (size_t i = 0; i < u.size() && i < 8; ++i) {
    std::string src;
    try {
      if (map_ds_) src = map_ds_->source(static_cast<size_t>(u[i]));
    } catch (...) {
    }
    d += (i ? ", " : "") + std::to_string(u[i]) + (src.empty() ? "" : " (" + src + ")");
  }
  return d;
}

void LoaderCore::give_up(uint32_t s, int pid, const ipc::ExitStatus& st) {
  ipc::SlotHeader& sh = ring_->slot(s);
  const bool timeout = timed_out_[s] != 0;
  std::string msg = describe_task(s);
  if (timeout) {
    msg += " was not filled within timeout=" + std::to_string(opts_.timeout.count()) + " ms by " +
           std::to_string(sh.attempts) + " workers in turn (the last, pid " + std::to_string(pid) + ", was killed)" +
           (culprits_[s].empty() ? std::string("; the samples that hang are among its indices")
                                 : "; they hung" + describe_culprits(s));
  } else {
    msg += " took down " + std::to_string(sh.attempts) + " workers (max_retries=" + std::to_string(opts_.max_retries) +
           "); the last, pid " + std::to_string(pid) + ", " + st.describe() +
           (culprits_[s].empty() ? std::string() : "; they died" + describe_culprits(s));
  }
  log().error("{}", msg);
  const std::span<const int64_t> task(ring_->indices(s).data(), sh.count);
  if (opts_.on_error == OnError::kSkip && !culprits_[s].empty()) {
    // Drop only the samples the workers died in; the rest of the batch is retried.
    std::vector<int64_t> keep;
    for (int64_t i : task) {
      if (std::find(culprits_[s].begin(), culprits_[s].end(), i) == culprits_[s].end()) keep.push_back(i);
      else pending_skips_[s].push_back({i, map_ds_ ? map_ds_->source(static_cast<size_t>(i)) : "", msg});
    }
    culprits_[s].clear();
    if (!keep.empty()) {
      std::copy(keep.begin(), keep.end(), ring_->indices(s).begin());
      sh.count = static_cast<uint32_t>(keep.size());
      sh.attempts = 0;
      timed_out_[s] = 0;
      const ipc::SlotWord w = ring_->word(s);
      ring_->transition(s, w, {ipc::SlotState::kQueued, -1, w.ticket});
      ring_->ring().tasks.post();
      return;
    }
  }
  give_up_batch(layout_, ring_->payload(s), task, timeout ? ErrorKind::kTimeout : ErrorKind::kWorker, msg,
                opts_.on_error);
  const ipc::SlotWord w = ring_->word(s);
  ring_->transition(s, w, {ipc::SlotState::kFilled, -1, w.ticket});
}

void LoaderCore::check_timeouts() {
  if (opts_.timeout.count() <= 0 || workers_.empty()) return;
  const int64_t now = ipc::monotonic_ns();
  const int64_t limit = std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.timeout).count();
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    const ipc::SlotWord w = ring_->word(s);
    if (w.state != ipc::SlotState::kClaimed || slot_seq_[s] < 0) continue;
    if (now - ring_->slot(s).claimed_at_ns.load(std::memory_order_acquire) < limit) continue;
    for (auto& wk : workers_) {
      if (wk.id == w.worker && wk.running()) {
        log().warn("worker {} (pid {}) has not filled {} within timeout={} ms; killing it", wk.id, wk.pid(),
                   describe_task(s), opts_.timeout.count());
        timed_out_[s] = 1;
        kill_worker(wk, SIGKILL);
      }
    }
  }
}

// ---------------------------------------------------------------- epochs

void LoaderCore::start_epoch() {
  if (active_) abandon_epoch();
  epoch_ = next_epoch_;
  next_epoch_ = epoch_ + 1;
  ++generation_;
  ring_->ring().generation.store(generation_, std::memory_order_release);
  queued_ = delivered_ = 0;
  std::fill(slot_seq_.begin(), slot_seq_.end(), -1);
  std::fill(timed_out_.begin(), timed_out_.end(), 0);
  if (map_ds_) {
    BatchPlan full = batch_sampler_->batches({seed_, epoch_});
    epoch_batches_ = full.size();
    done_.assign(epoch_batches_, 0);
    plan_seq_.clear();
    if (resume_done_ && resume_epoch_ != epoch_) resume_done_.reset();  // set_epoch moved away from it
    if (resume_done_) {
      if (resume_done_->size() != epoch_batches_) {
        throw ConfigError("the saved state has " + std::to_string(resume_done_->size()) + " batches in epoch " +
                          std::to_string(epoch_) + " but this loader makes " + std::to_string(epoch_batches_) +
                          " (batch_size, drop_last or sampler differ)");
      }
      done_ = *resume_done_;
      resume_done_.reset();
      plan_ = BatchPlan{};
      for (size_t b = 0; b < full.size(); ++b) {
        if (done_[b]) continue;
        plan_.add(full.batch(b));
        plan_seq_.push_back(b);
      }
    } else {
      plan_ = std::move(full);
      for (size_t b = 0; b < plan_.size(); ++b) plan_seq_.push_back(b);
    }
    const auto n = static_cast<int64_t>(map_ds_->size());
    for (int64_t i : plan_.indices) {
      if (i < 0 || i >= n) {
        throw ConfigError("the sampler produced index " + std::to_string(i) + " but the dataset has " + std::to_string(n) +
                          " samples");
      }
    }
    for (size_t b = 0; b < plan_.size(); ++b) {
      if (plan_.batch(b).size() > batch_capacity_) {
        throw ConfigError("batch_sampler made a batch of " + std::to_string(plan_.batch(b).size()) +
                          " but its max_batch_size() is " + std::to_string(batch_capacity_));
      }
    }
  }
  exhausted_.assign(std::max<size_t>(1, opts_.num_workers), 0);
  round_robin_ = 0;
  if (opts_.num_workers == 0) {
    datasets::WorkerInfo info{0, 1, seed_, static_cast<int>(::getpid())};
    if (!inproc_started_) {
      inproc_started_ = true;
      if (map_ds_) map_ds_->on_worker_start(info);
      if (opts_.worker_init_fn) opts_.worker_init_fn(info);
    }
    if (stream_ds_) stream_ds_->start(info, epoch_);
    inline_exhausted_ = false;
    inline_pos_ = 0;
  } else if (workers_.empty()) {
    start_workers();
  }
  active_ = true;
  ++stats_.epochs;
  refill();
}

void LoaderCore::abandon_epoch() {
  ++generation_;  // workers drop the old tasks at their next sample boundary
  ring_->ring().generation.store(generation_, std::memory_order_release);
  std::fill(slot_seq_.begin(), slot_seq_.end(), -1);
  const auto started = std::chrono::steady_clock::now();
  const auto patience = opts_.timeout.count() > 0 ? std::chrono::milliseconds(opts_.timeout) : std::chrono::milliseconds(30000);
  for (;;) {
    bool pending = false;
    for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
      const ipc::SlotWord w = ring_->word(s);
      if (w.state == ipc::SlotState::kQueued || w.state == ipc::SlotState::kFilled) {
        if (!ring_->transition(s, w, {ipc::SlotState::kFree, -1, w.ticket})) pending = true;
      } else if (w.state == ipc::SlotState::kClaimed) {
        pending = true;
        if (std::chrono::steady_clock::now() - started > patience) {
          for (auto& wk : workers_) {
            if (wk.id == w.worker) kill_worker(wk, SIGKILL);
          }
        }
      }
    }
    if (!pending || workers_.empty()) break;
    (void)ring_->ring().filled.wait_for(20ms);
    try {
      check_workers();
    } catch (const Error& e) {
      log().warn("while abandoning an epoch: {}", e.what());
    }
  }
  active_ = false;
  if (!opts_.persistent_workers) stop_workers();
}

void LoaderCore::end_epoch() {
  active_ = false;
  if (!opts_.persistent_workers) stop_workers();
}

void LoaderCore::refill() {
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    if (map_ds_ && queued_ >= plan_.size()) return;
    if (ring_->word(s).state != ipc::SlotState::kFree) continue;
    int32_t target = -1;
    uint32_t count = 0;
    if (map_ds_) {
      const auto b = plan_.batch(queued_);
      std::copy(b.begin(), b.end(), ring_->indices(s).begin());
      count = static_cast<uint32_t>(b.size());
    } else {
      const size_t n = exhausted_.size();
      size_t k = 0;
      while (k < n && exhausted_[(round_robin_ + k) % n]) ++k;
      if (k == n) return;  // every shard has ended
      target = static_cast<int32_t>((round_robin_ + k) % n);
      round_robin_ = (round_robin_ + k + 1) % n;
      count = static_cast<uint32_t>(opts_.batch_size);
    }
    ipc::SlotHeader& sh = ring_->slot(s);
    sh.seq = map_ds_ ? plan_seq_[queued_] : queued_;
    sh.generation = generation_;
    sh.epoch = epoch_;
    sh.seed = seed_;
    sh.count = count;
    sh.target_worker = target;
    sh.attempts = 0;
    sh.flags = 0;
    sh.progress.store(-1, std::memory_order_relaxed);
    timed_out_[s] = 0;
    culprits_[s].clear();
    pending_skips_[s].clear();
    slot_seq_[s] = static_cast<int64_t>(queued_);
    ++queued_;
    ring_->queue(s);
  }
}

std::string LoaderCore::describe_task(uint32_t s) const {
  const ipc::SlotHeader& sh = ring_->slot(s);
  if (stream()) return "batch " + std::to_string(sh.seq) + " (stream shard of worker " + std::to_string(sh.target_worker) + ")";
  const auto idx = std::span<const int64_t>(ring_->indices(s).data(), sh.count);
  std::string d = "batch " + std::to_string(sh.seq) + " (indices " + join_indices(idx);
  if (map_ds_ && !idx.empty()) {
    std::string src;
    try {
      src = map_ds_->source(static_cast<size_t>(idx[0]));
    } catch (...) {
    }
    if (!src.empty()) d += "; first file " + src;
  }
  return d + ")";
}

void LoaderCore::fill_inline(uint32_t s) {
  const ipc::SlotWord w = ring_->word(s);
  if (w.state != ipc::SlotState::kQueued || !ring_->transition(s, w, {ipc::SlotState::kClaimed, 0, w.ticket})) return;
  const ipc::SlotHeader& sh = ring_->slot(s);
  FillContext ctx;
  ctx.epoch = sh.epoch;
  ctx.seed = sh.seed;
  ctx.worker_id = -1;
  ctx.pid = static_cast<int>(::getpid());
  ctx.on_error = opts_.on_error;
  if (map_ds_) {
    fill_batch(*map_ds_, layout_, ring_->payload(s), std::span<const int64_t>(ring_->indices(s).data(), sh.count), ctx);
  } else {
    fill_stream_batch(*stream_ds_, layout_, ring_->payload(s), sh.count, ctx, inline_exhausted_, inline_pos_);
  }
  ring_->mark_filled(s, 0);
  (void)ring_->ring().filled.try_wait();  // nobody waits in-process: keep the count at zero
}

std::optional<uint32_t> LoaderCore::pick_ready() {
  std::optional<uint32_t> best;
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    if (slot_seq_[s] < 0) continue;
    if (opts_.in_order) {
      if (slot_seq_[s] == static_cast<int64_t>(delivered_)) return s;
    } else if (ring_->word(s).state == ipc::SlotState::kFilled) {
      if (!best || slot_seq_[s] < slot_seq_[*best]) best = s;
    }
  }
  return best;
}

void LoaderCore::throw_held_error() const {
  throw ConfigError("all " + std::to_string(ring_->num_slots()) +
                    " ring slots are held by Batches the training loop has not released (num_workers=" +
                    std::to_string(opts_.num_workers) + ", prefetch_factor=" + std::to_string(opts_.prefetch_factor) +
                    "); release one (let it go out of scope or call Batch::release()) before asking for the next, "
                    "or raise prefetch_factor");
}

std::optional<Batch> LoaderCore::next() {
  if (!active_) start_epoch();
  for (;;) {
    const bool all_planned = map_ds_ ? delivered_ >= plan_.size()
                                     : delivered_ >= queued_ && std::all_of(exhausted_.begin(), exhausted_.end(),
                                                                            [](uint8_t e) { return e != 0; });
    if (all_planned) {
      end_epoch();
      return std::nullopt;
    }
    refill();
    // Even when batches are always ready, look at the workers every kPoll: a death is
    // noticed (and its batch requeued) within that, not only when the loop has to wait.
    if (!workers_.empty() && ipc::monotonic_ns() - last_check_ns_ > std::chrono::nanoseconds(kPoll).count()) {
      last_check_ns_ = ipc::monotonic_ns();
      check_workers();
      check_timeouts();
    }
    std::optional<uint32_t> s = pick_ready();
    if (s && ring_->word(*s).state == ipc::SlotState::kFilled) {
      if (auto b = hand_out(*s)) return b;
      continue;
    }
    bool in_flight = false;
    std::optional<uint32_t> lowest_queued;
    for (uint32_t i = 0; i < ring_->num_slots(); ++i) {
      if (slot_seq_[i] < 0) continue;
      in_flight = true;
      if (ring_->word(i).state == ipc::SlotState::kQueued && (!lowest_queued || slot_seq_[i] < slot_seq_[*lowest_queued])) {
        lowest_queued = i;
      }
    }
    if (opts_.in_order ? !s : !in_flight) throw_held_error();
    if (opts_.num_workers == 0) {
      fill_inline(opts_.in_order ? *s : *lowest_queued);
      continue;
    }
    (void)ring_->ring().filled.wait_for(kPoll);
    check_workers();
    check_timeouts();
  }
}

std::optional<Batch> LoaderCore::hand_out(uint32_t s) {
  std::byte* payload = ring_->payload(s);
  const BatchMeta* meta = layout_.meta(payload);
  const ipc::SlotHeader& sh = ring_->slot(s);
  if (!ring_->hand_out(s)) throw std::logic_error("hand_out: slot is not FILLED");
  slot_seq_[s] = -1;
  ++delivered_;
  if (map_ds_ && sh.seq < done_.size()) done_[sh.seq] = 1;
  std::vector<SkippedSample> skipped = std::move(pending_skips_[s]);
  pending_skips_[s].clear();
  for (const auto& k : skipped) skipped_.push_back(k);
  for (uint32_t k = 0; k < meta->num_skipped; ++k) {
    const SkipRecord& r = layout_.skips(payload)[k];
    skipped.push_back({r.index, r.path, r.reason});
    skipped_.push_back(skipped.back());
    log().info("skipped sample {} ({}): {}", r.index, r.path, r.reason);
  }
  if (stream() && meta->end_of_stream && sh.target_worker >= 0) exhausted_[static_cast<size_t>(sh.target_worker)] = 1;
  if (meta->status == BatchStatus::kError) {
    const std::string type = meta->error_type[0] ? meta->error_type : "unknown";
    std::string msg = "sample " + std::to_string(meta->error_index);
    if (meta->error_path[0]) msg += " (" + std::string(meta->error_path) + ")";
    msg += " of batch " + std::to_string(sh.seq) + " raised " + type + " in " +
           (opts_.num_workers ? "worker pid " + std::to_string(meta->error_pid) : std::string("the main process")) +
           ": " + meta->error_message;
    const ErrorKind kind = meta->error_kind;
    const std::string given_up = meta->error_message;
    const int64_t index = meta->error_index;
    const std::string path = meta->error_path;
    std::vector<int64_t> task(ring_->indices(s).begin(), ring_->indices(s).begin() + sh.count);
    std::vector<int64_t> culprits = std::move(culprits_[s]);
    culprits_[s].clear();
    ring_->release(s);
    if (kind == ErrorKind::kTimeout) throw TimeoutError(given_up);
    if (kind == ErrorKind::kWorker) throw BatchError(given_up, std::move(task), std::move(culprits));
    throw SampleError(msg, index, path, type);
  }
  const bool short_stream_batch = stream() && opts_.drop_last && meta->count < opts_.batch_size;
  if (meta->count == 0 || short_stream_batch) {
    ring_->release(s);
    return std::nullopt;
  }
  Batch b;
  b.core_ = shared_from_this();
  b.slot_ = s;
  b.count_ = meta->count;
  b.indices_ = layout_.delivered(payload);
  b.payload_ = payload;
  b.seq_ = sh.seq;
  b.epoch_ = sh.epoch;
  b.skipped_ = std::move(skipped);
  ++stats_.batches;
  stats_.samples += meta->count;
  return b;
}

// ---------------------------------------------------------------- state

int LoaderCore::rank() const {
  const Sampler* s = opts_.sampler.get();
  if (const auto* d = dynamic_cast<const DistributedSampler*>(s)) return d->rank();
  return 0;
}

int LoaderCore::world_size() const {
  if (const auto* d = dynamic_cast<const DistributedSampler*>(opts_.sampler.get())) return d->world_size();
  return 1;
}

std::string LoaderCore::dataset_fingerprint() const {
  // size, schema and the dataset's own fingerprint, hashed (FNV-1a 64).
  std::string text = std::to_string(map_ds_->size());
  for (const auto& f : schema_.fields) {
    text += "|" + f.name + ":" + datasets::dtype_name(f.dtype) + (f.variable ? "*" : "");
    for (int64_t d : f.shape) text += "," + std::to_string(d);
  }
  text += "|" + map_ds_->fingerprint();
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string LoaderCore::state() const {
  if (!map_ds_) throw ConfigError("state() needs a map-style dataset: a stream dataset keeps its own position");
  nlohmann::json j;
  j["format"] = "ringloader-state/1";
  j["seed"] = seed_;
  j["rank"] = rank();
  j["world_size"] = world_size();
  j["dataset"] = {{"size", map_ds_->size()}, {"fingerprint", dataset_fingerprint()}};
  j["batches_per_epoch"] = batch_sampler_->size();
  if (active_) {
    j["epoch"] = epoch_;
    // Batches already returned, as [first, last] ranges of the epoch's batch numbers.
    nlohmann::json ranges = nlohmann::json::array();
    for (size_t b = 0; b < done_.size();) {
      if (!done_[b]) {
        ++b;
        continue;
      }
      size_t e = b;
      while (e + 1 < done_.size() && done_[e + 1]) ++e;
      ranges.push_back({b, e});
      b = e + 1;
    }
    j["done"] = ranges;
  } else {
    j["epoch"] = next_epoch_;  // between epochs: the next one starts from its beginning
    j["done"] = nlohmann::json::array();
  }
  return j.dump();
}

void LoaderCore::load_state(const std::string& text) {
  if (!map_ds_) throw ConfigError("load_state() needs a map-style dataset");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("loader state is not valid JSON: ") + e.what());
  }
  try {
    if (j.at("format") != "ringloader-state/1") throw ConfigError("unknown loader state format " + j.at("format").dump());
    const auto& ds = j.at("dataset");
    const std::string fp = ds.at("fingerprint");
    if (fp != dataset_fingerprint() || ds.at("size").get<size_t>() != map_ds_->size()) {
      throw ConfigError("the saved state belongs to another dataset (" + std::to_string(ds.at("size").get<size_t>()) +
                        " samples, fingerprint " + fp + "); this one has " + std::to_string(map_ds_->size()) +
                        " samples, fingerprint " + dataset_fingerprint());
    }
    const int w = j.at("world_size"), r = j.at("rank");
    if (w != world_size()) {
      throw ConfigError("the saved state is from world size " + std::to_string(w) + ", this loader runs with " +
                        std::to_string(world_size()) +
                        "; resuming onto a different world size is not supported (each rank's position belongs to "
                        "its shard): finish the epoch on the old world size, or restart the epoch");
    }
    if (r != rank()) {
      throw ConfigError("the saved state is rank " + std::to_string(r) + "'s, this loader is rank " + std::to_string(rank()));
    }
    const uint64_t seed = j.at("seed");
    if (opts_.seed && *opts_.seed != seed) {
      throw ConfigError("the saved state has seed " + std::to_string(seed) + " but this loader was given seed=" +
                        std::to_string(*opts_.seed) + " (leave seed unset to take the saved one)");
    }
    if (j.at("batches_per_epoch").get<size_t>() != batch_sampler_->size()) {
      throw ConfigError("the saved state has " + j.at("batches_per_epoch").dump() + " batches per epoch, this loader " +
                        std::to_string(batch_sampler_->size()) + " (batch_size, drop_last or sampler differ)");
    }
    if (active_) abandon_epoch();
    seed_ = seed;
    next_epoch_ = j.at("epoch");
    resume_epoch_ = next_epoch_;
    std::vector<uint8_t> done(batch_sampler_->size(), 0);
    for (const auto& range : j.at("done")) {
      const size_t a = range.at(0), b = range.at(1);
      if (a > b || b >= done.size()) throw ConfigError("loader state has a bad batch range " + range.dump());
      for (size_t k = a; k <= b; ++k) done[k] = 1;
    }
    resume_done_ = std::move(done);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("loader state is missing or has a bad field: ") + e.what());
  }
}

}  // namespace ringloader::loader::detail
