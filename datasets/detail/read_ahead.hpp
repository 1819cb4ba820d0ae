#pragma once
// ReadAhead: a few threads that read the files of upcoming samples while the process decodes
// the current one. Reading is IO-bound and decoding CPU-bound, so on slow or network storage
// the reads overlap the decodes instead of idling the core.
//
//   detail::ReadAhead ra(4, 64, 256 << 20, [&](int64_t i) { return read_file(path(i), limit); });
//   ra.hint(batch_indices);                 // Dataset::prefetch
//   if (auto bytes = ra.take(i)) use(*bytes); else use(read_file(path(i), limit));
//
// Created in the process that uses it, after fork (Dataset::on_worker_start): its threads do
// not survive a fork. The destructor stops and joins them. Thread-safe.
//
// Threads the system refuses (EAGAIN: RLIMIT_NPROC / `ulimit -u`, the kernel's thread limit,
// no memory for a stack) are not an error: it reads ahead with those that started, and with
// none hint() does nothing and take() returns nullopt, so the caller reads in its own thread.
// started_threads() and start_failure() say so, for the caller to report.
//
// Only while reads are slow: handing a read to a thread costs two wake-ups (on a VM about
// 40-50 us each, and CPU the decode needs), more than a read from the page cache takes. Every
// read is timed - the threads' own and the caller's, reported with note_read() - and once the
// last kFastRun reads were all under kSlowRead and their running mean is under kBypassBelow,
// hint() queues nothing, take() returns nullopt and the caller reads in its own thread. One
// slow read (storage went cold, is remote, or a mapped shard faults in its next MiB), or a mean
// over kResumeAbove, and the threads read ahead again.
//
// Memory is bounded: at most `max_entries` files hinted and not yet taken, and readers stop
// starting new reads while the finished, untaken ones hold more than `max_bytes`. When full,
// the oldest untaken entries (hints that were never asked for) are dropped.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ringloader::datasets::detail {

class ReadAhead {
 public:
  /// Reads the bytes of sample `index`; may throw (the exception is handed to take()).
  using ReadFn = std::function<std::vector<uint8_t>(int64_t index)>;

  ReadAhead(int threads, size_t max_entries, size_t max_bytes, ReadFn read);
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;
  ~ReadAhead();

  /// Start reading these indices, in this order. Indices already pending are skipped.
  void hint(std::span<const int64_t> indices);
  /// The bytes of `index` if they were hinted: waits for a read in progress, rethrows its
  /// exception. nullopt if not hinted (or not started yet: the caller reads it itself rather
  /// than queue behind other reads).
  std::optional<std::vector<uint8_t>> take(int64_t index);

  /// Entries held now (queued, reading or read); for tests.
  size_t pending() const;

  /// The caller read a file itself (take() gave nullopt): how long it took, for the mean.
  void note_read(std::chrono::nanoseconds took);
  /// Times the caller's own read for note_read(), also when the read throws:
  ///   { ReadAhead::TimedRead t(ra); bytes = read_file(...); }
  class TimedRead {
   public:
    explicit TimedRead(ReadAhead& ra) : ra_(ra) {}
    TimedRead(const TimedRead&) = delete;
    TimedRead& operator=(const TimedRead&) = delete;
    ~TimedRead() { ra_.note_read(std::chrono::steady_clock::now() - t0_); }

   private:
    ReadAhead& ra_;
    const std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  };
  /// True while reads are fast enough that hint() leaves them to the caller.
  bool bypassing() const { return bypass_.load(std::memory_order_relaxed); }
  /// Mean (exponentially weighted, 1/8) of the last reads; starts at kResumeAbove.
  std::chrono::nanoseconds mean_read() const { return std::chrono::nanoseconds(mean_ns_.load(std::memory_order_relaxed)); }
  static constexpr std::chrono::nanoseconds kBypassBelow{100'000};
  static constexpr std::chrono::nanoseconds kResumeAbove{400'000};
  static constexpr std::chrono::nanoseconds kSlowRead{1'000'000};
  static constexpr int64_t kFastRun = 256;

  /// Reader threads running: the number asked for, or fewer (maybe 0) if the system refused
  /// some. Fixed after construction.
  int started_threads() const { return static_cast<int>(threads_.size()); }
  /// "" if every thread started, else "started 3 of 16 reader threads; starting the 4th
  /// failed: Resource temporarily unavailable (...)". Fixed after construction.
  const std::string& start_failure() const { return start_failure_; }

 private:
  enum class State : uint8_t { kQueued, kReading, kDone };
  struct Entry {
    State state = State::kQueued;
    uint64_t seq = 0;  ///< tells a re-hinted index from the entry an old order_ record names
    std::vector<uint8_t> bytes;  ///< valid in kDone
    std::exception_ptr error;    ///< valid in kDone, if the read threw
  };

  void run();
  bool evict_one();  // mu_ held; false if nothing could be dropped
  bool queue_locked(std::span<const int64_t> indices);  // mu_ held; true if any was queued

  const size_t max_entries_;
  const size_t max_bytes_;
  const ReadFn read_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  ///< queue_ gained an entry, bytes were freed, or stop_
  std::condition_variable done_cv_;  ///< an entry reached kDone
  std::unordered_map<int64_t, Entry> entries_;      // guarded by mu_
  std::deque<int64_t> queue_;                       ///< kQueued entries, in hint order
  std::vector<int64_t> deferred_;                   ///< the last hint made while bypassing, not yet taken
  std::deque<std::pair<int64_t, uint64_t>> order_;  ///< (index, seq) in hint order, lazily pruned
  size_t bytes_held_ = 0;                           ///< sum of bytes of kDone entries
  uint64_t next_seq_ = 0;
  bool stop_ = false;
  std::atomic<int64_t> mean_ns_{kResumeAbove.count()};
  std::atomic<bool> bypass_{false};
  std::atomic<int64_t> fast_run_{0};  ///< reads since the last one over kSlowRead
  std::string start_failure_;         ///< set in the constructor only
  std::vector<std::thread> threads_;  // last member: started after, joined before the rest dies
};

}  // namespace ringloader::datasets::detail
