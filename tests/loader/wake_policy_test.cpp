// WakePolicy: when the main process wakes sleeping workers for quietly queued tasks. Counts
// in, wake-ups out: no process, no clock.
#include <catch2/catch.hpp>

#include <optional>

#include "loader/detail/wake_policy.hpp"

using ringloader::loader::detail::WakePolicy;

TEST_CASE("WakePolicy leaves quiet tasks quiet while more than half the ring is filled", "[wake_policy]") {
  WakePolicy p(8);                                    // low water: 4 FILLED
  CHECK(p.after_queue(8, 0, 0) == std::nullopt);
  CHECK(p.after_queue(5, 3, 100) == std::nullopt);    // a loop slower than its workers: no wake-up per batch
  CHECK(p.after_queue(4, 3, 100) == uint32_t{3});     // ready batches run low: wake one per waiting task
  CHECK(p.after_queue(0, 2, 100) == uint32_t{2});     // a drained ring
  CHECK(p.after_queue(0, 0, 100) == uint32_t{0});     // nothing to wake for, but no longer quiet
}

TEST_CASE("WakePolicy's low water is half the ring, at least 2", "[wake_policy]") {
  WakePolicy small(3);
  CHECK(small.after_queue(3, 1, 0) == std::nullopt);
  CHECK(small.after_queue(2, 1, 0) == uint32_t{1});
  WakePolicy big(64);
  CHECK(big.after_queue(33, 1, 0) == std::nullopt);
  CHECK(big.after_queue(32, 1, 0) == uint32_t{1});
}

TEST_CASE("WakePolicy turns eager after a quiet task made next() wait, for a span that doubles", "[wake_policy]") {
  WakePolicy p(4);                                   // first span: 2 x 4 slots
  CHECK(p.before_wait(0, 0, 10) == 0);               // every quiet task was filled: stay quiet
  CHECK_FALSE(p.eager(10));
  CHECK(p.after_queue(4, 1, 10) == std::nullopt);

  CHECK(p.before_wait(2, 3, 10) == 2);               // 3 late, 2 still unclaimed: wake those
  CHECK(p.eager(10));
  CHECK(p.after_queue(4, 1, 17) == uint32_t{1});     // eager: wake even with the ring full
  CHECK_FALSE(p.eager(18));
  CHECK(p.after_queue(4, 1, 18) == std::nullopt);    // the span of 8 batches is over

  CHECK(p.before_wait(0, 1, 20) == 0);               // late but already claimed: nobody to wake
  CHECK(p.eager(20 + 15));
  CHECK_FALSE(p.eager(20 + 16));                     // twice as long: 16
}

TEST_CASE("WakePolicy's eager span stops doubling at 65536 batches", "[wake_policy]") {
  WakePolicy p(4);
  uint64_t batches = 0;
  for (int k = 0; k < 40; ++k) (void)p.before_wait(1, 1, batches);
  CHECK(p.eager(batches + 65535));
  CHECK_FALSE(p.eager(batches + 65536));
}
