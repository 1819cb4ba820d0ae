#pragma once
// The library's logger: quiet by default (warn), RINGLOADER_LOG_LEVEL raises it. Workers get
// their own synchronous logger, made after fork, with the worker id in the pattern.
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace ringloader::loader::detail {

spdlog::logger& log();
/// In a freshly forked worker: replace the logger with one tagged with the worker id.
void use_worker_logger(int worker_id);
void set_level(const std::string& level);

}  // namespace ringloader::loader::detail
