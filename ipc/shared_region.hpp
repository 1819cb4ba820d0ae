#pragma once
// SharedRegion: one shared-memory mapping with no name, created by the main process before it
// forks. The file is created nameless (O_TMPFILE in /dev/shm or the chosen tmpfs folder; where
// a filesystem cannot, it is created O_EXCL, mode 0600, under an unguessable name and unlinked
// before anything else is done with it). Only then is it sized, backed up front with
// posix_fallocate (after a statvfs free-space check) and mapped. A SIGKILL at any moment -
// the OOM killer strikes exactly while a large ring is being backed - leaves nothing behind.
//
//   auto region = ipc::SharedRegion::create(64 << 20);   // throws RegionTooLarge / std::system_error
//   std::byte* p = region.data();
//
// Move-only; unmaps on destruction. The object itself is used by one thread; the bytes are
// shared with forked children (who never run its destructor: they leave through _exit).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/unique_handle.hpp"

namespace ringloader::ipc {

struct RegionOptions {
  /// Folder to create the region in; empty = POSIX shared memory (/dev/shm).
  /// A tmpfs folder works the same way (tests use a small one).
  std::string dir;
  /// Pretend the filesystem has this many free bytes (tests; also read from the environment
  /// variable RINGLOADER_TEST_SHM_FREE_BYTES when unset).
  std::optional<uint64_t> free_bytes_override;
  /// No file at all: MAP_SHARED | MAP_ANONYMOUS (still shared with children forked later).
  /// Used when there are no workers (num_workers = 0), so /dev/shm is not needed.
  bool anonymous = false;
  /// Keep the file descriptor open, to hand the region to a process that is not a child (the
  /// fork server's workers). Not with `anonymous`.
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
  /// Creates, backs and maps a nameless region of `bytes` bytes (rounded up to a page).
  /// Throws RegionTooLarge when the filesystem lacks room, std::system_error naming the
  /// failing call otherwise.
  static SharedRegion create(size_t bytes, const RegionOptions& options = {});
  /// Maps a region received as a file descriptor (see RegionOptions::keep_fd).
  static SharedRegion attach(int fd, size_t bytes);

  SharedRegion() = default;
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  SharedRegion(SharedRegion&&) noexcept = default;
  SharedRegion& operator=(SharedRegion&&) noexcept = default;

  std::byte* data() const noexcept { return map_.get().data; }
  size_t size() const noexcept { return map_.get().size; }
  /// Where it lives, for messages ("/dev/shm (nameless)", "(anonymous)", "(received)").
  const std::string& name() const noexcept { return name_; }
  /// The kept descriptor (keep_fd), or -1.
  int fd() const noexcept { return fd_.get(); }

 private:
  std::string name_;
  core::UniqueFd fd_;        ///< only with keep_fd: the nameless file, to pass on
  core::UniqueMapping map_;  ///< last: unmapped first
};

/// Free bytes of the filesystem that holds shared memory regions created with `options`.
uint64_t shm_free_bytes(const RegionOptions& options = {});

}  // namespace ringloader::ipc
