#include "datasets/detail/tar_writer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/error.hpp"
#include "core/fnv.hpp"

namespace ringloader::datasets::detail {

TarWriter::TarWriter(const std::string& path) : path_(path), digest_(core::kFnvOffset) {
  fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd_) throw Error(path + ": cannot create: " + std::strerror(errno));
  a_ = archive_write_new();
  if (!a_ || archive_write_set_format_ustar(a_) != ARCHIVE_OK || archive_write_set_bytes_per_block(a_, 0) != ARCHIVE_OK ||
      archive_write_open(a_, this, nullptr, &TarWriter::write_cb, nullptr) != ARCHIVE_OK) {
    const char* why = a_ ? archive_error_string(a_) : "archive_write_new failed";
    const std::string msg = path + ": libarchive: " + (why ? why : "failed without a message");
    if (a_) archive_write_free(a_);
    a_ = nullptr;
    throw Error(msg);
  }
}

TarWriter::~TarWriter() {
  if (a_) archive_write_free(a_);
}

uint64_t TarWriter::add(const std::string& name, const uint8_t* data, size_t size) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), name.c_str());
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_mtime(e.get(), 0, 0);  // deterministic bytes
  archive_entry_set_uid(e.get(), 0);
  archive_entry_set_gid(e.get(), 0);
  if (archive_write_header(a_, e.get()) != ARCHIVE_OK) fail("archive_write_header");
  const uint64_t at = bytes_;
  if (size > 0 && archive_write_data(a_, data, size) != static_cast<la_ssize_t>(size)) fail("archive_write_data");
  return at;
}

std::pair<uint64_t, uint64_t> TarWriter::finish() {
  if (archive_write_close(a_) != ARCHIVE_OK) fail("archive_write_close");
  if (::fsync(fd_.get()) != 0) throw Error(path_ + ": fsync: " + std::strerror(errno));
  return {bytes_, digest_};
}

ssize_t TarWriter::write_cb(archive*, void* self, const void* buf, size_t n) {
  auto* w = static_cast<TarWriter*>(self);
  const auto* p = static_cast<const char*>(buf);
  for (size_t done = 0; done < n;) {
    const ssize_t r = ::write(w->fd_.get(), p + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      w->error_ = errno;
      return -1;
    }
    done += static_cast<size_t>(r);
  }
  w->digest_ = core::fnv1a64(std::string_view(p, n), w->digest_);
  w->bytes_ += n;
  return static_cast<ssize_t>(n);
}

void TarWriter::fail(const char* call) {
  const char* why = error_ ? std::strerror(error_) : archive_error_string(a_);  // libarchive may give none
  throw Error(path_ + ": " + call + ": " + (why ? why : "failed without a message"));
}

void write_file(const std::string& path, std::string_view bytes) {
  core::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw Error(path + ": cannot create: " + std::strerror(errno));
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t r = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw Error(path + ": write: " + std::strerror(errno));
    done += static_cast<size_t>(r);
  }
  if (::fsync(fd.get()) != 0) throw Error(path + ": fsync: " + std::strerror(errno));
}

}  // namespace ringloader::datasets::detail
