#include "ipc/slot_ring.hpp"

#include "ipc/detail/ring_header.hpp"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringloader::ipc {
namespace {

using detail::RingHeader;

constexpr uint64_t kMagic = 0x52494e474c4f4144ULL;  // "RINGLOAD"
constexpr size_t kPage = 4096;

/// a * b, or std::length_error naming `what`.
size_t mul(size_t a, size_t b, const char* what) {
  size_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw std::length_error(std::string("SlotRing: ") + what + " overflows size_t");
  return r;
}

size_t add(size_t a, size_t b, const char* what) {
  size_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw std::length_error(std::string("SlotRing: ") + what + " overflows size_t");
  return r;
}

size_t align_up(size_t n, size_t a, const char* what) { return add(n, a - 1, what) / a * a; }

struct Layout {
  size_t slots_off, tasks_off, task_stride, indices_off, extra_off, payload_off, payload_stride, total;
};

Layout layout_of(uint32_t num_slots, uint32_t max_batch, size_t task_bytes, size_t extra_bytes, size_t payload_bytes) {
  Layout l{};
  l.slots_off = align_up(sizeof(RingHeader), 64, "header");
  l.tasks_off = align_up(l.slots_off + sizeof(SlotHeader) * num_slots, 64, "slot headers");
  l.task_stride = align_up(task_bytes, 64, "task_bytes");
  l.indices_off = align_up(add(l.tasks_off, mul(l.task_stride, num_slots, "task records"), "task records"), 64, "tasks");
  const size_t indices = mul(mul(sizeof(int64_t), num_slots, "index lists"), max_batch, "index lists");
  l.extra_off = align_up(add(l.indices_off, indices, "index lists"), 64, "index lists");
  l.payload_off = align_up(add(l.extra_off, extra_bytes, "extra_bytes"), kPage, "extra_bytes");
  l.payload_stride = align_up(payload_bytes, kPage, "payload_bytes");
  l.total = add(l.payload_off, mul(l.payload_stride, num_slots, "payloads"), "payloads");
  return l;
}

Layout layout_of(const SlotRing::Config& c) {
  return layout_of(c.num_slots, c.max_batch, c.task_bytes, c.extra_bytes, c.payload_bytes);
}

}  // namespace

const char* slot_state_name(SlotState s) {
  switch (s) {
    case SlotState::kFree: return "FREE";
    case SlotState::kQueued: return "QUEUED";
    case SlotState::kClaimed: return "CLAIMED";
    case SlotState::kFilled: return "FILLED";
    case SlotState::kHandedOut: return "HANDED_OUT";
    case SlotState::kHeld: return "HELD";
  }
  return "?";
}

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

SlotRing::SlotRing(const Config& c) {
  if (c.num_slots == 0 || c.max_batch == 0) throw std::invalid_argument("SlotRing: num_slots and max_batch must be > 0");
  const Layout l = layout_of(c);
  region_ = SharedRegion::create(l.total, c.region);
  std::byte* base = region_.data();
  header_ = ::new (base) RingHeader{};
  header_->magic = kMagic;
  header_->num_slots = c.num_slots;
  header_->max_batch = c.max_batch;
  header_->task_bytes = l.task_stride;
  header_->extra_bytes = l.payload_off - l.extra_off;
  header_->payload_bytes = c.payload_bytes;
  slots_ = reinterpret_cast<SlotHeader*>(base + l.slots_off);
  for (uint32_t i = 0; i < c.num_slots; ++i) {
    ::new (&slots_[i]) SlotHeader{};
    slots_[i].progress.store(-1, std::memory_order_relaxed);
  }
  tasks_ = base + l.tasks_off;
  indices_ = reinterpret_cast<int64_t*>(base + l.indices_off);
  extra_ = base + l.extra_off;
  payloads_ = base + l.payload_off;
  payload_stride_ = l.payload_stride;
  num_slots_ = c.num_slots;
  max_batch_ = c.max_batch;
  task_stride_ = l.task_stride;
  payload_bytes_ = c.payload_bytes;
  owner_pid_ = static_cast<int>(::getpid());
}

SlotRing::SlotRing(int fd, size_t bytes) {
  region_ = SharedRegion::attach(fd, bytes);
  std::byte* base = region_.data();
  header_ = reinterpret_cast<RingHeader*>(base);
  if (header_->magic != kMagic) throw std::runtime_error("SlotRing: the received region is not a ring");
  const Layout l = layout_of(header_->num_slots, header_->max_batch, header_->task_bytes, header_->extra_bytes,
                             header_->payload_bytes);
  if (l.total > bytes) throw std::runtime_error("SlotRing: the received region is smaller than its layout");
  slots_ = reinterpret_cast<SlotHeader*>(base + l.slots_off);
  tasks_ = base + l.tasks_off;
  indices_ = reinterpret_cast<int64_t*>(base + l.indices_off);
  extra_ = base + l.extra_off;
  payloads_ = base + l.payload_off;
  payload_stride_ = l.payload_stride;
  num_slots_ = header_->num_slots;
  max_batch_ = header_->max_batch;
  task_stride_ = header_->task_bytes;
  payload_bytes_ = header_->payload_bytes;
}

SlotRing::~SlotRing() {
  if (header_ && owner_pid_ == static_cast<int>(::getpid())) header_->~RingHeader();  // sem_destroy
}

bool SlotRing::cas(uint32_t i, SlotWord from, SlotWord to) const {
  uint64_t expected = from.pack();
  // seq_cst: the state words take part in the sleep/wake Dekker pairs (see wait_for_fill).
  return slots_[i].state.compare_exchange_strong(expected, to.pack(), std::memory_order_seq_cst);
}

uint32_t SlotRing::wake_workers(uint32_t n) const {
  const int32_t sleepers = header_->sleepers.load(std::memory_order_seq_cst);
  const auto posts = static_cast<uint32_t>(std::clamp<int64_t>(sleepers, 0, n));
  for (uint32_t k = 0; k < posts; ++k) header_->tasks.post();
  return posts;
}

void SlotRing::queue(uint32_t i) const {
  const SlotWord w = word(i);
  if (w.state != SlotState::kFree) throw std::logic_error(std::string("SlotRing::queue: slot is ") + slot_state_name(w.state));
  slots_[i].attempts = 0;
  slots_[i].order = header_->next_order++;
  slots_[i].progress.store(-1, std::memory_order_relaxed);
  if (!cas(i, w, {SlotState::kQueued, -1, w.ticket + 1})) throw std::logic_error("SlotRing::queue: slot changed under main");
}

bool SlotRing::claim_for_main(uint32_t i) const {
  const SlotWord w = word(i);
  return w.state == SlotState::kQueued && cas(i, w, {SlotState::kHeld, -1, w.ticket});
}

bool SlotRing::requeue(uint32_t i, bool fresh, bool wake_all) const {
  const SlotWord w = word(i);
  if (w.state != SlotState::kHeld) return false;
  slots_[i].progress.store(-1, std::memory_order_relaxed);
  if (fresh) slots_[i].attempts = 0;
  if (!cas(i, w, {SlotState::kQueued, -1, w.ticket + 1})) return false;
  wake_workers(wake_all ? num_slots() : 1);
  return true;
}

bool SlotRing::put_filled(uint32_t i) const {
  const SlotWord w = word(i);
  return w.state == SlotState::kHeld && cas(i, w, {SlotState::kFilled, -1, w.ticket});
}

bool SlotRing::hand_out(uint32_t i) const {
  const SlotWord w = word(i);
  return w.state == SlotState::kFilled && cas(i, w, {SlotState::kHandedOut, w.worker, w.ticket});
}

bool SlotRing::release(uint32_t i) const {
  const SlotWord w = word(i);
  return w.state == SlotState::kHandedOut && cas(i, w, {SlotState::kFree, -1, w.ticket});
}

bool SlotRing::abandon(uint32_t i) const {
  for (;;) {
    const SlotWord w = word(i);
    if (w.state != SlotState::kQueued && w.state != SlotState::kFilled && w.state != SlotState::kHeld) return false;
    if (cas(i, w, {SlotState::kFree, -1, w.ticket})) return true;
    // a worker claimed it (QUEUED -> CLAIMED) meanwhile: look again
  }
}

std::vector<SlotRing::Reclaimed> SlotRing::reclaim_from_dead(int worker) const {
  std::vector<Reclaimed> out;
  for (uint32_t i = 0; i < num_slots(); ++i) {
    const SlotWord w = word(i);
    if (w.state != SlotState::kClaimed || w.worker != worker) continue;
    // The claimant is dead: nobody else writes this slot now.
    if (!cas(i, w, {SlotState::kHeld, -1, w.ticket})) continue;
    slots_[i].attempts += 1;
    out.push_back({i, slots_[i].progress.exchange(-1, std::memory_order_relaxed)});
  }
  return out;
}

void SlotRing::reclaim_all() const {
  for (uint32_t i = 0; i < num_slots(); ++i) {
    const SlotWord w = word(i);
    if (w.state != SlotState::kHandedOut && w.state != SlotState::kFree) cas(i, w, {SlotState::kFree, -1, w.ticket});
  }
}

void SlotRing::wake_main() const noexcept {
  try {
    header_->filled.post();
  } catch (...) {
    // EOVERFLOW: the main process has plenty of wake-ups already
  }
}

void SlotRing::request_shutdown(uint32_t n) const {
  header_->shutdown.store(1, std::memory_order_release);
  for (uint32_t k = 0; k < n; ++k) header_->tasks.post();
}

void SlotRing::clear_shutdown() const { header_->shutdown.store(0, std::memory_order_release); }

uint64_t SlotRing::begin_generation() const {
  return header_->generation.fetch_add(1, std::memory_order_acq_rel) + 1;  // only the main process writes it
}

uint64_t SlotRing::generation() const { return header_->generation.load(std::memory_order_acquire); }

bool SlotRing::shutting_down() const { return header_->shutdown.load(std::memory_order_acquire) != 0; }

void SlotRing::announce_main_wait(bool waiting) const {
  if (waiting) header_->main_waiting.store(1, std::memory_order_seq_cst);
  else header_->main_waiting.store(0, std::memory_order_relaxed);
}

Semaphore::Wake SlotRing::sleep_for_fill(std::chrono::nanoseconds timeout) const {
  return header_->filled.wait_or_signal(timeout);
}

void SlotRing::announce_sleep(int32_t delta) const { header_->sleepers.fetch_add(delta, std::memory_order_seq_cst); }

void SlotRing::sleep_for_task(std::chrono::nanoseconds timeout) const { (void)header_->tasks.wait_for(timeout); }

bool SlotRing::mark_filled(const Claim& c, int worker) const {
  if (!cas(c.slot, {SlotState::kClaimed, worker, c.ticket}, {SlotState::kFilled, worker, c.ticket})) return false;
  if (header_->main_waiting.exchange(0, std::memory_order_seq_cst) != 0) header_->filled.post();
  return true;
}

}  // namespace ringloader::ipc
