#pragma once
// Semaphore: a process-shared counting semaphore (Boost.Interprocess interprocess_semaphore,
// i.e. a POSIX sem_t) that lives inside a SharedRegion, wrapped once so that
//  - a signal (EINTR) never surfaces as an exception: the wait resumes;
//  - waits take a relative timeout measured on the steady clock, sliced into short absolute
//    waits, so a wall-clock jump never stalls or shortens a wait by more than one slice.
//
//   ipc::Semaphore* s = new (region.data()) ipc::Semaphore(0);   // main, before fork
//   s->post();                                                    // any process
//   if (s->wait_for(std::chrono::milliseconds(100))) { ... }      // any process
//
// Safe across threads and processes. Has no owner: a process that dies between wait and post
// leaves the count behind (callers treat counts as wake-ups; state words are the truth).
#include <chrono>
#include <type_traits>

#include <boost/interprocess/sync/interprocess_semaphore.hpp>

namespace ringloader::ipc {

class Semaphore {
 public:
  explicit Semaphore(unsigned initial = 0);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  void post();
  /// Blocks until the count is positive, then takes one. Never throws on EINTR.
  void wait();
  /// Takes one if the count is positive right now.
  [[nodiscard]] bool try_wait();
  /// Waits at most `timeout` (steady clock). True if one was taken.
  [[nodiscard]] bool wait_for(std::chrono::nanoseconds timeout);

  enum class Wake { kTaken, kTimedOut, kSignal };
  /// Like wait_for, but returns kSignal as soon as a signal handler interrupts the wait, so a
  /// caller can act on what the handler did (a Ctrl-C) at once rather than after the timeout.
  [[nodiscard]] Wake wait_or_signal(std::chrono::nanoseconds timeout);

 private:
  boost::interprocess::interprocess_semaphore sem_;
};

static_assert(std::is_standard_layout_v<Semaphore>, "Semaphore lives in shared memory");

}  // namespace ringloader::ipc
