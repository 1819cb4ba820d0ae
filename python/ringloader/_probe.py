"""Learning a torch dataset's batch layout without running it in the training process.

The slots are laid out before the first epoch, so the loader needs one sample's structure
(_collate.Plan) when it is built. torch's DataLoader runs dataset code only while iterating, in
its workers, and never calls `dataset[0]` or `iter(dataset)` in the training process: a dataset
that fails there, shards itself by get_worker_info(), or can be iterated once would behave
differently if ringloader did. So a child forked for the purpose loads the sample, as worker 0
of `num_workers` (get_worker_info() answers as in that worker; None with no workers, as torch's
in-process loading), and sends its Plan back through a pipe. Nothing it does reaches this
process: its draws, its reads, its exceptions.

A sample that raises is not an error here: the epoch raises it at the batch's place, as under
torch. The child tries the next index (up to PROBES of them); when every one raises, the loader
gets no layout, and each batch of each epoch raises its samples' own errors.
"""
from __future__ import annotations

import os
import pickle
import signal
import struct
import traceback

from . import _worker
from ._collate import Plan
from ._errors import ConfigError, TimeoutError  # noqa: A004 - rl.TimeoutError is a TimeoutError

PROBES = 32  # samples tried (the first 8, then spread over the dataset) before settling for no layout


class Probe:
    """What the child found: `plan` (None: no sample loaded), `index` (the sample it came from;
    for a stream, the worker whose part it began), `failures` [(index, "Type: message")]."""

    def __init__(self, plan=None, index=-1, failures=()):
        self.plan, self.index, self.failures = plan, index, list(failures)

    def failed(self):
        """The samples that raised, for messages: 'sample 0 (KeyError: 0), sample 1 (...)'."""
        return ", ".join(f"sample {i} ({e})" for i, e in self.failures)


def map_plan(ds, num_workers, timeout=0.0):
    """The Plan of the first of ds[0], ds[1], ... that loads, learned in a forked child. A
    sample that kills the child (a crash, os._exit) is a failure like one that raises: a new
    child goes on from the next."""
    n = len(ds)
    candidates = sorted(set(range(min(n, 8))) | {k * n // (PROBES - 8) for k in range(PROBES - 8)})
    if num_workers == 0:  # no workers: torch runs the dataset in this process, and so does this
        return _in_process(lambda: _map_child(ds, 0, candidates), ds)
    return _tries(lambda rest: _map_child(ds, num_workers, rest), candidates, ds, timeout)


def _in_process(work, ds):
    """What a child would answer, worked out here. Without workers nothing forks: a fork of a
    process whose torch thread pool has run can deadlock in that pool (torch never forks then)."""
    global _progress_fd
    _progress_fd = -1
    result = work()
    if result[0] == "plan":
        return Probe(result[1], result[2], result[3])
    return _result(result, ds)


def stream_plan(ds, num_workers, timeout=0.0):
    """The Plan of the first sample of worker 0's part of the stream (or worker 1's, ... when
    that part is empty or raises); Probe() with no failures when every part is empty."""
    return _tries(lambda rest: _stream_child(ds, num_workers, rest), list(range(max(1, num_workers))), ds, timeout)


def _tries(work, candidates, ds, timeout):
    failures = []
    while candidates:
        got = _run(lambda: work(candidates), ds, timeout)
        if not isinstance(got, _Died):
            got.failures = failures + got.failures
            return got
        if got.trying is None or got.trying not in candidates:
            raise ConfigError(f"the process that loads a {type(ds).__name__}'s first sample to learn the batch layout "
                              f"{got.why} before it loaded any")
        failures.append((got.trying, got.why))
        candidates = candidates[candidates.index(got.trying) + 1:]
    return Probe(None, -1, failures)


def collate_share(ds, collate_fn, num_workers, batch_size, stream, drop_last, timeout=0.0):
    """collate_fn's bytes per sample (a stream: per batch), from its output for the first batch,
    made in a child as worker 0 would; None when that batch raised or the stream is empty."""
    from . import _collate_fn

    def work():
        _pose_as_worker(ds, 0, num_workers)
        _trying(0)
        try:
            if stream:
                got = _collate_fn.first_stream_total(ds, collate_fn, batch_size, drop_last)
                return ("value", None if got is None else _collate_fn.share_for(got[0], 1))
            n = min(batch_size or 1, len(ds))
            total = _collate_fn.first_total(ds, collate_fn, list(range(n)), batch_size is not None)
            return ("value", _collate_fn.share_for(total, n))
        except Exception:  # noqa: BLE001 - the epoch raises it at the batch's place
            return ("value", None)
    if num_workers == 0:
        return work()[1]
    got = _run(work, ds, timeout)
    return None if isinstance(got, _Died) else got


def _pose_as_worker(ds, worker_id, num_workers):
    if num_workers > 0:
        _worker.pose_as(worker_id, num_workers, ds)


def _map_child(ds, num_workers, candidates):
    failures = []
    _pose_as_worker(ds, 0, num_workers)
    for index in candidates:
        _trying(index)
        try:
            sample = ds[index]
        except Exception as e:  # noqa: BLE001 - the epoch raises it at its place
            failures.append((index, _describe(e)))
            continue
        return _found(sample, index, failures, ds)
    return ("none", failures)


def _stream_child(ds, num_workers, worker_ids):
    failures = []
    for worker_id in worker_ids:
        _pose_as_worker(ds, worker_id, num_workers)
        _trying(worker_id)
        try:
            sample = next(iter(ds))
        except StopIteration:
            continue
        except Exception as e:  # noqa: BLE001 - that worker's epoch raises it; another part may load
            failures.append((worker_id, _describe(e)))
            continue
        return _found(sample, worker_id, failures, ds)
    return ("none", failures)


def _found(sample, index, failures, ds):
    plan = Plan(sample)  # a sample no batch can hold is a ConfigError: sent back, raised there
    in_child = _progress_fd >= 0
    return ("plan", _dumps(plan) if in_child else plan, index, failures)


class _ClassPickler(pickle.Pickler):
    """Classes pickle by name; one that has none (a namedtuple defined inside a function) goes
    by its id: the child is a fork, so a class made before the fork has the same id here and
    there, and the parent finds it among the live classes."""

    def persistent_id(self, obj):
        if isinstance(obj, type):
            try:
                pickle.dumps(obj)
            except Exception:  # noqa: BLE001 - no importable name
                return ("class", id(obj), obj.__qualname__)
        return None


class _ClassUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        _, ident, name = pid
        seen, todo = set(), [object]
        while todo:  # every live class, by walking subclasses
            cls = todo.pop()
            if id(cls) == ident:
                return cls
            for sub in type.__subclasses__(cls) if cls is not type else []:
                if id(sub) not in seen:
                    seen.add(id(sub))
                    todo.append(sub)
        raise ConfigError(f"the samples' type {name} is made anew by the dataset's code (a class defined inside "
                          "__getitem__ or __iter__), so batches cannot be built of it: define it once, at module level")


def _dumps(obj):
    import io
    buf = io.BytesIO()
    _ClassPickler(buf).dump(obj)
    return buf.getvalue()


def _loads(data):
    import io
    return _ClassUnpickler(io.BytesIO(data)).load()


def _describe(e):
    return f"{type(e).__name__}: {e}"


class _Died:
    """The child ended without an answer: `trying` (the index or worker it was loading) and why."""

    def __init__(self, trying, why):
        self.trying, self.why = trying, why


_progress_fd = -1  # in the child: where _trying() reports


def _trying(what):
    """In the child: about to load `what` (a sample index, or a stream worker's id)."""
    if _progress_fd >= 0:
        os.write(_progress_fd, b"T" + struct.pack("<q", what))


def _run(child_work, ds, timeout):
    global _progress_fd
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 0
        try:
            os.close(r)
            _progress_fd = w
            _die_with_parent()
            try:
                result = child_work()
            except ConfigError as e:
                result = ("config", str(e))
            except BaseException as e:  # noqa: BLE001 - whatever it is, the parent hears of it
                result = ("crash", _describe(e) + "\n" + "".join(traceback.format_exception(e)))
            data = pickle.dumps(result)
            view = memoryview(b"R" + struct.pack("<Q", len(data)) + data)
            while view:
                view = view[os.write(w, view):]
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    status = 0
    try:
        data = _read_all(r, timeout, pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(r)
        status = os.waitpid(pid, 0)[1]
    trying = None
    while data[:1] == b"T":  # progress: what it was loading
        trying = struct.unpack("<q", data[1:9])[0]
        data = data[9:]
    if data[:1] != b"R" or len(data) < 9 or len(data) - 9 != struct.unpack("<Q", data[1:9])[0]:
        why = (f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
               else f"exited with status {os.waitstatus_to_exitcode(status)}")
        return _Died(trying, f"{why} (pid {pid})")
    return _result(pickle.loads(data[9:]), ds)


def _die_with_parent():
    """SIGKILL when the training process dies: a dataset that hangs never outlives it."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(1)


def _read_all(fd, timeout, pid):
    import select
    chunks = []
    while True:
        # timeout bounds the wait for a batch; this one also forks and starts: at least 10 s
        if timeout > 0 and not select.select([fd], [], [], max(timeout, 10.0))[0]:
            raise TimeoutError(f"learning the batch layout: loading the dataset's first sample took over "
                               f"{max(timeout, 10.0)} s (timeout={timeout}; in process {pid}, now killed)")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _result(result, ds):
    kind = result[0]
    if kind == "plan":
        return Probe(_loads(result[1]), result[2], result[3])
    if kind == "value":
        return result[1]
    if kind == "none":
        return Probe(None, -1, result[1])
    if kind == "config":
        raise ConfigError(result[1])
    raise ConfigError(f"loading the first sample of a {type(ds).__name__} to learn the batch layout failed: {result[1]}")
