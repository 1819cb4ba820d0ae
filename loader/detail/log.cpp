#include "loader/detail/log.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "core/error.hpp"
#include "loader/detail/records.hpp"

namespace ringloader::loader::detail {
namespace {

spdlog::level::level_enum parse(const std::string& s) {
  const auto l = spdlog::level::from_str(s);
  if (l == spdlog::level::off && s != "off") {
    throw ConfigError("log level '" + s + "' is not one of trace, debug, info, warn, error, critical, off");
  }
  return l;
}

spdlog::level::level_enum env_level() {
  spdlog::level::level_enum lvl = spdlog::level::warn;
  if (const char* env = std::getenv("RINGLOADER_LOG_LEVEL"); env && *env) {
    try {
      lvl = parse(env);
    } catch (const ConfigError&) {
    }
  }
  return lvl;
}

/// Writes formatted lines to fd 2 with write(2). A worker must not use spdlog's console sinks:
/// they share one process-wide mutex (and stdio's FILE lock), which another thread of the
/// parent may have held at fork() - the worker would wait for it forever. This sink's mutex is
/// its own, made after the fork.
class Fd2Sink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    const char* p = buf.data();
    size_t left = buf.size();
    while (left > 0) {
      const ssize_t n = ::write(2, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}
};

/// Copies each message (its text only) into WorkerRecord::last_log.
class LastLineSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit LastLineSink(WorkerRecord* r) : record_(r) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const size_t n = std::min(msg.payload.size(), sizeof record_->last_log - 1);
    std::memcpy(record_->last_log, msg.payload.data(), n);
    record_->last_log[n] = '\0';
  }
  void flush_() override {}

 private:
  WorkerRecord* record_;
};

std::shared_ptr<spdlog::logger> make(const std::string& pattern) {
  // Not registered with spdlog's registry: its mutex must not be shared across fork.
  auto l = std::make_shared<spdlog::logger>("ringloader", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  l->set_pattern(pattern);
  l->set_level(env_level());
  return l;
}

std::shared_ptr<spdlog::logger>& instance() {
  static std::shared_ptr<spdlog::logger> l = make("[%H:%M:%S.%e] [ringloader] [%l] %v");
  return l;
}

}  // namespace

spdlog::logger& log() { return *instance(); }

void use_worker_logger(int worker_id, WorkerRecord* record) {
  const auto level = instance()->level();
  auto console = std::make_shared<Fd2Sink>();
  console->set_pattern("[%H:%M:%S.%e] [ringloader worker " + std::to_string(worker_id) + " pid %P] [%l] %v");
  console->set_level(level);
  auto l = std::make_shared<spdlog::logger>("ringloader", console);
  if (record) {
    auto last = std::make_shared<LastLineSink>(record);
    last->set_level(spdlog::level::warn);  // kept whatever the console shows
    l->sinks().push_back(last);
  }
  l->set_level(std::min(level, spdlog::level::warn));
  // The parent's logger object is left as it was (its mutexes may be held by a thread that
  // does not exist here); it is never destroyed because the worker leaves through _exit.
  new (&instance()) std::shared_ptr<spdlog::logger>(std::move(l));
}

void set_level(const std::string& level) { instance()->set_level(parse(level)); }

}  // namespace ringloader::loader::detail
