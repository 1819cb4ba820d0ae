"""What concerns the whole process: the fork server (init), the worker's identity
(get_worker_info), the C++ library's log level."""
from __future__ import annotations

import collections
import os
import pickle
import warnings

from . import _ringloader as _core
from . import _worker
from ._errors import ConfigError

WorkerInfo = collections.namedtuple("WorkerInfo", ["id", "num_workers", "seed", "dataset", "pid"])
WorkerInfo.__doc__ = "What get_worker_info() returns in a worker: torch.utils.data's, plus the pid."


def get_worker_info():
    """In a worker: its WorkerInfo, with the id, num_workers, seed and dataset that
    torch.utils.data.get_worker_info() gives there too, plus the pid. seed is the one `random`,
    `torch` and `numpy` were seeded from (torch's recipe); None in a fork-server worker until its
    first sample. In the training process: None."""
    s = _worker.current()
    if s is not None:
        return WorkerInfo(s.id, s.num_workers, s.seed, s.dataset, s.pid)
    t = _core.get_worker_info()
    return None if t is None else WorkerInfo(t[0], t[1], None, None, t[3])


def set_log_level(level: str) -> None:
    """The C++ library's log level: trace, debug, info, warn (default), error, off."""
    _core.set_log_level(level)


def _unpickle(data: bytes):
    return pickle.loads(data)


server_started = False  # rl.init() ran: loaders may use start_method="forkserver"


def init() -> None:
    """Start the fork server: call it first thing, before torch or any thread starts.

    Loaders with start_method="forkserver" then fork their workers from that small
    single-threaded process instead of this (threaded) one. Their dataset reaches the server
    pickled - a module-level class and its arguments, as PyTorch's forkserver requires."""
    global server_started
    if server_started:
        raise ConfigError("ringloader.init() called twice")
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threads > 1:
        warnings.warn(f"rl.init() was called while this process runs {threads} threads (importing torch or numpy "
                      "starts some): the fork server is forked from a threaded process, and a lock one of them "
                      "held stays locked in every worker it makes. Call rl.init() first thing in the program, "
                      "before other imports", RuntimeWarning, stacklevel=2)
    _core.register_factory("python", __name__, "_unpickle")  # ringloader._process._unpickle
    _core.init()
    server_started = True
