#include "loader/detail/log.hpp"

#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>

#include "core/error.hpp"

namespace ringloader::loader::detail {
namespace {

spdlog::level::level_enum parse(const std::string& s) {
  const auto l = spdlog::level::from_str(s);
  if (l == spdlog::level::off && s != "off") {
    throw ConfigError("log level '" + s + "' is not one of trace, debug, info, warn, error, critical, off");
  }
  return l;
}

std::shared_ptr<spdlog::logger> make(const std::string& pattern) {
  // Not registered with spdlog's registry: its mutex must not be shared across fork.
  auto l = std::make_shared<spdlog::logger>("ringloader", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  l->set_pattern(pattern);
  spdlog::level::level_enum lvl = spdlog::level::warn;
  if (const char* env = std::getenv("RINGLOADER_LOG_LEVEL"); env && *env) {
    try {
      lvl = parse(env);
    } catch (const ConfigError&) {
    }
  }
  l->set_level(lvl);
  return l;
}

std::shared_ptr<spdlog::logger>& instance() {
  static std::shared_ptr<spdlog::logger> l = make("[%H:%M:%S.%e] [ringloader] [%l] %v");
  return l;
}

}  // namespace

spdlog::logger& log() { return *instance(); }

void use_worker_logger(int worker_id) {
  const auto level = instance()->level();
  auto l = make("[%H:%M:%S.%e] [ringloader worker " + std::to_string(worker_id) + " pid %P] [%l] %v");
  l->set_level(level);
  // The parent's logger object is left as it was (its mutex may be held by a thread that
  // does not exist here); it is never destroyed because the worker leaves through _exit.
  new (&instance()) std::shared_ptr<spdlog::logger>(std::move(l));
}

void set_level(const std::string& level) { instance()->set_level(parse(level)); }

}  // namespace ringloader::loader::detail
