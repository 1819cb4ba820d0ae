#include "ipc/shared_region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <system_error>
#include <utility>

#include "core/posix_error.hpp"

namespace ringloader::ipc {
namespace {

using core::posix_error;

std::string random_name() {
  std::random_device rd;  // /dev/urandom: the name must not be guessable
  char buf[64];
  const uint64_t a = (uint64_t{rd()} << 32) ^ rd();
  const uint64_t b = (uint64_t{rd()} << 32) ^ rd();
  std::snprintf(buf, sizeof buf, "ringloader-%d-%016llx%016llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return buf;
}

std::string human(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

std::string region_dir(const RegionOptions& o) { return o.dir.empty() ? std::string("/dev/shm") : o.dir; }

/// A new file in `dir` that has no name from the moment it exists, or (where the filesystem
/// has no O_TMPFILE) one whose name is removed before this returns.
core::UniqueFd open_nameless(const std::string& dir) {
  core::UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (fd) return fd;
  const int err = errno;
  if (err != EOPNOTSUPP && err != EISDIR && err != EINVAL) throw posix_error(err, "open(" + dir + ", O_TMPFILE)");
  const std::string path = dir + "/" + random_name();
  fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) throw posix_error(errno, "open(" + path + ")");
  if (::unlink(path.c_str()) != 0) throw posix_error(errno, "unlink(" + path + ")");
  return fd;
}

}  // namespace

RegionTooLarge::RegionTooLarge(uint64_t needed, uint64_t free, std::string where) : needed_(needed), free_(free) {
  message_ = "shared memory ring needs " + std::to_string(needed) + " bytes (" + human(needed) + ") but " + where +
             " has only " + std::to_string(free) + " bytes (" + human(free) +
             ") free; lower batch_size, num_workers or prefetch_factor, or enlarge " + where +
             " (docker: --shm-size=2g; a tmpfs: mount -o remount,size=2G " + where + ")";
}

uint64_t shm_free_bytes(const RegionOptions& options) {
  if (options.free_bytes_override) return *options.free_bytes_override;
  if (const char* env = std::getenv("RINGLOADER_TEST_SHM_FREE_BYTES"); env && *env) {
    return std::strtoull(env, nullptr, 10);
  }
  struct statvfs st {};
  const std::string dir = region_dir(options);
  if (::statvfs(dir.c_str(), &st) != 0) throw posix_error(errno, "statvfs(" + dir + ")");
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

SharedRegion SharedRegion::create(size_t bytes, const RegionOptions& options) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  bytes = (bytes + page - 1) / page * page;
  SharedRegion r;
  if (options.anonymous) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw posix_error(errno, "mmap(anonymous, " + std::to_string(bytes) + ")");
    r.name_ = "(anonymous)";
    r.map_.reset({static_cast<std::byte*>(p), bytes});
    return r;
  }
  const std::string dir = region_dir(options);
  const uint64_t free = shm_free_bytes(options);
  if (free < bytes) throw RegionTooLarge(bytes, free, dir);

  core::UniqueFd fd = open_nameless(dir);
  r.name_ = dir + " (nameless)";
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    throw posix_error(errno, "ftruncate(" + r.name_ + ", " + std::to_string(bytes) + ")");
  }
  // Back every page now: a full tmpfs must fail here, not as SIGBUS in a worker later.
  if (const int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes)); err != 0) {
    if (err == ENOSPC) throw RegionTooLarge(bytes, shm_free_bytes(RegionOptions{options.dir, {}}), dir);
    throw posix_error(err, "posix_fallocate(" + r.name_ + ", " + std::to_string(bytes) + ")");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
  if (p == MAP_FAILED) throw posix_error(errno, "mmap(" + r.name_ + ", " + std::to_string(bytes) + ")");
  r.map_.reset({static_cast<std::byte*>(p), bytes});
  if (options.keep_fd) r.fd_ = std::move(fd);
  return r;
}

SharedRegion SharedRegion::attach(int fd, size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw posix_error(errno, "mmap(received region fd " + std::to_string(fd) + ")");
  SharedRegion r;
  r.name_ = "(received)";
  r.map_.reset({static_cast<std::byte*>(p), bytes});
  return r;
}

}  // namespace ringloader::ipc
