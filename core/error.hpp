#pragma once
// The error hierarchy of ringloader. Every message names what the user can act on: the file,
// the sample index, the worker pid, the option and its value, or the failing system call.
//
// It lives in core/, below ipc/ and datasets/, so every layer throws the same types.
// System calls that fail inside ipc/ surface as std::system_error (core::posix_error) and
// are rethrown as IpcError with the context of the caller.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringloader {

/// Base of every exception ringloader throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shared memory, semaphores, fork: a system call failed or a resource is too small.
class IpcError : public Error {
 public:
  using Error::Error;
};

/// Bad options: the message names the option and the value.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A file's bytes could not be decoded into an image.
class DecodeError : public Error {
 public:
  DecodeError(std::string path, const std::string& reason)
      : Error(path + ": " + reason), path_(std::move(path)), reason_(reason) {}
  const std::string& path() const noexcept { return path_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

/// Dataset code failed on one sample. Raised in the training loop at that batch's place,
/// carrying what the worker saw: the exception type, its message, the index and the file.
class SampleError : public Error {
 public:
  /// what() is `what`, then the traceback on the following lines when there is one.
  SampleError(const std::string& what, int64_t index, std::string path, std::string type, std::string traceback = {})
      : Error(traceback.empty() ? what : what + "\n" + traceback),
        index_(index),
        path_(std::move(path)),
        type_(std::move(type)),
        traceback_(std::move(traceback)) {}
  int64_t index() const noexcept { return index_; }
  const std::string& path() const noexcept { return path_; }
  /// Name of the exception type thrown in the dataset (demangled where possible).
  const std::string& type() const noexcept { return type_; }
  /// The dataset code's own traceback (Python: "Traceback (most recent call last): ..."), or "".
  const std::string& traceback() const noexcept { return traceback_; }

 private:
  int64_t index_;
  std::string path_;
  std::string type_;
  std::string traceback_;
};

/// A worker process died or misbehaved; the message names its pid and the batch.
class WorkerError : public Error {
 public:
  using Error::Error;
};

/// A batch whose samples took down workers `max_retries` times. Names every index of the batch,
/// the samples the workers died in, and their files.
class BatchError : public WorkerError {
 public:
  BatchError(const std::string& what, std::vector<int64_t> indices, std::vector<int64_t> culprits)
      : WorkerError(what), indices_(std::move(indices)), culprits_(std::move(culprits)) {}
  const std::vector<int64_t>& indices() const noexcept { return indices_; }
  /// The samples being filled when the workers died.
  const std::vector<int64_t>& culprits() const noexcept { return culprits_; }

 private:
  std::vector<int64_t> indices_;
  std::vector<int64_t> culprits_;
};

/// A wait ran past the loader's `timeout`. Two cases, told apart by batch_given_up():
/// - false: next() waited `timeout` and the batch it waits for did not come (the message says
///   what it was waiting for: a worker filling it, no worker claiming it, ...). Nothing is
///   lost: a worker that hung on it was killed and the batch is retried; call next() again.
/// - true: the batch hung `max_retries` workers in turn and was given up at its place; its
///   indices are named in the message.
class TimeoutError : public Error {
 public:
  explicit TimeoutError(const std::string& what, bool batch_given_up = false)
      : Error(what), given_up_(batch_given_up) {}
  bool batch_given_up() const noexcept { return given_up_; }

 private:
  bool given_up_;
};

/// The system ran short of a resource (descriptors: EMFILE/ENFILE; memory: ENOMEM; processes
/// or threads: EAGAIN) while loading a sample. Never a property of the file, so it is never
/// skipped as a bad sample under on_error=skip: it was retried and is raised.
class ResourceError : public Error {
 public:
  ResourceError(const std::string& what, int error_number, std::string path = {}, int64_t index = -1)
      : Error(what), errno_(error_number), path_(std::move(path)), index_(index) {}
  int error_number() const noexcept { return errno_; }
  const std::string& path() const noexcept { return path_; }
  /// The sample being loaded, -1 if none (or not known where it was thrown).
  int64_t index() const noexcept { return index_; }

 private:
  int errno_;
  std::string path_;
  int64_t index_;
};

/// Must reach the caller of next() as it is, never become a sample's error: a Python
/// KeyboardInterrupt or SystemExit raised by dataset code running in the training process
/// (num_workers=0). The batch being filled goes back to the queue, whole.
class PassThrough : public Error {
 public:
  using Error::Error;
};

/// An exception of another language's (Python's) raised in dataset code: its type name
/// ("ValueError") and traceback travel with it, so the training loop's SampleError names them.
class ForeignError : public Error {
 public:
  ForeignError(const std::string& what, std::string type, std::string traceback = {})
      : Error(what), type_(std::move(type)), traceback_(std::move(traceback)) {}
  const std::string& type() const noexcept { return type_; }
  const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string type_;
  std::string traceback_;
};

/// A wait of the training loop was interrupted on request (DataLoader::interrupt(), e.g. from
/// a SIGINT handler). The loader stays usable.
class Interrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace ringloader
