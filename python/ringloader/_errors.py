"""ringloader's exceptions. Every one is an `Error` (a RuntimeError); some are also the builtin
a PyTorch user already catches: `ConfigError` is a ValueError, `TimeoutError` a TimeoutError."""
import builtins


class Error(RuntimeError):
    """Base of every error ringloader raises."""


class ConfigError(Error, ValueError):
    """A bad option or dataset description; the message names the option and value."""


class FolderNotFoundError(ConfigError, FileNotFoundError):
    """An ImageFolder root that is missing, has no class folder, or a class without an image:
    torchvision raises FileNotFoundError for each, and `except FileNotFoundError` catches it."""


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


_SAMPLE_ERRORS = {}


def _original_class(type_name):
    """The exception class a worker raised, from its name ("KeyError", "module.Class"), if this
    process has it; else None."""
    import sys
    module, _, qualname = type_name.rpartition(".")
    obj = builtins if not module else sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) and issubclass(obj, Exception) else None


def sample_error_class(type_name):
    """SampleError, also a subclass of the original exception's class when that can be combined
    (as torch re-raises the worker's exception type): `except KeyError` catches a KeyError
    raised in a worker, and `except rl.SampleError` still does."""
    cls = _SAMPLE_ERRORS.get(type_name)
    if cls is None:
        cls = SampleError
        original = _original_class(type_name)
        # StopIteration never: raised from the iterator's __next__ it would end the epoch silently.
        if original is not None and not issubclass(SampleError, original) and not issubclass(original, StopIteration):
            try:  # the message as it is, not KeyError's repr of it
                cls = type(f"SampleError[{original.__name__}]", (SampleError, original),
                           {"__str__": BaseException.__str__, "__module__": __name__})
            except TypeError:  # layouts that cannot be combined (OSError's): a plain SampleError
                cls = SampleError
        _SAMPLE_ERRORS[type_name] = cls
    return cls


def new_error(cls, message):
    """An instance without running a user class's own __init__ (whose arguments are unknown)."""
    for base in cls.__mro__:  # the __new__ of the class that owns the layout (OSError's, for one)
        try:
            inst = base.__new__(cls, message)
            break
        except TypeError:
            continue
    BaseException.__init__(inst, message)
    return inst
