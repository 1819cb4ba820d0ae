#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "ipc/detail/ring_header.hpp"
#include "ipc/slot_ring.hpp"
#include "tests/support/process_check.hpp"

namespace ringloader::ipc {
/// The test-only way to the ring's shared header (its semaphores' counts).
struct SlotRingTestAccess {
  static detail::RingHeader& header(const SlotRing& r) { return *r.header_; }
};
}  // namespace ringloader::ipc

using namespace ringloader;
using ipc::SlotState;
using namespace std::chrono_literals;

namespace {

/// The test's own task record: which worker may claim the slot.
struct Task {
  int32_t target = -1;
  uint32_t pad[15];
};

auto for_worker(const ipc::SlotRing& ring, int id) {
  return [&ring, id](uint32_t s) { return ring.task<Task>(s).target < 0 || ring.task<Task>(s).target == id; };
}

}  // namespace

TEST_CASE("slot state words pack and unpack", "[slot_ring]") {
  ipc::SlotWord w{SlotState::kClaimed, 7, 123456};
  const auto u = ipc::SlotWord::unpack(w.pack());
  CHECK(u.state == SlotState::kClaimed);
  CHECK(u.worker == 7);
  CHECK(u.ticket == 123456);
  CHECK(ipc::SlotWord::unpack(ipc::SlotWord{}.pack()).worker == -1);
}

TEST_CASE("a slot goes FREE -> QUEUED -> CLAIMED -> FILLED -> HANDED_OUT -> FREE", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 2, .max_batch = 4, .payload_bytes = 1000});
  CHECK(reinterpret_cast<uintptr_t>(ring.payload(0)) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(ring.payload(1)) % 64 == 0);
  ring.queue(0);
  CHECK(ring.word(0).state == SlotState::kQueued);
  CHECK_THROWS(ring.queue(0));
  auto c = ring.try_claim(3);
  REQUIRE(c);
  CHECK(c->slot == 0);
  CHECK(ring.word(0).worker == 3);
  CHECK(ring.claimed_at(0, c->ticket));
  CHECK_FALSE(ring.try_claim(4));
  CHECK_FALSE(ring.mark_filled(*c, 4));  // not its claim
  CHECK(ring.mark_filled(*c, 3));
  CHECK(ring.hand_out(0));
  CHECK(ring.word(0).state == SlotState::kHandedOut);
  CHECK_FALSE(ring.abandon(0));  // a Batch holds it
  CHECK(ring.release(0));
  CHECK(ring.word(0).state == SlotState::kFree);
  CHECK_FALSE(ring.release(0));
}

TEST_CASE("a dead worker's claim is reclaimed HELD - then requeued with a new ticket", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 3, .max_batch = 4, .payload_bytes = 64});
  for (uint32_t i = 0; i < 3; ++i) ring.queue(i);
  const auto c1 = ring.try_claim(1);
  REQUIRE(c1);
  ring.progress(c1->slot).store(42);
  REQUIRE(ring.try_claim(2));
  const auto back = ring.reclaim_from_dead(1);
  REQUIRE(back.size() == 1);
  CHECK(back[0].slot == c1->slot);
  CHECK(back[0].progress == 42);
  CHECK(ring.word(c1->slot).state == SlotState::kHeld);
  CHECK(ring.slot(c1->slot).attempts == 1);
  CHECK(ring.reclaim_from_dead(1).empty());
  CHECK(ring.requeue(c1->slot));
  CHECK(ring.word(c1->slot).state == SlotState::kQueued);
  CHECK(ring.word(c1->slot).ticket != c1->ticket);
  // The old claim is void: a writer that still held it cannot mark the new task filled.
  const auto c2 = ring.try_claim(1);
  REQUIRE(c2);
  CHECK(c2->slot == c1->slot);
  CHECK_FALSE(ring.mark_filled(*c1, 1));
  CHECK(ring.mark_filled(*c2, 1));
}

TEST_CASE("the main process fills a held slot itself or gives it up", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 1, .max_batch = 1, .payload_bytes = 64});
  ring.queue(0);
  CHECK(ring.claim_for_main(0));  // in-process filling
  CHECK(ring.word(0).state == SlotState::kHeld);
  CHECK_FALSE(ring.try_claim(0));
  CHECK(ring.put_filled(0));
  CHECK(ring.word(0).state == SlotState::kFilled);
  CHECK(ring.abandon(0));
  CHECK(ring.word(0).state == SlotState::kFree);
}

TEST_CASE("abandon leaves a claim alone - reclaim_all frees everything but handed-out slots", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 3, .max_batch = 1, .payload_bytes = 64});
  for (uint32_t i = 0; i < 3; ++i) ring.queue(i);
  const auto a = ring.try_claim(0);
  const auto b = ring.try_claim(0);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(ring.mark_filled(*b, 0));
  REQUIRE(ring.hand_out(b->slot));
  CHECK_FALSE(ring.abandon(a->slot));  // CLAIMED: a worker may still be writing it
  ring.reclaim_all();
  CHECK(ring.word(a->slot).state == SlotState::kFree);
  CHECK(ring.word(b->slot).state == SlotState::kHandedOut);
}

TEST_CASE("targeted tasks are claimed only by their worker", "[slot_ring]") {
  ipc::SlotRing ring({.num_slots = 1, .max_batch = 1, .payload_bytes = 64});
  ring.task<Task>(0).target = 2;
  ring.queue(0);
  CHECK_FALSE(ring.try_claim(1, for_worker(ring, 1)));
  CHECK(ring.try_claim(2, for_worker(ring, 2)));
}

TEST_CASE("wake-up counts stay small however many batches go round", "[slot_ring][wakeups]") {
  // Posts only for sleepers: a count per batch would reach EOVERFLOW after 2^31 batches.
  ipc::SlotRing ring({.num_slots = 4, .max_batch = 1, .payload_bytes = 64});
  for (int round = 0; round < 10000; ++round) {
    for (uint32_t s = 0; s < 4; ++s) ring.queue(s);
    while (auto c = ring.try_claim(0)) {
      REQUIRE(ring.mark_filled(*c, 0));
      REQUIRE(ring.hand_out(c->slot));
      REQUIRE(ring.release(c->slot));
    }
  }
  int tasks = 0, filled = 0;
  while (ipc::SlotRingTestAccess::header(ring).tasks.try_wait()) ++tasks;
  while (ipc::SlotRingTestAccess::header(ring).filled.try_wait()) ++filled;
  CHECK(tasks == 0);
  CHECK(filled == 0);
}

TEST_CASE("a sleeping worker wakes for a queued task - a sleeping main process for a fill", "[slot_ring][wakeups]") {
  ipc::SlotRing ring({.num_slots = 1, .max_batch = 1, .payload_bytes = 64});
  auto& header = ipc::SlotRingTestAccess::header(ring);
  const pid_t kid = ::fork();
  if (kid == 0) {
    // Its wait outlasts the main process's: only the wake-up can bring the task in time.
    ring.wait_for_task([](uint32_t) { return true; }, 1h);
    const auto c = ring.try_claim(0);
    if (!c) ::_exit(1);
    // Fill once the main process sleeps in wait_for_fill, so that the fill is what wakes it.
    for (int i = 0; i < 60000 && header.main_waiting.load() == 0; ++i) std::this_thread::sleep_for(1ms);
    ::_exit(ring.mark_filled(*c, 0) ? 0 : 2);
  }
  // Queue once the worker sleeps, so that the task reaches it through wake_workers.
  for (int i = 0; i < 30000 && header.sleepers.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(header.sleepers.load() == 1);
  ring.queue(0);
  CHECK(ring.wake_workers(1) == 1);  // queue() wakes nobody; wake_workers saw the sleeper
  const auto filled = [&] { return ring.word(0).state == SlotState::kFilled; };
  auto wake = ipc::Semaphore::Wake::kSignal;
  while (wake == ipc::Semaphore::Wake::kSignal) wake = ring.wait_for_fill(filled, 30s);
  CHECK(wake == ipc::Semaphore::Wake::kTaken);  // woken by the fill; a lost wake-up times out
  CHECK(filled());
  if (!filled()) ::kill(kid, SIGKILL);
  int st = 0;
  REQUIRE(::waitpid(kid, &st, 0) == kid);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
}

TEST_CASE("forked workers claim every queued slot exactly once", "[slot_ring][fork]") {
  constexpr uint32_t kSlots = 64;
  ipc::SlotRing ring({.num_slots = kSlots, .max_batch = 1, .payload_bytes = 64});
  for (uint32_t i = 0; i < kSlots; ++i) ring.queue(i);
  pid_t kids[4];
  for (int w = 0; w < 4; ++w) {
    kids[w] = ::fork();
    if (kids[w] == 0) {
      while (auto c = ring.try_claim(w)) {
        std::memcpy(ring.payload(c->slot), &w, sizeof w);
        if (!ring.mark_filled(*c, w)) ::_exit(1);
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

TEST_CASE("a ring whose size overflows is refused before anything is allocated", "[slot_ring]") {
  CHECK_THROWS_AS(ipc::SlotRing({.num_slots = 4, .max_batch = 1, .payload_bytes = SIZE_MAX / 2}), std::length_error);
  CHECK_THROWS_AS(ipc::SlotRing({.num_slots = UINT32_MAX, .max_batch = UINT32_MAX, .payload_bytes = 64}),
                  std::length_error);
}

TEST_CASE("workers claim tasks in the order they were queued, whatever slot holds them", "[slot_ring]") {
  // By slot index, a task queued later into a lower slot would be filled first - and one that
  // hung there would starve the batch the training loop waits for.
  ipc::SlotRing ring({.num_slots = 3, .max_batch = 1, .payload_bytes = 64});
  ring.queue(2);
  ring.queue(0);
  ring.queue(1);
  CHECK(ring.try_claim(0)->slot == 2);
  CHECK(ring.try_claim(0)->slot == 0);
  const auto c = ring.try_claim(0);
  CHECK(c->slot == 1);
  // A requeued task keeps its place: it is older than one queued after it.
  ring.reclaim_from_dead(0);
  CHECK(ring.requeue(1));
  CHECK(ring.requeue(2));
  CHECK(ring.try_claim(0)->slot == 2);  // queued first of all
}

TEST_CASE("begin_generation abandons the tasks queued so far; shutdown is a flag workers read", "[slot_ring][protocol]") {
  ipc::SlotRing ring({.num_slots = 2, .max_batch = 1, .payload_bytes = 64});
  CHECK(ring.generation() == 0);
  CHECK(ring.begin_generation() == 1);
  CHECK(ring.begin_generation() == 2);
  CHECK(ring.generation() == 2);
  ring.queue(0);
  CHECK(ring.word(0).state == SlotState::kQueued);  // a new generation frees no slot: abandon() does
  CHECK_FALSE(ring.shutting_down());
  ring.request_shutdown(0);
  CHECK(ring.shutting_down());
  // A worker that would sleep returns at once while shutting down: no task, no wait.
  const auto t0 = std::chrono::steady_clock::now();
  ring.wait_for_task([](uint32_t) { return false; }, 60s);
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);  // a hang is the failure, not a speed
  ring.clear_shutdown();
  CHECK_FALSE(ring.shutting_down());
}

TEST_CASE("queue wakes nobody; wake_workers posts once per sleeper, at most n", "[slot_ring][protocol]") {
  ipc::SlotRing ring({.num_slots = 2, .max_batch = 1, .payload_bytes = 64});
  ring.queue(0);
  CHECK(ring.wake_workers(2) == 0);  // nobody sleeps
  CHECK_FALSE(ipc::SlotRingTestAccess::header(ring).tasks.try_wait());
  ipc::SlotRingTestAccess::header(ring).sleepers.store(3);  // as three workers in wait_for_task
  CHECK(ring.wake_workers(2) == 2);
  CHECK(ipc::SlotRingTestAccess::header(ring).tasks.try_wait());
  CHECK(ipc::SlotRingTestAccess::header(ring).tasks.try_wait());
  CHECK_FALSE(ipc::SlotRingTestAccess::header(ring).tasks.try_wait());
  ipc::SlotRingTestAccess::header(ring).sleepers.store(0);
}
