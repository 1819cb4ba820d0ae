#include "loader/detail/loader_core.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "core/error.hpp"
#include "core/child_setup.hpp"
#include "core/fnv.hpp"
#include "loader/distributed.hpp"
#include "loader/detail/batch_error.hpp"
#include "loader/detail/diagnostics.hpp"
#include "loader/detail/log.hpp"
#include "loader/detail/registry.hpp"
#include "loader/detail/ring_factory.hpp"
#include "loader/detail/worker_main.hpp"

namespace ringloader::loader::detail {
namespace {

using namespace std::chrono_literals;

constexpr auto kPoll = 100ms;             ///< longest the main process waits before supervising
constexpr auto kAbandonPatience = 2000ms;  ///< persistent workers get this long to drop an abandoned epoch

int64_t ns(std::chrono::nanoseconds d) { return d.count(); }

int rank_of(const LoaderOptions& o) { return o.sampler ? o.sampler->rank() : 0; }

int world_of(const LoaderOptions& o) { return o.sampler ? o.sampler->world_size() : 1; }

ResolvedOptions resolve(const std::shared_ptr<datasets::Dataset>& map_ds,
                        const std::shared_ptr<datasets::IterableDataset>& stream_ds, const LoaderOptions& o,
                        const std::optional<DatasetRecipe>& recipe) {
  return resolve_options(o, map_ds.get(), stream_ds != nullptr, recipe);
}

/// What a saved state must match to be resumed here: size, schema and the dataset's own
/// fingerprint, hashed.
std::string dataset_fingerprint(const datasets::Dataset& ds, const datasets::Schema& schema) {
  std::string text = std::to_string(ds.size());
  for (const auto& f : schema.fields) {
    text += "|" + f.name + ":" + datasets::dtype_name(f.dtype) + (f.variable ? "*" : "");
    for (int64_t d : f.shape) text += "," + std::to_string(d);
  }
  text += "|" + ds.fingerprint();
  return core::hex64(core::fnv1a64(text));
}

}  // namespace

LoaderCore::LoaderCore(std::shared_ptr<datasets::Dataset> map_ds, std::shared_ptr<datasets::IterableDataset> stream_ds,
                       LoaderOptions options, std::optional<DatasetRecipe> recipe)
    : opts_(resolve(map_ds, stream_ds, options, recipe)),
      map_ds_(std::move(map_ds)),
      stream_ds_(std::move(stream_ds)),
      recipe_(std::move(recipe)),
      schema_(map_ds_ ? map_ds_->schema() : stream_ds_->schema()),
      layout_((schema_.validate(), SlotLayout(schema_, opts_.batch_capacity))),
      ring_(make_ring(opts_, layout_)),
      plan_(opts_.batch_sampler, opts_.batch_capacity, opts_.seed,
            EpochPlan::Identity{map_ds_ ? map_ds_->size() : 0, map_ds_ ? dataset_fingerprint(*map_ds_, schema_) : std::string(),
                                rank_of(opts_.user), world_of(opts_.user)}) {
  const LoaderOptions& o = opts_.user;
  const size_t workers = o.num_workers;
  owner_pid_ = static_cast<int>(::getpid());
  owner_generation_ = core::fork_generation();
  slot_seq_.assign(ring_->num_slots(), -1);
  quiet_.assign(ring_->num_slots(), 0);
  wake_policy_ = WakePolicy(ring_->num_slots());
  recovery_ = std::make_unique<Recovery>(
      *ring_, layout_, opts_, [this](uint32_t s) { return describe_task(*ring_, s, stream(), map_ds_.get()); },
      [this](int64_t i) { return source_of(map_ds_.get(), i); });
  if (workers > 0) {
    std::unique_ptr<ipc::Launcher> launcher;
    if (o.start_method == StartMethod::kForkServer) {
      launcher = std::make_unique<ipc::SpawnerLauncher>(
          [this] {
            return spawner_request(recipe_->factory, recipe_->args, ring_->region_size(),
                                static_cast<int>(opts_.user.num_workers), plan_.seed(), opts_.user.on_error,
                                opts_.user.timeout);
          },
          ring_->region_fd());
    } else {
      launcher = std::make_unique<ipc::ForkLauncher>([this](int id) { return worker_main(id); });
    }
    PoolConfig pc;
    pc.num_workers = workers;
    pc.timeout = o.timeout;
    pc.warn_threaded_fork = o.start_method == StartMethod::kFork;
    pc.kill_stuck_claims = !stream();
    pc.describe_task = [this](uint32_t s) { return describe_task(*ring_, s, stream(), map_ds_.get()); };
    pool_ = std::make_unique<WorkerPool>(*ring_, std::span<WorkerRecord>(worker_records(*ring_), workers), std::move(launcher), pc);
  }
  log().debug("ring: {} slots x {} bytes ({} total), seed {}", ring_->num_slots(), layout_.payload_bytes(),
              ring_->region_size(), plan_.seed());
}

LoaderCore::LoaderCore(const DatasetRecipe& recipe, LoaderOptions options)
    : LoaderCore(make_registered_dataset(recipe.factory, recipe.args), nullptr, std::move(options), recipe) {}

LoaderCore::~LoaderCore() { shutdown(); }

bool LoaderCore::mine() const { return owner_generation_ == core::fork_generation(); }

void LoaderCore::check_owner() const {
  if (mine()) return;
  throw ConfigError("this DataLoader belongs to process " + std::to_string(owner_pid_) + ": a forked child (pid " +
                    std::to_string(::getpid()) +
                    ") cannot iterate it, since its ring and workers are the parent's; build a loader in the child");
}

std::vector<int> LoaderCore::worker_pids() const { return pool_ ? pool_->pids() : std::vector<int>{}; }

LoaderStats LoaderCore::stats() const {
  LoaderStats s = stats_;
  if (pool_) {
    s.worker_restarts = pool_->restarts();
    s.worker_deaths = pool_->deaths();
    s.threaded_forks = pool_->threaded_forks();
  }
  return s;
}

void LoaderCore::release_slot(uint32_t slot) noexcept {
  if (mine()) ring_->release(slot);
}

void LoaderCore::interrupt() noexcept {
  interrupt_.store(true, std::memory_order_release);
  ring_->wake_main();
}

void LoaderCore::check_interrupt() {
  if (interrupt_.exchange(false, std::memory_order_acq_rel)) {
    throw Interrupted("DataLoader::next() was interrupted (DataLoader::interrupt()); the loader is still usable");
  }
  if (opts_.user.interrupt_check) opts_.user.interrupt_check();
}

int LoaderCore::worker_main(int id) {
  WorkerEnv env;
  env.ring = ring_.get();
  env.layout = &layout_;
  env.records = worker_records(*ring_);
  env.map_ds = map_ds_.get();
  env.stream_ds = stream_ds_.get();
  env.on_error = opts_.user.on_error;
  env.num_workers = static_cast<int>(opts_.user.num_workers);
  env.seed = plan_.seed();
  env.epoch = static_cast<int64_t>(plan_.epoch());  // forked now: the epoch being started (or run, on a respawn)
  env.parent_pid = owner_pid_;
  env.init_fn = opts_.user.worker_init_fn;
  env.timeout = opts_.user.timeout;
  return run_worker(env, id);
}

// ---------------------------------------------------------------- epochs

void LoaderCore::start_epoch() {
  check_owner();
  if (active_) abandon_epoch();
  plan_.begin();
  drop_tasks();
  queued_ = delivered_ = 0;
  exhausted_.assign(std::max<size_t>(1, opts_.user.num_workers), 0);
  round_robin_ = 0;
  if (!pool_) {
    datasets::WorkerInfo info{0, 1, plan_.seed(), static_cast<int>(::getpid()), static_cast<int64_t>(plan_.epoch())};
    if (!in_process_started_) {
      in_process_started_ = true;
      run_start_hooks(map_ds_.get(), opts_.user.worker_init_fn, info);
    }
    if (stream_ds_) stream_ds_->start(info, plan_.epoch());
    in_process_exhausted_ = false;
    in_process_pos_ = 0;
  } else if (!pool_->running()) {
    pool_->start();
  }
  active_ = true;
  ++stats_.epochs;
  refill();
}

void LoaderCore::drop_tasks() noexcept {
  (void)ring_->begin_generation();  // workers drop the old tasks at their next sample boundary
  std::fill(slot_seq_.begin(), slot_seq_.end(), -1);
  active_ = false;
}

void LoaderCore::abandon_epoch() noexcept {
  drop_tasks();
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) ring_->abandon(s);
  if (!pool_) return;
  if (!opts_.user.persistent_workers) {
    pool_->stop();  // frees every slot its workers held
    return;
  }
  pool_->drain_abandoned(kAbandonPatience);  // persistent workers stay
}

void LoaderCore::end_epoch() {
  active_ = false;
  // The next() that ends the epoch stays within `timeout` too.
  const auto timeout = opts_.user.timeout;
  if (pool_ && !opts_.user.persistent_workers) pool_->stop(true, timeout.count() > 0 ? timeout : std::chrono::milliseconds::max());
}

void LoaderCore::shutdown() noexcept {
  if (!mine()) return;  // a fork's copy: the ring and the workers are the creator's
  if (active_) drop_tasks();
  if (pool_) pool_->stop();  // bounded; frees every slot not handed out
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) ring_->abandon(s);
}

void LoaderCore::load_state(const std::string& json) {
  check_owner();
  if (!map_ds_) throw ConfigError("load_state() needs a map-style dataset");
  plan_.load_state(json, opts_.user.seed);
  if (active_) abandon_epoch();
}

void LoaderCore::reseed(uint64_t seed) {
  check_owner();
  if (opts_.user.seed) {
    throw ConfigError("reseed() is for a loader built without `seed`; this one was given seed=" +
                      std::to_string(*opts_.user.seed));
  }
  if (plan_.resuming()) throw ConfigError("reseed(): the next epoch resumes a loaded state, which keeps its saved seed");
  if (active_) abandon_epoch();  // its queued tasks carry the old seed
  plan_.reseed(seed);
}

// ---------------------------------------------------------------- the hand-out path

std::optional<uint32_t> LoaderCore::pick_ready() const {
  std::optional<uint32_t> best;
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    if (slot_seq_[s] < 0) continue;
    if (opts_.user.in_order) {
      if (slot_seq_[s] == static_cast<int64_t>(delivered_)) return s;
    } else if (ring_->word(s).state == ipc::SlotState::kFilled) {
      if (!best || slot_seq_[s] < slot_seq_[*best]) best = s;
    }
  }
  return best;
}

bool LoaderCore::ready_now() const {
  const auto s = pick_ready();
  return s && ring_->word(*s).state == ipc::SlotState::kFilled;
}

size_t LoaderCore::held_batches() const {
  size_t n = 0;
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) n += ring_->word(s).state == ipc::SlotState::kHandedOut ? 1 : 0;
  return n;
}

void LoaderCore::throw_timeout(int64_t waited_ns) {
  std::vector<uint32_t> awaited;
  for (uint32_t s = 0; s < ring_->num_slots(); ++s) {
    if (slot_seq_[s] < 0) continue;
    if (opts_.user.in_order && slot_seq_[s] != static_cast<int64_t>(delivered_)) continue;
    awaited.push_back(s);
  }
  ++stats_.timeouts;
  throw wait_timed_out(*ring_, awaited, stream(), map_ds_.get(), waited_ns, opts_.user, pool_->describe_workers());
}

bool LoaderCore::epoch_over() const {
  if (map_ds_) return delivered_ >= plan_.size();
  return delivered_ >= queued_ && std::all_of(exhausted_.begin(), exhausted_.end(), [](uint8_t e) { return e != 0; });
}

bool LoaderCore::all_held(std::optional<uint32_t> next_slot) const {
  if (opts_.user.in_order) return !next_slot;
  return std::none_of(slot_seq_.begin(), slot_seq_.end(), [](int64_t q) { return q >= 0; });
}

uint32_t LoaderCore::next_to_fill(std::optional<uint32_t> next_slot) const {
  if (opts_.user.in_order) return *next_slot;
  std::optional<uint32_t> lowest;  // out of order: the oldest queued task
  for (uint32_t i = 0; i < ring_->num_slots(); ++i) {
    if (slot_seq_[i] < 0 || ring_->word(i).state != ipc::SlotState::kQueued) continue;
    if (!lowest || slot_seq_[i] < slot_seq_[*lowest]) lowest = i;
  }
  return *lowest;
}

void LoaderCore::wait_for_workers(int64_t started, int64_t deadline) {
  const int64_t now = ipc::monotonic_ns();
  if (now >= deadline) throw_timeout(now - started);
  before_wait();
  (void)ring_->wait_for_fill([this] { return ready_now(); },
                             std::chrono::nanoseconds(std::min<int64_t>(ns(kPoll), deadline - now)));
  check_interrupt();
  supervise();
}

std::optional<Batch> LoaderCore::next() {
  check_owner();
  if (!active_) start_epoch();
  const int64_t started = ipc::monotonic_ns();
  const int64_t timeout = ns(opts_.user.timeout);
  const int64_t deadline = timeout > 0 && pool_ ? started + timeout : std::numeric_limits<int64_t>::max();
  for (;;) {
    check_interrupt();
    if (epoch_over()) {
      end_epoch();
      return std::nullopt;
    }
    refill();
    // Even when batches are always ready, look at the workers every kPoll: a death is
    // noticed (and its batch requeued) within that, not only when the loop has to wait.
    if (pool_ && ipc::monotonic_ns() - last_check_ns_ > ns(kPoll)) supervise();
    const std::optional<uint32_t> s = pick_ready();
    if (s && ring_->word(*s).state == ipc::SlotState::kFilled) {
      if (auto b = hand_out(*s)) return b;
      continue;  // an empty batch: look for the next
    }
    if (all_held(s)) throw all_slots_held(ring_->num_slots(), opts_.user);
    if (pool_) {
      wait_for_workers(started, deadline);
    } else {
      fill_in_process(next_to_fill(s));
    }
  }
}

std::optional<Batch> LoaderCore::hand_out(uint32_t s) {
  std::byte* payload = ring_->payload(s);
  const BatchMeta* meta = layout_.meta(payload);
  const TaskRecord& task = ring_->task<TaskRecord>(s);
  if (!ring_->hand_out(s)) throw std::logic_error("hand_out: slot is not FILLED");
  slot_seq_[s] = -1;
  ++delivered_;
  if (map_ds_) plan_.mark_done(task.seq);
  std::vector<SkippedSample> skipped = recovery_->take_skips(s);
  for (const auto& k : skipped) skipped_.push_back(k);
  for (uint32_t k = 0; k < meta->num_skipped; ++k) {
    const SkipRecord& r = layout_.skips(payload)[k];
    skipped.push_back({r.index, r.path, r.reason});
    skipped_.push_back(skipped.back());
    log().info("skipped sample {} ({}): {}", r.index, r.path, r.reason);
  }
  if (stream() && meta->end_of_stream && task.target_worker >= 0) exhausted_[static_cast<size_t>(task.target_worker)] = 1;
  if (meta->status == BatchStatus::kError) {
    BatchErrorContext ctx;
    ctx.seq = task.seq;
    ctx.indices.assign(ring_->indices(s).begin(), ring_->indices(s).begin() + task.count);
    ctx.culprits = recovery_->take_culprits(s);
    ctx.in_worker = opts_.user.num_workers > 0;
    const std::exception_ptr error = read_batch_error(*meta, std::move(ctx));
    ring_->release(s);
    std::rethrow_exception(error);
  }
  const bool short_stream_batch = stream() && opts_.user.drop_last && meta->count < opts_.user.batch_size;
  if (meta->count == 0 || short_stream_batch) {
    ring_->release(s);
    return std::nullopt;
  }
  Batch::Parts p;
  p.core = shared_from_this();
  p.slot = s;
  p.count = meta->count;
  p.indices = layout_.delivered(payload);
  p.payload = payload;
  p.seq = task.seq;
  p.epoch = task.epoch;
  p.skipped = std::move(skipped);
  ++stats_.batches;
  stats_.samples += meta->count;
  return Batch(std::move(p));
}

// ---------------------------------------------------------------- state

void LoaderCore::count_delivered(const Batch& b, bool delivered) {
  if (!b || !active_ || b.epoch() != plan_.epoch()) return;  // a batch of an abandoned epoch counts nowhere
  if (map_ds_) delivered ? plan_.mark_done(b.seq()) : plan_.mark_undone(b.seq());
  stats_.batches = delivered ? stats_.batches + 1 : stats_.batches - 1;
  stats_.samples = delivered ? stats_.samples + b.size() : stats_.samples - b.size();
}

}  // namespace ringloader::loader::detail
