"""ringloader: a drop-in data loader for PyTorch training scripts.

Forked worker processes decode samples straight into a shared-memory ring of batch slots;
each batch reaches the training loop as zero-copy tensors, and its slot goes back to the ring
when the last of them is freed. Nothing is pickled, nothing is copied twice.

    import ringloader as rl
    train = rl.ImageFolder("/data/train", size=224, random_crop=True, flip=True)
    loader = rl.DataLoader(train, batch_size=256, shuffle=True, num_workers=8,
                           persistent_workers=True, seed=1)
    for epoch in range(90):
        loader.set_epoch(epoch)
        for images, labels in loader:      # uint8 N x 224 x 224 x 3, int64 N
            ...
"""
from __future__ import annotations

import collections
import functools
import os
import pickle
import sys
import warnings

from . import _ringloader as _core
from . import _worker
from ._collate import Plan as _Plan
from . import vision
from .vision import FileList, ImageFolder, Shards, _ImageDataset
from ._errors import (BatchError, ConfigError, DecodeError, Error, Interrupted, IpcError, ResourceError,
                      SampleError, TimeoutError, WorkerError)

__all__ = [
    "init", "get_worker_info", "WorkerInfo", "Dataset", "IterableDataset", "ImageFolder", "FileList", "Shards",
    "DistributedSampler", "BlockShuffleSampler", "DataLoader", "Batch", "set_log_level",
    "Error", "ConfigError", "IpcError", "DecodeError", "SampleError", "WorkerError", "BatchError",
    "TimeoutError", "ResourceError", "Interrupted",
]

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


_server_started = False


def init() -> None:
    """Start the fork server: call it first thing, before torch or any thread starts.

    Loaders with start_method="forkserver" then fork their workers from that small
    single-threaded process instead of this (threaded) one. Their dataset reaches the server
    pickled - a module-level class and its arguments, as PyTorch's forkserver requires."""
    global _server_started
    if _server_started:
        raise ConfigError("ringloader.init() called twice")
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threads > 1:
        warnings.warn(f"rl.init() was called while this process runs {threads} threads (importing torch or numpy "
                      "starts some): the fork server is forked from a threaded process, and a lock one of them "
                      "held stays locked in every worker it makes. Call rl.init() first thing in the program, "
                      "before other imports", RuntimeWarning, stacklevel=2)
    _core.register_factory("python", __name__, "_unpickle")
    _core.init()
    _server_started = True


# ---------------------------------------------------------------- datasets

class Dataset:
    """A map-style dataset that writes each sample straight into the batch slot.

    Subclasses set `schema` ({name: (dtype, shape)} or (dtype, largest shape, "variable")),
    define __len__ and get(index, out). `out[name]` is a writable NumPy view of the field in
    the slot; `out.rng` a numpy Generator seeded from (seed, epoch, index). Optional:
    source(index) (a file name for error messages), on_worker_start(worker_info),
    fingerprint() (checked by load_state_dict)."""

    schema: dict = {}

    def __len__(self) -> int:
        raise NotImplementedError

    def get(self, index: int, out) -> None:
        raise NotImplementedError


class IterableDataset:
    """A stream: set `schema`, define __iter__ yielding samples (tuples in schema order, or
    dicts); shard it with get_worker_info(). set_epoch(epoch), if defined, is called before
    each epoch's __iter__ in every worker."""

    schema: dict = {}

    def __iter__(self):
        raise NotImplementedError


class _NativeSampler:
    """A sampler computed in C++ from (seed, epoch): the loader runs it natively."""

    _native: _core.Sampler
    seed = None
    epoch = None

    def __len__(self) -> int:
        return len(self._native)

    def set_epoch(self, epoch: int) -> None:
        """As in PyTorch: the loader then iterates this epoch (same as loader.set_epoch)."""
        self.epoch = epoch

    def __iter__(self):
        return iter(self._native.indices(self.seed or 0, self.epoch or 0))


class BlockShuffleSampler(_NativeSampler):
    """Near-sequential order for data larger than memory: shuffles the shards, then the samples
    within a window of `window` shards, from the loader's seed and epoch. With several ranks
    (rank and world size from torchrun, Open MPI or Slurm unless given) each rank takes whole
    shards; ranks are padded (or cut, drop_last) to the same length.

        ds = rl.Shards("/data/train-packed", random_crop=True, flip=True)
        loader = rl.DataLoader(ds, batch_size=256, num_workers=8, sampler=rl.BlockShuffleSampler(ds))"""

    def __init__(self, dataset_or_block_sizes, window=4, num_replicas=None, rank=None, seed=None, drop_last=False):
        sizes = dataset_or_block_sizes
        if hasattr(sizes, "shard_sizes"):
            sizes = sizes.shard_sizes
        self.rank, self.num_replicas, self.local_rank, self.launcher = _core.detect_distributed(rank, num_replicas)
        self.window, self.seed, self.drop_last = window, seed, drop_last
        self._native = _core.BlockShuffleSampler(list(sizes), window, seed, self.rank, self.num_replicas, drop_last)
        self.epoch = None


class DistributedSampler(_NativeSampler):
    """torch.utils.data.DistributedSampler's rule (padding by wrap-around, rank r takes
    positions r, r + world, ...). Rank and world size come from torchrun, Open MPI or Slurm
    variables unless given. The shuffle follows the loader's seed and epoch."""

    def __init__(self, dataset_or_size, num_replicas=None, rank=None, shuffle=True, seed=None, drop_last=False):
        n = dataset_or_size if isinstance(dataset_or_size, int) else len(dataset_or_size)
        self.rank, self.num_replicas, self.local_rank, self.launcher = _core.detect_distributed(rank, num_replicas)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self._native = _core.DistributedSampler(n, self.rank, self.num_replicas, shuffle, seed, drop_last)
        self.epoch = None


# ---------------------------------------------------------------- adapters for torch datasets

class _TorchMapDataset(Dataset):
    """An existing map-style dataset (torch.utils.data.Dataset, or anything with __getitem__ and
    __len__) run unchanged: each sample is copied once into the slot."""

    def __init__(self, ds, schema=None):
        self.ds = ds
        self.plan = None  # how a sample travels and its batch is shaped (default_collate's shapes)
        if schema is not None:
            self.schema, self.kind = schema, "tuple"
        elif len(ds) == 0:  # torch's DataLoader gives 0 batches; there is no sample to infer from
            self.schema, self.kind = {"0": ("uint8", ())}, "single"
        else:
            self.plan = _Plan(ds[0])
            self.schema, self.kind = self.plan.schema, "plan"

    @property
    def _user_dataset(self):  # what get_worker_info().dataset is: the user's dataset, as in torch
        return self.ds

    def __len__(self):
        return len(self.ds)

    def get(self, index, out):
        sample = self.ds[index]
        out.write(sample if self.plan is None else self.plan.encode(sample))


class _TorchIterableDataset(IterableDataset):
    def __init__(self, ds, schema=None):
        self.ds = ds
        self.plan = None
        if schema is None:
            try:
                self.plan = _Plan(next(iter(ds)))
                schema, self.kind = self.plan.schema, "plan"
            except StopIteration:  # an empty stream: 0 batches, as under torch
                schema, self.kind = {"0": ("uint8", ())}, "single"
        else:
            self.kind = "tuple"
        self.schema = schema

    @property
    def _user_dataset(self):
        return self.ds

    def set_epoch(self, epoch):
        if hasattr(self.ds, "set_epoch"):
            self.ds.set_epoch(epoch)

    def __iter__(self):
        if self.plan is None:
            return iter(self.ds)
        return map(self.plan.encode, self.ds)


# ---------------------------------------------------------------- batches and the loader

def _is_iterable(ds):
    """Iterable-style: an rl.IterableDataset, a torch IterableDataset (with __len__ or not: torch's
    Dataset base defines __getitem__), or anything with __iter__ and no __getitem__."""
    if isinstance(ds, IterableDataset):
        return True
    if isinstance(ds, (Dataset, _ImageDataset)):
        return False
    tud = sys.modules.get("torch.utils.data")
    if tud is not None and isinstance(ds, tud.IterableDataset):
        return True
    return not hasattr(ds, "__getitem__") and hasattr(ds, "__iter__")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_arguments(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, timeout, prefetch_factor,
                     persistent_workers, drop_last, seed, max_retries):
    """torch.utils.data.DataLoader's checks, in its order, with its messages (rl.ConfigError is a
    ValueError), and the options torch leaves to fail later named here."""
    import math
    if not _is_int(num_workers):
        raise ConfigError(f"num_workers must be an int, got {num_workers!r}")
    if num_workers < 0:
        raise ConfigError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ConfigError(f"timeout must be a number of seconds, got {timeout!r}")
    if timeout < 0:
        raise ConfigError("timeout option should be non-negative")
    if not math.isfinite(timeout) or timeout > 1e9:
        raise ConfigError(f"timeout must be a finite number of seconds up to 1e9 (0: no timeout), got {timeout!r}")
    if num_workers == 0 and prefetch_factor is not None:
        raise ConfigError("prefetch_factor option could only be specified in multiprocessing."
                          "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
    if prefetch_factor is not None and (not _is_int(prefetch_factor) or prefetch_factor < 0):
        raise ConfigError("prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ConfigError("persistent_workers option needs num_workers > 0")
    if _is_iterable(dataset):
        if shuffle not in {False, None}:
            raise ConfigError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle={shuffle}")
        if sampler is not None:
            raise ConfigError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got sampler={sampler}")
        if batch_sampler is not None:
            raise ConfigError("DataLoader with IterableDataset: expected unspecified "
                              f"batch_sampler option, but got batch_sampler={batch_sampler}")
    if sampler is not None and shuffle:
        raise ConfigError("sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ConfigError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last")
    elif batch_size is None:
        if drop_last:
            raise ConfigError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
    elif not _is_int(batch_size) or batch_size <= 0:
        raise ConfigError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
    elif not isinstance(drop_last, bool):
        raise ConfigError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
    if prefetch_factor == 0 and num_workers > 0:
        raise ConfigError("prefetch_factor must be greater than 0 with workers (each needs a slot to fill)")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 1 << 64):
        raise ConfigError(f"seed must be an integer in [0, 2**64), got seed={seed!r}")
    if not _is_int(max_retries) or max_retries < 0:
        raise ConfigError(f"max_retries must be a non-negative integer, got max_retries={max_retries!r}")


def _start_method(start_method, multiprocessing_context, num_workers):
    """torch's multiprocessing_context (a name or a multiprocessing context) as ringloader's
    start_method. ringloader forks: 'forkserver' and 'spawn' run in its fork server when
    rl.init() started one, else forked from this process, with a warning."""
    if multiprocessing_context is None:
        return start_method
    if num_workers == 0:
        raise ConfigError("multiprocessing_context can only be used with multi-process loading "
                          f"(num_workers > 0), but got num_workers={num_workers}")
    name = multiprocessing_context
    if not isinstance(name, str):
        if not hasattr(name, "get_start_method"):
            raise ConfigError("multiprocessing_context option should be a valid context object or a string "
                              f"specifying the start method, but got multiprocessing_context={multiprocessing_context}")
        name = name.get_start_method()
    if name not in ("fork", "forkserver", "spawn"):
        raise ConfigError("multiprocessing_context option should specify a valid start method in "
                          f"['fork', 'spawn', 'forkserver'], but got multiprocessing_context={name!r}")
    if name == "fork":
        return "fork"
    if _server_started:
        return "forkserver"
    warnings.warn(f"multiprocessing_context='{name}': ringloader starts its workers from its fork server, which "
                  "rl.init() (first thing in the program) starts; without it they are forked from this process",
                  RuntimeWarning, stacklevel=3)
    return "fork"


def _largest_batch(batch_sampler):
    """The most indices a batch of `batch_sampler` holds (sizes the slots): a torch BatchSampler's
    batch_size, else the largest batch of one pass over it."""
    size = getattr(batch_sampler, "batch_size", None)
    if _is_int(size) and size > 0:
        return size
    largest = max((len(b) for b in batch_sampler), default=0)
    if largest == 0:
        raise ConfigError("batch_sampler gave no batch with an index in it")
    return largest


def _draw_seed(generator):
    """The loader's seed when none is given: drawn from `generator` or torch's default generator,
    as torch's DataLoader draws its base seed, so torch.manual_seed(s) reproduces the run (shuffle
    order, crops, the workers' random/torch/numpy). Without torch: None (a random seed)."""
    try:
        import torch
    except ImportError:
        if generator is not None:
            raise ConfigError("generator= is a torch.Generator, and torch cannot be imported") from None
        return None
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


class Batch(tuple):
    """One batch: a tuple of its fields in schema order (`images, labels = batch`), also
    batch["image"]; `indices` (the dataset indices), `skipped` ((index, path, reason) dropped
    under on_error="skip"), `names`, `seq` (batch number in its epoch), `epoch`. Zero-copy: the
    slot returns to the ring when the last tensor of the batch is freed."""

    def __new__(cls, fields, names, core_batch):
        b = super().__new__(cls, fields)
        b._names = names
        b._core = core_batch
        return b

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise KeyError(f"no field '{key}' in this batch (fields: {', '.join(self._names)})") from None
        return tuple.__getitem__(self, key)

    @property
    def names(self):
        return list(self._names)

    @property
    def indices(self):
        """The dataset indices of this batch's samples: a small copy, so keeping it never pins
        the batch's slot."""
        cached = self.__dict__.get("_indices")
        if cached is None:
            cached = self.__dict__["_indices"] = self._core.indices.copy()
        return cached

    def __reduce__(self):
        """pickle, copy.copy, copy.deepcopy and torch.save copy the data out of the slot: the
        copy owns its memory and pins nothing."""
        def owned(x):
            if isinstance(x, list):
                return [owned(v) for v in x]
            return x.clone() if hasattr(x, "clone") else x.copy()
        released = _Released(self.indices, list(self.skipped), self.seq, self.epoch)
        return (_rebuild_batch, (tuple(owned(x) for x in self), list(self._names), released))

    @property
    def skipped(self):
        return self._core.skipped

    @property
    def seq(self):
        return self._core.seq

    @property
    def epoch(self):
        return self._core.epoch


_Released = collections.namedtuple("_Released", ["indices", "skipped", "seq", "epoch"])


def _rebuild_batch(fields, names, released):
    return Batch(fields, names, _Released(*released))


class DataLoader:
    """torch.utils.data.DataLoader's arguments and behaviour, with workers that decode into a
    shared-memory ring.

    dataset: rl.ImageFolder / rl.FileList (decoded in C++), an rl.Dataset / rl.IterableDataset,
    or an existing torch Dataset (its schema inferred from sample 0, or given as schema=).
    Each iteration is an epoch; batches are tuples of torch tensors (NumPy arrays with
    format="numpy" or when torch is absent) viewing the slot; copy=True gives owning tensors.
    timeout (seconds) bounds every wait: past it rl.TimeoutError says what was waited for.
    on_error: "raise" (rl.SampleError at the batch's place) or "skip" (dropped and reported)."""

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True, seed=None, on_error="raise", start_method="fork",
                 max_retries=3, shm_dir="", format=None, copy=False, schema=None):
        _check_arguments(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, timeout,
                         prefetch_factor, persistent_workers, drop_last, seed, max_retries)
        if prefetch_factor is None and num_workers > 0:
            prefetch_factor = 2  # torch's default with workers
        start_method = _start_method(start_method, multiprocessing_context, num_workers)
        self._auto_batch = batch_size is not None or batch_sampler is not None  # torch's auto-collation
        if batch_sampler is not None:  # as torch: batch_size and drop_last then say nothing
            batch_size, drop_last = None, False
        if collate_fn is not None:
            raise ConfigError("collate_fn is not supported: batches are stacked in place in shared memory (each field "
                              "N-first); transform samples in the dataset instead")
        if format is None:
            try:
                import torch  # noqa: F401
                format = "torch"
            except ImportError:
                format = "numpy"
        if format not in ("torch", "numpy"):
            raise ConfigError(f"format='{format}' is not one of 'torch', 'numpy'")
        self.format, self.copy = format, copy
        self.dataset = dataset
        self.batch_size, self.num_workers = batch_size, num_workers
        self._single = False
        core_ds = dataset
        if isinstance(dataset, _ImageDataset) and dataset.native:
            core_ds = dataset._native
        elif isinstance(dataset, _ImageDataset):  # a transform the native pipeline does not have: torchvision's way
            vision._warn_fallback(dataset)
            core_ds = _TorchMapDataset(dataset, schema)
            self._single = core_ds.kind == "single"
        elif isinstance(dataset, Dataset) or isinstance(dataset, IterableDataset):
            if schema is not None:
                dataset.schema = schema
        elif _is_iterable(dataset):
            core_ds = _TorchIterableDataset(dataset, schema)
            self._single = core_ds.kind == "single"
        elif hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
            core_ds = _TorchMapDataset(dataset, schema)
            self._single = core_ds.kind == "single"
        else:
            raise ConfigError(f"a {type(dataset).__name__} is not a dataset: give an rl.Dataset, rl.IterableDataset, "
                              "rl.ImageFolder or a torch Dataset")
        plan = getattr(core_ds, "plan", None) if isinstance(core_ds, (_TorchMapDataset, _TorchIterableDataset)) else None
        if plan is not None:  # a torch dataset: batches shaped as default_collate shapes them
            self._single = False
            self._make_batch = self._collated(plan.build if self._auto_batch else plan.build_one)
        elif isinstance(dataset, _ImageDataset) and dataset.transform is not None:
            # torchvision's form: [images, targets], as torch gives (batch_size=None: (image, target))
            self._make_batch = self._collated(list if self._auto_batch else (lambda f: [f[0][0], int(f[1][0])]))
        else:
            self._make_batch = Batch
        self.last_batch = None
        if start_method == "forkserver":
            if isinstance(dataset, IterableDataset) or isinstance(core_ds, _TorchIterableDataset):
                raise ConfigError('start_method="forkserver" takes a map-style dataset (rl.Dataset, rl.ImageFolder, '
                                  'rl.FileList, rl.Shards or a torch map-style Dataset); an iterable dataset runs '
                                  'with start_method="fork"')
            if not _server_started:
                raise ConfigError('start_method="forkserver" needs rl.init() called first thing in the program')
            try:
                core_ds = ("recipe", "python", pickle.dumps(dataset if isinstance(dataset, _ImageDataset) else core_ds))
            except Exception as e:  # noqa: BLE001 - any pickling failure means the same thing
                raise ConfigError(f'start_method="forkserver" sends the dataset to the server pickled, and this one '
                                  f"cannot be: {e}. Define its class at module level") from e
        self.generator = generator
        self._shuffle = bool(shuffle)
        self._stream = isinstance(core_ds, IterableDataset)
        options = dict(batch_size=batch_size if self._auto_batch else 1, shuffle=bool(shuffle), drop_last=drop_last, num_workers=num_workers,
                       prefetch_factor=prefetch_factor or 2,  # without workers the ring still has 2 slots
                       # the batch the loop keeps while the next is handed out, and at least one to fill
                       extra_slots=2 if prefetch_factor == 1 else 1,
                       persistent_workers=persistent_workers, timeout=timeout,
                       seed=seed, default_seed=None if seed is not None else _draw_seed(generator),
                       in_order=in_order, on_error=on_error, max_retries=max_retries, shm_dir=shm_dir,
                       start_method=start_method, sampler=sampler,
                       batch_sampler=None if batch_sampler is None else (batch_sampler, _largest_batch(batch_sampler)),
                       # torch calls worker_init_fn only in workers, after seeding them
                       worker_init_fn=functools.partial(_worker.call_init_fn, worker_init_fn, dataset)
                       if worker_init_fn is not None and num_workers > 0 else None)
        self.worker_init_fn = worker_init_fn
        self.sampler = sampler
        self._iter_gen = 0
        self._loader = _core.Loader(core_ds, options)
        self._layout = None  # (names, ragged, to_tensor), from the first batch: one assignment, so a Ctrl-C never half-sets it
        self._warned_threads = False
        self._pinned = None
        self.prefetch_factor, self.persistent_workers = prefetch_factor, persistent_workers
        self.timeout, self.drop_last, self.in_order = timeout, drop_last, in_order
        self.pin_memory, self.pin_memory_device = pin_memory, pin_memory_device
        self.multiprocessing_context, self.collate_fn, self.batch_sampler = multiprocessing_context, collate_fn, batch_sampler
        if pin_memory:
            self._pin()
        self._initialized = True

    # torch freezes these once the loader is built (the ring and its workers are shaped by them)
    _FROZEN = frozenset(("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers"))
    # torch applies these to the next epoch; here the ring and the workers are made with the loader
    _BUILT_IN = frozenset(("num_workers", "prefetch_factor", "pin_memory", "pin_memory_device", "timeout",
                           "worker_init_fn", "multiprocessing_context", "generator", "collate_fn", "in_order"))
    _initialized = False

    def __setattr__(self, attr, val):
        if self._initialized:
            if attr in self._FROZEN:
                raise ConfigError(f"{attr} attribute should not be set after DataLoader is initialized")
            if attr in self._BUILT_IN:
                raise ConfigError(f"{attr} cannot be changed once a ringloader DataLoader is built (its ring and "
                                  "workers are made with it; torch's would apply it to the next epoch): make a "
                                  "new DataLoader")
        super().__setattr__(attr, val)

    # -- iteration
    def __iter__(self):
        """Starts an epoch (abandoning an unfinished one) and iterates it."""
        loader = self._loader
        if isinstance(self.sampler, _NativeSampler) and self.sampler.epoch is not None:
            loader.set_epoch(self.sampler.epoch)
        try:
            loader.start_epoch()
        except ConfigError as e:
            raise self._name_the_difference(e) from None
        self._iter_gen += 1  # an earlier iterator of this loader stops here (its epoch is abandoned)
        self._warn_threads()
        return _core.EpochIterator(self)  # C++ from the hand-out to the batch: see bindings.cpp

    def _wrap(self, b, copy=None):
        copy = self.copy if copy is None else copy
        arrays = b.arrays()
        if self._layout is None:
            to_tensor = None
            if self.format == "torch":
                import torch
                to_tensor = torch.from_numpy
            self._layout = (b.names, any(isinstance(x, list) for x in arrays), to_tensor)
        names, ragged, to_tensor = self._layout
        if copy:
            arrays = tuple([a.copy() for a in x] if isinstance(x, list) else x.copy() for x in arrays)
            b = _Released(b.indices.copy(), b.skipped, b.seq, b.epoch)  # the iterator then gives the slot back
        if self.format == "torch":
            t = to_tensor
            if ragged:
                arrays = tuple([t(a) for a in x] if isinstance(x, list) else t(x) for x in arrays)
            else:
                arrays = tuple(map(t, arrays))  # the per-batch path: kept short
        if self._single:
            return arrays[0] if self._auto_batch else arrays[0][0]
        return self._make_batch(arrays, names, b)

    def _collated(self, build):
        """A batch maker for torch-shaped batches, which carry no attributes: what rl.Batch says
        (indices, skipped, seq, epoch) goes to loader.last_batch, copied (it pins no slot)."""
        def make(arrays, names, core):
            self.__dict__["last_batch"] = _Released(core.indices.copy(), core.skipped, core.seq, core.epoch)
            return build(arrays)
        return make

    def _warn_threads(self):
        if self._warned_threads or self._loader.stats()["threaded_forks"] == 0:
            return
        self._warned_threads = True
        warnings.warn("ringloader forked its workers from a process that runs other threads (torch starts some); a "
                      "lock one of them held stays locked in the workers. Call rl.init() first thing in the program "
                      'and pass start_method="forkserver"', RuntimeWarning, stacklevel=3)

    def __len__(self) -> int:
        if self._stream:  # as torch's len() of an IterableDataset: a TypeError, which list() expects
            raise TypeError("the number of batches of a stream (iterable) dataset is not known in advance")
        return len(self._loader)

    # -- position
    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration runs (shuffles and random crops derive from it). A sampler
        of the user's own with set_epoch (torch's DistributedSampler) is told too; without this
        call the loader never sets a sampler's epoch, as torch's DataLoader never does."""
        self._loader.set_epoch(epoch)
        if self.sampler is not None and not isinstance(self.sampler, _NativeSampler) and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict:
        """The loader's position at this batch boundary; load_state_dict() on a loader built the
        same way continues with exactly the batches still to come, byte for byte."""
        return {"ringloader_state": self._loader.state(), "batching": self._batching()}

    def load_state_dict(self, state: dict) -> None:
        """Resumes a state_dict(). A state from a loader that batches or orders differently
        (batch_size, drop_last, shuffle, sampler) is a ConfigError naming what differs; the order
        itself is checked when the resumed epoch starts (so a torch DistributedSampler's
        set_epoch may come after this call), and a mismatch raises there."""
        if not isinstance(state, dict) or not isinstance(state.get("ringloader_state"), str):
            raise ConfigError("load_state_dict() takes what state_dict() returned: a dict with a "
                              f"'ringloader_state' string, got {type(state).__name__}"
                              + (f" with keys {sorted(map(str, state))}" if isinstance(state, dict) else ""))
        self._loader.load_state(state["ringloader_state"])
        self._loaded_batching = state.get("batching") or {}

    def _name_the_difference(self, e):
        """The native check at the resumed epoch's start compares the batches themselves; name the
        option behind a mismatch when the saved state says how it was made."""
        saved = getattr(self, "_loaded_batching", None) or {}
        if "batched or ordered differently" in str(e):
            for key, mine in self._batching().items():
                if key in saved and saved[key] != mine:
                    return ConfigError(f"the saved state was made with {key}={saved[key]!r}, this loader has "
                                       f"{key}={mine!r}: resuming would skip or repeat samples ({e})")
        return e

    def _batching(self):
        return {"batch_size": self.batch_size, "drop_last": self.drop_last, "shuffle": self._shuffle,
                "sampler": None if self.sampler is None else type(self.sampler).__name__}

    # -- inspection and control
    @property
    def seed(self) -> int:
        return self._loader.seed

    @property
    def skipped(self):
        """(index, path, reason) of every sample skipped under on_error="skip"."""
        return self._loader.skipped()

    def stats(self) -> dict:
        return self._loader.stats()

    def worker_pids(self):
        return self._loader.worker_pids()

    def shared_memory(self):
        """(address, bytes) of the shared memory the batches live in."""
        return self._loader.shared_memory()

    def interrupt(self) -> None:
        """End a waiting next() with rl.Interrupted (safe from a signal handler or another thread)."""
        self._loader.interrupt()

    def close(self) -> None:
        """Stop the workers now (batches still held stay valid). The loader, and any iterator of
        it, then raises rl.ConfigError saying it was closed. Idempotent."""
        if self.__dict__.get("_pinned") is not None:
            import torch
            torch.cuda.cudart().cudaHostUnregister(self._pinned)
            self._pinned = None
        loader = self.__dict__.get("_loader")
        if loader is not None:
            loader.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _pin(self):
        import torch
        if self.pin_memory_device:
            warnings.warn("pin_memory_device is deprecated, the current accelerator will be used as the device,"
                          f"ignore pin_memory_device='{self.pin_memory_device}'.", stacklevel=3)
        if not torch.cuda.is_available():
            # as torch's DataLoader: a warning, and batches are not pinned
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, "
                          "then device pinned memory won't be used.", stacklevel=3)
            return
        addr, size = self._loader.shared_memory()
        err = torch.cuda.cudart().cudaHostRegister(addr, size, 0)
        if int(getattr(err, "value", err)) != 0:
            raise IpcError(f"cudaHostRegister of the {size}-byte ring failed: {err}")
        self._pinned = addr
