#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "ipc/slot_ring.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using ipc::SlotState;

TEST_CASE("slot state words pack and unpack", "[slot_ring]") {
  ipc::SlotWord w{SlotState::kClaimed, 7, 123456};
  const auto u = ipc::SlotWord::unpack(w.pack());
  CHECK(u.state == SlotState::kClaimed);
  CHECK(u.worker == 7);
  CHECK(u.ticket == 123456);
  CHECK(ipc::SlotWord::unpack(ipc::SlotWord{}.pack()).worker == -1);
}

TEST_CASE("a slot goes FREE -> QUEUED -> CLAIMED -> FILLED -> HANDED_OUT -> FREE", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 2, .max_batch = 4, .payload_bytes = 1000, .region = {}});
  CHECK(reinterpret_cast<uintptr_t>(ring.payload(0)) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(ring.payload(1)) % 64 == 0);
  ring.slot(0).target_worker = -1;
  ring.queue(0);
  CHECK(ring.word(0).state == SlotState::kQueued);
  CHECK_THROWS(ring.queue(0));
  auto s = ring.try_claim(3, 99);
  REQUIRE(s);
  CHECK(*s == 0);
  CHECK(ring.word(0).worker == 3);
  CHECK(ring.slot(0).worker_pid == 99);
  CHECK_FALSE(ring.try_claim(4, 100));
  CHECK_FALSE(ring.mark_filled(0, 4));  // not its claim
  CHECK(ring.mark_filled(0, 3));
  CHECK(ring.ring().filled.try_wait());
  CHECK(ring.hand_out(0));
  CHECK(ring.word(0).state == SlotState::kHandedOut);
  CHECK(ring.release(0));
  CHECK(ring.word(0).state == SlotState::kFree);
  CHECK_FALSE(ring.release(0));
}

TEST_CASE("a dead worker's claim goes back to the queue with its attempt counted", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 3, .max_batch = 4, .payload_bytes = 64, .region = {}});
  for (uint32_t i = 0; i < 3; ++i) {
    ring.slot(i).target_worker = -1;
    ring.queue(i);
  }
  REQUIRE(ring.try_claim(1, 10));
  REQUIRE(ring.try_claim(2, 11));
  const auto back = ring.give_back(1, 3).requeued;
  REQUIRE(back.size() == 1);
  CHECK(ring.word(back[0]).state == SlotState::kQueued);
  CHECK(ring.slot(back[0]).attempts == 1);
  CHECK(ring.give_back(1).requeued.empty());
  // At the attempt limit the slot is held for the main process instead of requeued.
  REQUIRE(ring.try_claim(1, 10));
  ring.slot(back[0]).attempts = 2;
  const auto gb = ring.give_back(1, 3);
  CHECK(gb.requeued.empty());
  REQUIRE(gb.held.size() == 1);
  CHECK(ring.word(gb.held[0]).state == SlotState::kClaimed);
  CHECK(ring.word(gb.held[0]).worker == -1);
}

TEST_CASE("targeted tasks are claimed only by their worker", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 1, .max_batch = 1, .payload_bytes = 64, .region = {}});
  ring.slot(0).target_worker = 2;
  ring.queue(0);
  CHECK_FALSE(ring.try_claim(1, 1));
  CHECK(ring.try_claim(2, 2));
}

TEST_CASE("forked workers claim every queued slot exactly once", "[slot_ring][fork]") {
  constexpr uint32_t kSlots = 64;
  ipc::SlotRing ring({.num_slots = kSlots, .max_batch = 1, .payload_bytes = 64, .region = {}});
  for (uint32_t i = 0; i < kSlots; ++i) {
    ring.slot(i).target_worker = -1;
    ring.queue(i);
  }
  pid_t kids[4];
  for (int w = 0; w < 4; ++w) {
    kids[w] = ::fork();
    if (kids[w] == 0) {
      while (auto s = ring.try_claim(w, ::getpid())) {
        std::memcpy(ring.payload(*s), &w, sizeof w);
        if (!ring.mark_filled(*s, w)) ::_exit(1);
      }
      ::_exit(0);
    }
  }
  for (pid_t k : kids) {
    int st = 0;
    REQUIRE(::waitpid(k, &st, 0) == k);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
  }
  for (uint32_t i = 0; i < kSlots; ++i) {
    CHECK(ring.word(i).state == SlotState::kFilled);
    int w = -1;
    std::memcpy(&w, ring.payload(i), sizeof w);
    CHECK(w == ring.word(i).worker);
  }
  CHECK(test::own_children().empty());
}
