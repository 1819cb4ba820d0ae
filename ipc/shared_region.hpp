#pragma once
// SharedRegion: one anonymous-by-name shared-memory mapping, created by the main process
// before it forks. Created with O_EXCL, mode 0600 and an unguessable name, backed up front
// with posix_fallocate (after a statvfs free-space check) and unlinked as soon as it is mapped:
// forked children inherit the mapping, and a SIGKILL of anyone leaves nothing in /dev/shm.
//
//   auto region = ipc::SharedRegion::create(64 << 20);   // throws std::system_error / length_error
//   std::byte* p = region.data();
//
// Move-only; unmaps on destruction. The object itself is used by one thread; the bytes are
// shared with forked children (who never run its destructor: they leave through _exit).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "ipc/unique_fd.hpp"

namespace ringloader::ipc {

struct RegionOptions {
  /// Folder to create the region in; empty = POSIX shared memory (shm_open, i.e. /dev/shm).
  /// A tmpfs folder works the same way (tests use a small one).
  std::string dir;
  /// Pretend the filesystem has this many free bytes (tests; also read from the environment
  /// variable RINGLOADER_TEST_SHM_FREE_BYTES when unset).
  std::optional<uint64_t> free_bytes_override;
  /// No name at all: MAP_SHARED | MAP_ANONYMOUS (still shared with children forked later).
  /// Used when there are no workers (num_workers = 0), so /dev/shm is not needed.
  bool anonymous = false;
  /// Keep the (already unlinked) file descriptor open, to hand the region to a process that
  /// is not a child (the fork server's workers). Not with `anonymous`.
  bool keep_fd = false;
};

/// Thrown when the region does not fit: says needed, free, and what to change.
class RegionTooLarge : public std::exception {
 public:
  RegionTooLarge(uint64_t needed, uint64_t free, std::string where);
  const char* what() const noexcept override { return message_.c_str(); }
  uint64_t needed() const noexcept { return needed_; }
  uint64_t free_bytes() const noexcept { return free_; }

 private:
  uint64_t needed_, free_;
  std::string message_;
};

class SharedRegion {
 public:
  /// Creates, backs, maps and unlinks a region of `bytes` bytes (rounded up to a page).
  /// Throws RegionTooLarge when the filesystem lacks room, std::system_error naming the
  /// failing call otherwise.
  static SharedRegion create(size_t bytes, const RegionOptions& options = {});
  /// Maps a region received as a file descriptor (see RegionOptions::keep_fd).
  static SharedRegion attach(int fd, size_t bytes);

  SharedRegion() = default;
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  SharedRegion(SharedRegion&& o) noexcept;
  SharedRegion& operator=(SharedRegion&& o) noexcept;
  ~SharedRegion();

  std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  /// The name it had while it existed (already unlinked), for messages.
  const std::string& name() const noexcept { return name_; }
  /// The kept descriptor (keep_fd), or -1.
  int fd() const noexcept { return fd_.get(); }

 private:
  std::byte* data_ = nullptr;  ///< valid mapping of size_ bytes, or null
  size_t size_ = 0;
  std::string name_;
  UniqueFd fd_;  ///< only with keep_fd: the unlinked file, to pass on
};

/// Free bytes of the filesystem that holds shared memory regions created with `options`.
uint64_t shm_free_bytes(const RegionOptions& options = {});

}  // namespace ringloader::ipc
