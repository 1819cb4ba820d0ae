#include "ipc/slot_ring.hpp"

#include <time.h>

#include <new>
#include <string>
#include <vector>
#include <stdexcept>

namespace ringloader::ipc {
namespace {

constexpr uint64_t kMagic = 0x52494e474c4f4144ULL;  // "RINGLOAD"
constexpr size_t kPage = 4096;

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

struct Layout {
  size_t slots_off, indices_off, payload_off, payload_stride, total;
};

Layout layout_of(const SlotRing::Config& c) {
  Layout l{};
  l.slots_off = align_up(sizeof(RingHeader), 64);
  l.indices_off = align_up(l.slots_off + sizeof(SlotHeader) * c.num_slots, 64);
  l.payload_off = align_up(l.indices_off + sizeof(int64_t) * c.num_slots * c.max_batch, kPage);
  l.payload_stride = align_up(c.payload_bytes, kPage);
  l.total = l.payload_off + l.payload_stride * c.num_slots;
  return l;
}

}  // namespace

const char* slot_state_name(SlotState s) {
  switch (s) {
    case SlotState::kFree: return "FREE";
    case SlotState::kQueued: return "QUEUED";
    case SlotState::kClaimed: return "CLAIMED";
    case SlotState::kFilled: return "FILLED";
    case SlotState::kHandedOut: return "HANDED_OUT";
  }
  return "?";
}

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

size_t SlotRing::region_bytes(const Config& c) { return layout_of(c).total; }

SlotRing::SlotRing(const Config& c) {
  if (c.num_slots == 0 || c.max_batch == 0) throw std::invalid_argument("SlotRing: num_slots and max_batch must be > 0");
  const Layout l = layout_of(c);
  region_ = SharedRegion::create(l.total, c.region);
  std::byte* base = region_.data();
  header_ = ::new (base) RingHeader{};
  header_->magic = kMagic;
  header_->num_slots = c.num_slots;
  header_->max_batch = c.max_batch;
  header_->payload_bytes = c.payload_bytes;
  slots_ = reinterpret_cast<SlotHeader*>(base + l.slots_off);
  for (uint32_t i = 0; i < c.num_slots; ++i) ::new (&slots_[i]) SlotHeader{};
  indices_ = reinterpret_cast<int64_t*>(base + l.indices_off);
  payloads_ = base + l.payload_off;
  payload_stride_ = l.payload_stride;
  owner_ = true;
}

SlotRing::SlotRing(int fd, size_t bytes) {
  region_ = SharedRegion::attach(fd, bytes);
  std::byte* base = region_.data();
  header_ = reinterpret_cast<RingHeader*>(base);
  if (header_->magic != kMagic) throw std::runtime_error("SlotRing: the received region is not a ring");
  const Config c{header_->num_slots, header_->max_batch, header_->payload_bytes, {}};
  const Layout l = layout_of(c);
  if (l.total > bytes) throw std::runtime_error("SlotRing: the received region is smaller than its layout");
  slots_ = reinterpret_cast<SlotHeader*>(base + l.slots_off);
  indices_ = reinterpret_cast<int64_t*>(base + l.indices_off);
  payloads_ = base + l.payload_off;
  payload_stride_ = l.payload_stride;
}

SlotRing::~SlotRing() {
  if (header_ && owner_) header_->~RingHeader();  // sem_destroy; workers are gone by now
}

bool SlotRing::transition(uint32_t i, SlotWord from, SlotWord to) const {
  uint64_t expected = from.pack();
  return slots_[i].state.compare_exchange_strong(expected, to.pack(), std::memory_order_acq_rel, std::memory_order_acquire);
}

void SlotRing::queue(uint32_t i) const {
  const SlotWord w = word(i);
  if (w.state != SlotState::kFree) throw std::logic_error(std::string("SlotRing::queue: slot is ") + slot_state_name(w.state));
  if (!transition(i, w, {SlotState::kQueued, -1, w.ticket + 1})) throw std::logic_error("SlotRing::queue: slot changed under main");
  header_->tasks.post();
}

bool SlotRing::hand_out(uint32_t i) const {
  const SlotWord w = word(i);
  return w.state == SlotState::kFilled && transition(i, w, {SlotState::kHandedOut, w.worker, w.ticket});
}

bool SlotRing::release(uint32_t i) const {
  for (;;) {
    const SlotWord w = word(i);
    if (w.state != SlotState::kHandedOut && w.state != SlotState::kFilled && w.state != SlotState::kQueued) return false;
    if (transition(i, w, {SlotState::kFree, -1, w.ticket})) return true;
  }
}

SlotRing::GiveBack SlotRing::give_back(int worker, uint32_t max_attempts) const {
  GiveBack out;
  for (uint32_t i = 0; i < num_slots(); ++i) {
    const SlotWord w = word(i);
    if (w.state != SlotState::kClaimed || w.worker != worker) continue;
    slots_[i].attempts += 1;  // the claimant is dead or killed: nobody else writes this slot now
    if (slots_[i].attempts >= max_attempts) {
      if (transition(i, w, {SlotState::kClaimed, -1, w.ticket})) out.held.push_back(i);
    } else if (transition(i, w, {SlotState::kQueued, -1, w.ticket})) {
      header_->tasks.post();
      out.requeued.push_back(i);
    }
  }
  return out;
}

std::optional<uint32_t> SlotRing::try_claim(int worker, int32_t pid) const {
  for (uint32_t i = 0; i < num_slots(); ++i) {
    const SlotWord w = word(i);
    if (w.state != SlotState::kQueued) continue;
    const int32_t target = slots_[i].target_worker;  // task fields are stable while QUEUED
    if (target >= 0 && target != worker) continue;
    if (transition(i, w, {SlotState::kClaimed, worker, w.ticket})) {
      slots_[i].worker_pid.store(pid, std::memory_order_relaxed);
      slots_[i].claimed_at_ns.store(monotonic_ns(), std::memory_order_release);
      return i;
    }
  }
  return std::nullopt;
}

bool SlotRing::mark_filled(uint32_t i, int worker) const {
  const SlotWord w = word(i);
  if (w.state != SlotState::kClaimed || w.worker != worker) return false;
  if (!transition(i, w, {SlotState::kFilled, worker, w.ticket})) return false;
  header_->filled.post();
  return true;
}

}  // namespace ringloader::ipc
