#pragma once
// LoaderCore: the DataLoader's engine, shared by the DataLoader handle and every live Batch
// (so the ring stays mapped while a Batch exists). Runs in the main process; its worker_main()
// runs in forked workers on the inherited copy of this object.
//
// Thread-safety: start_epoch/next/shutdown from one thread; release_slot from any thread
// (a CAS on the slot's state word).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "ipc/fork_server.hpp"
#include "ipc/slot_ring.hpp"
#include "ipc/worker_process.hpp"
#include "loader/batch.hpp"
#include "loader/data_loader.hpp"
#include "loader/detail/slot_layout.hpp"

namespace ringloader::loader::detail {

class LoaderCore : public std::enable_shared_from_this<LoaderCore> {
 public:
  LoaderCore(std::shared_ptr<datasets::Dataset> map_ds, std::shared_ptr<datasets::IterableDataset> stream_ds,
             LoaderOptions options, std::optional<DatasetRecipe> recipe = std::nullopt);
  LoaderCore(const DatasetRecipe& recipe, LoaderOptions options);
  ~LoaderCore();

  void start_epoch();
  std::optional<Batch> next();
  /// Abandons the epoch and stops the workers. Idempotent.
  void shutdown() noexcept;
  void release_slot(uint32_t slot) noexcept { ring_->release(slot); }

  const SlotLayout& layout() const { return layout_; }
  size_t size() const;
  void set_epoch(uint64_t e) { next_epoch_ = e; }
  uint64_t epoch() const { return epoch_; }
  uint64_t seed() const { return seed_; }
  size_t num_slots() const { return ring_->num_slots(); }
  size_t ring_bytes() const { return ring_->region_size(); }
  std::vector<int> worker_pids() const;
  const std::vector<SkippedSample>& skipped() const { return skipped_; }
  LoaderStats stats() const { return stats_; }
  std::string state() const;
  void load_state(const std::string& json);

 private:
  /// One worker: our child (kFork) or a fork-server pool's (remote_pid).
  struct Worker {
    ipc::WorkerProcess proc;  ///< kFork: reaped on destruction
    int id = 0;
    pid_t remote_pid = -1;                       ///< kForkServer: the pool's child
    std::optional<ipc::ExitStatus> remote_status;  ///< kForkServer: reported by the pool
    pid_t pid() const { return remote_pid > 0 ? remote_pid : proc.pid(); }
    bool running() const { return remote_pid > 0 ? !remote_status : proc.running(); }
  };
  std::optional<ipc::ExitStatus> poll_worker(Worker& w);
  void kill_worker(Worker& w, int sig);

  bool stream() const { return stream_ds_ != nullptr; }
  size_t workers_wanted() const { return opts_.num_workers; }
  void start_workers();
  void spawn_worker(int id);
  void stop_workers() noexcept;
  void abandon_epoch();
  void end_epoch();
  /// Queues planned batches into FREE slots.
  void refill();
  /// Reaps dead workers: gives their batches back, replaces them, enforces max_retries.
  void check_workers();
  /// Kills workers whose claim is older than `timeout`.
  void check_timeouts();
  /// In-process (num_workers = 0): fills slot `s` now.
  void fill_inline(uint32_t s);
  std::optional<uint32_t> pick_ready();
  [[noreturn]] void throw_held_error() const;
  std::string describe_task(uint32_t s) const;
  std::string dataset_fingerprint() const;
  int rank() const;
  int world_size() const;
  std::string describe_culprits(uint32_t s) const;
  /// A batch that reached max_retries: its error, or (skip) a retry without the culprits.
  void give_up(uint32_t s, int pid, const ipc::ExitStatus& st);
  /// FILLED -> HANDED_OUT: the Batch, nothing for an empty batch; throws a dataset error.
  std::optional<Batch> hand_out(uint32_t s);

  int worker_main(int id);

  // Member order is teardown order (reverse): workers die before the ring is unmapped.
  LoaderOptions opts_;
  std::shared_ptr<datasets::Dataset> map_ds_;
  std::shared_ptr<datasets::IterableDataset> stream_ds_;
  std::shared_ptr<BatchSampler> batch_sampler_;
  datasets::Schema schema_;
  SlotLayout layout_;
  uint64_t seed_ = 0;
  size_t batch_capacity_ = 0;
  std::unique_ptr<ipc::SlotRing> ring_;
  std::optional<DatasetRecipe> recipe_;
  std::unique_ptr<ipc::PoolClient> pool_;  ///< kForkServer: the pool that forks our workers
  std::vector<Worker> workers_;
  int parent_pid_ = 0;

  // Iteration state (main process).
  bool active_ = false;
  bool inproc_started_ = false;
  uint64_t generation_ = 0;
  uint64_t next_epoch_ = 0;
  uint64_t epoch_ = 0;
  BatchPlan plan_;                 ///< this epoch's batches still to queue (all, or those a resume left)
  std::vector<uint64_t> plan_seq_;  ///< plan_ batch b is batch plan_seq_[b] of the full epoch
  size_t epoch_batches_ = 0;        ///< batches in the full epoch
  std::vector<uint8_t> done_;       ///< by full-epoch seq: returned (or raised) this epoch
  std::optional<std::vector<uint8_t>> resume_done_;  ///< from load_state, for epoch resume_epoch_
  uint64_t resume_epoch_ = 0;
  uint64_t queued_ = 0;     ///< batches queued so far this epoch (= next seq to queue)
  uint64_t delivered_ = 0;  ///< batches consumed (delivered, raised, or empty) this epoch
  std::vector<int64_t> slot_seq_;  ///< seq of this epoch's task in slot i, -1 if none
  std::vector<uint8_t> timed_out_;  ///< slot i's last retry was a timeout kill
  std::vector<std::vector<int64_t>> culprits_;  ///< slot i: the sample each dead worker was filling
  std::vector<std::vector<SkippedSample>> pending_skips_;  ///< slot i: samples dropped by the main process
  // Stream datasets.
  std::vector<uint8_t> exhausted_;  ///< per worker
  size_t round_robin_ = 0;
  bool inline_exhausted_ = false;  ///< in-process stream state
  int64_t inline_pos_ = 0;

  std::vector<SkippedSample> skipped_;
  LoaderStats stats_;
  bool warned_threads_ = false;
  int64_t last_check_ns_ = 0;  ///< when check_workers last ran (it runs at least every kPoll)
};

}  // namespace ringloader::loader::detail
