#include "loader/detail/batch_error.hpp"

#include "core/error.hpp"

namespace ringloader::loader::detail {

std::string join_indices(std::span<const int64_t> idx, size_t max_shown) {
  std::string s;
  for (size_t i = 0; i < idx.size() && i < max_shown; ++i) s += (i ? "," : "") + std::to_string(idx[i]);
  if (idx.size() > max_shown) s += ",... (" + std::to_string(idx.size()) + " in all)";
  return s;
}

void write_batch_error(BatchMeta& meta, ErrorKind kind, int64_t index, int pid, int err, const std::string& type,
                       const std::string& path, const std::string& message, const std::string& traceback) {
  meta.status = BatchStatus::kError;
  meta.error_kind = kind;
  meta.error_index = index;
  meta.error_pid = pid;
  meta.error_errno = err;
  copy_to_field(meta.error_type, type);
  copy_to_field(meta.error_path, path);
  copy_to_field(meta.error_message, message);
  copy_to_field(meta.error_traceback, traceback);
}

std::exception_ptr read_batch_error(const BatchMeta& meta, BatchErrorContext ctx) {
  // The fields are copied out of shared memory here: the slot is freed before the throw.
  const std::string type = meta.error_type[0] ? meta.error_type : "unknown";
  const std::string message = meta.error_message;
  const std::string path = meta.error_path;
  const std::string traceback = meta.error_traceback;
  const int64_t index = meta.error_index;
  switch (meta.error_kind) {
    case ErrorKind::kTimeout: return std::make_exception_ptr(TimeoutError(message, true));
    case ErrorKind::kWorker:
      return std::make_exception_ptr(BatchError(message, std::move(ctx.indices), std::move(ctx.culprits)));
    case ErrorKind::kResource:
    case ErrorKind::kSample: break;
  }
  const std::string where = ctx.in_worker ? "worker pid " + std::to_string(meta.error_pid) : std::string("the main process");
  std::string sample = "sample " + std::to_string(index);
  if (!path.empty()) sample += " (" + path + ")";
  sample += " of batch " + std::to_string(ctx.seq);
  if (meta.error_kind == ErrorKind::kResource) {
    return std::make_exception_ptr(ResourceError(sample + " could not be loaded in " + where + ": " + message +
                                                     "; the batch (indices " + join_indices(ctx.indices) + ") was not delivered",
                                                 meta.error_errno, path, index));
  }
  return std::make_exception_ptr(
      SampleError(sample + " raised " + type + " in " + where + ": " + message, index, path, type, traceback));
}

}  // namespace ringloader::loader::detail
