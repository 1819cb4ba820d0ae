"""ringloader's exceptions. Every one is an `Error` (a RuntimeError); some are also the builtin
a PyTorch user already catches: `ConfigError` is a ValueError, `TimeoutError` a TimeoutError."""
import builtins


class Error(RuntimeError):
    """Base of every error ringloader raises."""


class ConfigError(Error, ValueError):
    """A bad option or dataset description; the message names the option and value."""


class IpcError(Error):
    """Shared memory, semaphores or fork failed (the message names the call and what to change)."""


class DecodeError(Error):
    """A file could not be decoded; `path` names it."""

    path = ""


class SampleError(Error):
    """Dataset code failed on one sample. `index`, `path`, `type` (the original exception's type
    name, e.g. "ValueError") and `traceback` (its text, from the worker) say where and why."""

    index = -1
    path = ""
    type = ""
    traceback = ""


class WorkerError(Error):
    """A worker process died in a way the loader could not recover from; names pid and signal."""


class BatchError(WorkerError):
    """A batch whose samples kept killing workers: `indices` and `culprits` (the samples in
    progress at each death)."""

    indices = ()
    culprits = ()


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 - the name PyTorch users know
    """A wait ran past `timeout`. `batch_given_up` False: next() waited `timeout` for a batch that
    may still come (call next() again); True: the batch hung its workers and was given up."""

    batch_given_up = False


class ResourceError(Error):
    """The system ran short (EMFILE, ENOMEM, EAGAIN) while loading sample `index` (`path`):
    retried, then raised; never skipped as a bad sample."""

    errno = 0
    path = ""
    index = -1


class Interrupted(Error):
    """A wait was ended by DataLoader.interrupt()."""
