#include "ipc/semaphore.hpp"

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/exceptions.hpp>

namespace ringloader::ipc {
namespace {

// Longest single absolute-time wait: bounds the effect of a wall-clock jump.
constexpr std::chrono::milliseconds kSlice{50};

[[noreturn]] void rethrow(const boost::interprocess::interprocess_exception& e, const char* call) {
  throw std::system_error(e.get_native_error(), std::generic_category(),
                          std::string("semaphore ") + call + ": " + e.what());
}

bool is_eintr(const boost::interprocess::interprocess_exception& e) { return e.get_native_error() == EINTR; }

}  // namespace

Semaphore::Semaphore(unsigned initial) try : sem_(initial) {
} catch (const boost::interprocess::interprocess_exception& e) {
  rethrow(e, "sem_init");
}

void Semaphore::post() {
  try {
    sem_.post();
  } catch (const boost::interprocess::interprocess_exception& e) {
    rethrow(e, "sem_post");
  }
}

void Semaphore::wait() {
  for (;;) {
    try {
      sem_.wait();
      return;
    } catch (const boost::interprocess::interprocess_exception& e) {
      if (!is_eintr(e)) rethrow(e, "sem_wait");
    }
  }
}

bool Semaphore::try_wait() {
  for (;;) {
    try {
      return sem_.try_wait();
    } catch (const boost::interprocess::interprocess_exception& e) {
      if (!is_eintr(e)) rethrow(e, "sem_trywait");
    }
  }
}

bool Semaphore::wait_for(std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = deadline - std::chrono::steady_clock::now();
    switch (wait_or_signal(std::max<std::chrono::nanoseconds>(left, std::chrono::nanoseconds(0)))) {
      case Wake::kTaken: return true;
      case Wake::kTimedOut: return false;
      case Wake::kSignal: break;  // resume
    }
  }
}

Semaphore::Wake Semaphore::wait_or_signal(std::chrono::nanoseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    const auto now = clock::now();
    if (now >= deadline) return try_wait() ? Wake::kTaken : Wake::kTimedOut;
    const auto slice = std::min<std::chrono::nanoseconds>(deadline - now, kSlice);
    // Boost 1.74 wants an absolute wall-clock ptime; recompute it every slice.
    const auto abs = boost::posix_time::microsec_clock::universal_time() +
                     boost::posix_time::microseconds(std::chrono::duration_cast<std::chrono::microseconds>(slice).count() + 1);
    try {
      if (sem_.timed_wait(abs)) return Wake::kTaken;
    } catch (const boost::interprocess::interprocess_exception& e) {
      if (!is_eintr(e)) rethrow(e, "sem_timedwait");
      return Wake::kSignal;
    }
  }
}

}  // namespace ringloader::ipc
