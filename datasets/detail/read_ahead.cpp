#include "datasets/detail/read_ahead.hpp"

#include <algorithm>
#include <utility>

#include "core/error.hpp"

namespace ringloader::datasets::detail {

ReadAhead::ReadAhead(int threads, size_t max_entries, size_t max_bytes, ReadFn read)
    : max_entries_(std::max<size_t>(1, max_entries)), max_bytes_(max_bytes), read_(std::move(read)) {
  if (threads <= 0) throw ConfigError("reader_threads must be positive to read ahead, got " + std::to_string(threads));
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    try {
      threads_.emplace_back([this] { run(); });  // reserved: a throw leaves threads_ as it was
    } catch (const std::exception& e) {
      // std::system_error (EAGAIN) when the system refuses a thread, bad_alloc for its state.
      // Unwinding the constructor now would destroy joinable threads: std::terminate. Keep
      // those that started; the caller reads the rest itself.
      start_failure_ = "started " + std::to_string(i) + " of " + std::to_string(threads) + " reader threads; starting thread " +
                       std::to_string(i + 1) + " failed: " + e.what() +
                       " (a process or thread limit such as RLIMIT_NPROC / ulimit -u, or no memory for its stack)";
      break;
    }
  }
}

ReadAhead::~ReadAhead() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool ReadAhead::evict_one() {
  while (!order_.empty()) {
    const auto [index, seq] = order_.front();
    auto it = entries_.find(index);
    if (it == entries_.end() || it->second.seq != seq) {  // taken or re-hinted since
      order_.pop_front();
      continue;
    }
    if (it->second.state == State::kReading) return false;  // oldest is busy; keep the rest
    order_.pop_front();
    if (it->second.state == State::kQueued) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), index));
    } else {
      bytes_held_ -= it->second.bytes.size();
      work_cv_.notify_one();
    }
    entries_.erase(it);
    return true;
  }
  return false;
}

void ReadAhead::note_read(std::chrono::nanoseconds took) {
  int64_t mean = mean_ns_.load(std::memory_order_relaxed);
  int64_t next = 0;
  do {
    next = mean + (took.count() - mean) / 8;
  } while (!mean_ns_.compare_exchange_weak(mean, next, std::memory_order_relaxed));
  if (took > kSlowRead) {
    fast_run_.store(0, std::memory_order_relaxed);
    bypass_.store(false, std::memory_order_relaxed);
    return;
  }
  const int64_t run = fast_run_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (next < kBypassBelow.count() && run >= kFastRun) {
    bypass_.store(true, std::memory_order_relaxed);
  } else if (next > kResumeAbove.count()) {
    bypass_.store(false, std::memory_order_relaxed);
  }
}

void ReadAhead::hint(std::span<const int64_t> indices) {
  if (threads_.empty()) return;  // no reader would ever take them: take() returns nullopt
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (bypassing()) {
      // Reads are fast: the caller's own are cheaper. Keep the hint: should a read turn slow
      // before these are taken, take() hands the rest to the threads.
      deferred_.assign(indices.begin(), indices.end());
      return;
    }
    deferred_.clear();
    queued = queue_locked(indices);
  }
  if (queued) work_cv_.notify_all();
}

bool ReadAhead::queue_locked(std::span<const int64_t> indices) {
  bool queued = false;
  for (int64_t index : indices) {
    if (entries_.count(index) != 0) continue;
    if (entries_.size() >= max_entries_ && !evict_one()) break;
    const uint64_t seq = next_seq_++;
    entries_.emplace(index, Entry{State::kQueued, seq, {}, nullptr});
    queue_.push_back(index);
    order_.emplace_back(index, seq);
    queued = true;
  }
  return queued;
}

std::optional<std::vector<uint8_t>> ReadAhead::take(int64_t index) {
  std::unique_lock lock(mu_);
  if (!deferred_.empty()) {
    if (auto d = std::find(deferred_.begin(), deferred_.end(), index); d != deferred_.end()) deferred_.erase(d);
    if (!bypassing()) {  // a read turned slow since the hint: the threads read the rest ahead
      const std::vector<int64_t> rest = std::exchange(deferred_, {});
      if (queue_locked(rest)) work_cv_.notify_all();
    }
  }
  auto it = entries_.find(index);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.state == State::kQueued) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), index));
    entries_.erase(it);
    return std::nullopt;
  }
  done_cv_.wait(lock, [&] {
    it = entries_.find(index);
    return stop_ || it == entries_.end() || it->second.state == State::kDone;
  });
  if (it == entries_.end() || it->second.state != State::kDone) return std::nullopt;
  Entry e = std::move(it->second);
  entries_.erase(it);
  // Readers wait on work_cv_ for bytes only while the untaken ones hold max_bytes_; waking one
  // otherwise costs a wake-up per sample for nothing.
  const bool readers_paused = bytes_held_ >= max_bytes_ && !queue_.empty();
  bytes_held_ -= e.bytes.size();
  lock.unlock();
  if (readers_paused) work_cv_.notify_one();
  if (e.error) std::rethrow_exception(e.error);
  return std::move(e.bytes);
}

size_t ReadAhead::pending() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void ReadAhead::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && bytes_held_ < max_bytes_); });
    if (stop_) return;
    const int64_t index = queue_.front();
    queue_.pop_front();
    Entry& e = entries_.at(index);
    e.state = State::kReading;
    const uint64_t seq = e.seq;
    lock.unlock();
    std::vector<uint8_t> bytes;
    std::exception_ptr error;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      bytes = read_(index);
    } catch (...) {
      error = std::current_exception();
    }
    note_read(std::chrono::steady_clock::now() - t0);
    lock.lock();
    // A kReading entry is never evicted nor taken away, so it is still ours.
    auto it = entries_.find(index);
    if (it != entries_.end() && it->second.seq == seq) {
      bytes_held_ += bytes.size();
      it->second.bytes = std::move(bytes);
      it->second.error = error;
      it->second.state = State::kDone;
    }
    done_cv_.notify_all();
  }
}

}  // namespace ringloader::datasets::detail
