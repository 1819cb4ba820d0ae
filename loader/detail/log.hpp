#pragma once
// The library's logger: quiet by default (warn), RINGLOADER_LOG_LEVEL raises it. Workers get
// their own synchronous logger, made after fork, with the worker id in the pattern; it also
// keeps the worker's last warning or error in its shared WorkerRecord, so the main process can
// quote it when the worker dies.
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace ringloader::loader::detail {

struct WorkerRecord;

spdlog::logger& log();
/// In a freshly forked worker: replace the logger with one tagged with the worker id, whose
/// warnings and errors are also copied into `record` (may be null).
void use_worker_logger(int worker_id, WorkerRecord* record);
void set_level(const std::string& level);

}  // namespace ringloader::loader::detail
