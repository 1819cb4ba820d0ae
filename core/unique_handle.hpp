#pragma once
// UniqueHandle<Traits>: owns one operating-system handle and releases it on destruction.
// Move-only. One template for every kind of handle, so an fd and a mapping follow the same
// rules (release exactly once, moved-from is empty, reset() replaces).
//
//   core::UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd) throw core::posix_error(errno, "open(" + path + ")");
//   core::UniqueMapping map({static_cast<std::byte*>(p), bytes});
//
// Distinct objects may be used from different threads; one object is used by one thread.
// A handle is not shared across processes: a forked child that leaves through _exit() never
// releases its copies.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

namespace ringloader::core {

template <class Traits>
class UniqueHandle {
 public:
  using Value = typename Traits::Value;

  UniqueHandle() noexcept : value_(Traits::empty()) {}
  explicit UniqueHandle(Value v) noexcept : value_(v) {}
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  UniqueHandle(UniqueHandle&& o) noexcept : value_(o.release()) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~UniqueHandle() { reset(); }

  const Value& get() const noexcept { return value_; }
  explicit operator bool() const noexcept { return !Traits::is_empty(value_); }
  /// Gives up ownership: the caller releases the value.
  Value release() noexcept { return std::exchange(value_, Traits::empty()); }
  /// Releases the held value (if any) and holds `v`.
  void reset(Value v = Traits::empty()) noexcept {
    if (!Traits::is_empty(value_)) Traits::close(value_);
    value_ = v;
  }

 private:
  Value value_;
};

struct FdTraits {
  using Value = int;
  static int empty() noexcept { return -1; }
  static bool is_empty(int fd) noexcept { return fd < 0; }
  // close() errors carry nothing a caller could act on for the fds we hold.
  static void close(int fd) noexcept { ::close(fd); }
};

/// A file descriptor; -1 when empty.
using UniqueFd = UniqueHandle<FdTraits>;

struct Mapping {
  std::byte* data = nullptr;
  size_t size = 0;
};

struct MappingTraits {
  using Value = Mapping;
  static Mapping empty() noexcept { return {}; }
  static bool is_empty(const Mapping& m) noexcept { return m.data == nullptr; }
  static void close(const Mapping& m) noexcept { ::munmap(m.data, m.size); }
};

/// An mmap()ed range; unmapped on destruction.
using UniqueMapping = UniqueHandle<MappingTraits>;

}  // namespace ringloader::core
