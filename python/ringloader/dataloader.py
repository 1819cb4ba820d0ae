"""rl.DataLoader: torch.utils.data.DataLoader's arguments, checks and behaviour over the
native loader (the ring, its workers, the epoch iterator in C++)."""
from __future__ import annotations

import functools
import pickle
import warnings

from . import _collate_fn
from . import _probe
from . import _process
from . import _ringloader as _core
from . import _worker
from . import vision
from .batch import Batch, _Released
from .datasets import Dataset, IterableDataset, _TorchIterableDataset, _TorchMapDataset, _is_iterable
from .samplers import _NativeSampler, _Primed
from .vision import _ImageDataset
from ._errors import ConfigError, IpcError

__all__ = ["DataLoader"]


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
    if shuffle and batch_sampler is None and not _is_iterable(dataset) and hasattr(dataset, "__len__") \
            and len(dataset) == 0:  # torch's RandomSampler refuses an empty dataset
        raise ConfigError("num_samples should be a positive integer value, but got num_samples=0")
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
    if _process.server_started:
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
    import copy
    with _rngs_kept():  # this pass must not change the batches or draws the run then gets
        largest = max((len(b) for b in copy.deepcopy(batch_sampler)), default=0)
    if largest == 0:
        raise ConfigError("batch_sampler gave no batch with an index in it")
    return largest


class _rngs_kept:
    """Restores random's, numpy's and torch's global RNG states on leaving."""

    def __enter__(self):
        import random
        import sys
        self._random = random.getstate()
        np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
        self._np = (np, np.random.get_state()) if np is not None else None
        self._torch = (torch, torch.get_rng_state()) if torch is not None else None
        return self

    def __exit__(self, *exc):
        import random
        random.setstate(self._random)
        if self._np is not None:
            self._np[0].random.set_state(self._np[1])
        if self._torch is not None:
            self._torch[0].set_rng_state(self._torch[1])
        return False


def _draw_seed(generator):
    """A 63-bit draw from `generator` or torch's default generator, as torch's DataLoader draws
    its base seed. Without torch: None."""
    try:
        import torch
    except ImportError:
        if generator is not None:
            raise ConfigError("generator= is a torch.Generator, and torch cannot be imported") from None
        return None
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def _mix(a, b):
    """One 63-bit seed from two draws."""
    return (a * 0x9E3779B97F4A7C15 + b) & ((1 << 63) - 1)


def _torch_samplers(dataset, sampler, shuffle, generator, batch_size, drop_last, batch_sampler):
    """The sampler and batch_sampler attributes torch's DataLoader has (integrations read them:
    Lightning and accelerate rebuild a loader from them): torch's RandomSampler /
    SequentialSampler (an iterable dataset: torch's infinite constant one) and BatchSampler
    where the user gave none. They describe the loading; ringloader's own order runs natively.
    Without torch: what the user gave."""
    try:
        from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler
        from torch.utils.data.dataloader import _InfiniteConstantSampler
    except ImportError:
        return sampler, batch_sampler
    if sampler is None:
        if _is_iterable(dataset):
            sampler = _InfiniteConstantSampler()
        elif shuffle:
            sampler = RandomSampler(dataset, generator=generator)
        else:
            sampler = SequentialSampler(dataset)
    if batch_sampler is None and batch_size is not None:
        batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    return sampler, batch_sampler


def _is_torch_dataset(ds):
    """A dataset of the user's own (torch's or any __getitem__/__iter__), not one of ringloader's."""
    if isinstance(ds, (Dataset, IterableDataset, _ImageDataset)):
        return False
    return _is_iterable(ds) or (hasattr(ds, "__getitem__") and hasattr(ds, "__len__"))


def _default_convert():
    try:
        from torch.utils.data._utils.collate import default_convert
        return default_convert
    except ImportError:
        return _identity


def _identity(sample):
    return sample


def _flat(field):
    """A batch's collate_fn bytes as one 1-D uint8 array over the slot (no copy)."""
    a = field.numpy() if hasattr(field, "numpy") else field
    return a.reshape(-1)


class DataLoader:
    """torch.utils.data.DataLoader's arguments and behaviour, with workers that write each sample
    once into a shared-memory ring of batch slots. Each iter(loader) is an epoch.

    torch's arguments, with torch's meaning and torch's ValueErrors (rl.ConfigError is one):
      dataset          rl.ImageFolder / rl.FileList / rl.Shards (decoded in C++; a torchvision
                       transform the native pipeline has runs there too), an rl.Dataset /
                       rl.IterableDataset, or any torch map-style or iterable Dataset (run as it
                       is; its batches shaped as default_collate shapes them).
      batch_size       samples per batch (None: samples unbatched, as torch's default_convert).
      shuffle          a new order each epoch, drawn from (seed, epoch).
      sampler          indices in order: rl.DistributedSampler / rl.BlockShuffleSampler (run in
                       C++), or any Python sampler (torch's DistributedSampler: its epoch is
                       yours; loader.set_epoch forwards to it).
      batch_sampler    lists of indices (torch's BatchSampler, or any iterable with __len__).
      num_workers      worker processes (forked); 0 runs the dataset in this process.
      collate_fn       runs in the workers on each batch's list of samples (batch_size=None: on
                       each sample), as torch's; its output reaches the loop unchanged, its
                       tensors and arrays as views of the slot (no copy), the rest pickled.
      pin_memory       registers the ring with CUDA once (cudaHostRegister); without CUDA it
                       warns and goes on, as torch does.
      drop_last        drop the last, short batch.
      timeout          seconds any wait may take (0: none); past it rl.TimeoutError says what
                       was waited for, and nothing is lost.
      worker_init_fn   called in each worker with its id, after random/torch/numpy are seeded
                       as torch seeds them (not with num_workers=0, as torch).
      multiprocessing_context  "fork", or "forkserver"/"spawn" (ringloader's fork server when
                       rl.init() started one), or a multiprocessing context.
      generator        the torch.Generator the seed is drawn from (default: torch's own, so
                       torch.manual_seed(s) reproduces a run).
      prefetch_factor  slots per worker (default 2 with workers).
      persistent_workers  keep the workers across epochs.
      pin_memory_device   accepted, deprecated as in torch.
      in_order         hand batches out in order (False: as they are filled).

    ringloader's extras:
      seed             fixes every random choice (order, crops, the workers' RNG streams) for
                       any worker count, crash and resume; torch's generator is not drawn from.
                       Default: each iter() draws the epoch's seed from `generator` as torch
                       does (torch.manual_seed(s) reproduces the run).
      on_error         "raise" (rl.SampleError, also the original exception's type, at the
                       batch's place) or "skip" (the sample is dropped and listed in .skipped).
      start_method     "fork" (default) or "forkserver" (needs rl.init() first in the program).
      max_retries      deaths (or hangs) of workers filling the same sample before that sample is
                       blamed: its batch raised (BatchError) or, under "skip", the sample dropped.
      shm_dir          where the ring lives ("": /dev/shm, or anonymous with 0 workers).
      format           "torch" (default when torch imports) or "numpy".
      copy             owning tensors instead of views of the slot.
      collate_bytes    with collate_fn: the slot's bytes per sample for its output (default:
                       1.5 x the first batch's, learned in a child process).
      schema           a torch dataset's fields as {name: (dtype, shape)}, instead of learning
                       them from its first sample (loaded as worker 0 would, in a child
                       process; without workers, here).

    Batches are views of the slot: it goes back to the ring when the last tensor of the batch is
    freed; a loop that holds more batches than the ring spares gets copies (stats()). rl.Dataset
    and the keyword-form image datasets give rl.Batch (fields by name, .indices, .skipped);
    torch datasets give default_collate's structures, with loader.last_batch for the rest."""

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True, seed=None, on_error="raise", start_method="fork",
                 max_retries=3, shm_dir="", format=None, copy=False, schema=None, collate_bytes=None):
        _check_arguments(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, timeout,
                         prefetch_factor, persistent_workers, drop_last, seed, max_retries)
        if prefetch_factor is None and num_workers > 0:
            prefetch_factor = 2  # torch's default with workers
        start_method = _start_method(start_method, multiprocessing_context, num_workers)
        self._auto_batch = batch_size is not None or batch_sampler is not None  # torch's auto-collation
        if batch_sampler is not None:  # as torch: batch_size and drop_last then say nothing
            batch_size, drop_last = None, False
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
        stream_batch = None  # collate_fn over a stream: the batch the wrapper groups (the native one is 1)
        if collate_fn is None and not self._auto_batch and schema is None and _is_torch_dataset(dataset):
            # torch's own collate_fn without batching: each sample as it is, whatever its structure
            # (a tensor here, a dict there, ragged shapes), not laid out by the first one
            collate_fn = _default_convert()
        if collate_fn is not None:
            core_ds = self._collate_fn_dataset(dataset, collate_fn, collate_bytes, num_workers, batch_size, drop_last,
                                               timeout)
            if isinstance(core_ds, _collate_fn.CollatedStream):
                stream_batch, drop_last = batch_size, False
        elif isinstance(dataset, _ImageDataset) and dataset.native:
            core_ds = dataset._native
        elif isinstance(dataset, _ImageDataset):  # a transform the native pipeline does not have: torchvision's way
            vision._warn_fallback(dataset)
            core_ds = _TorchMapDataset(dataset, schema, num_workers, timeout)
            self._single = core_ds.kind == "single"
        elif isinstance(dataset, Dataset) or isinstance(dataset, IterableDataset):
            if schema is not None:
                dataset.schema = schema
        elif _is_iterable(dataset):
            core_ds = _TorchIterableDataset(dataset, schema, num_workers, timeout)
            self._single = core_ds.kind == "single"
        elif hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
            core_ds = _TorchMapDataset(dataset, schema, num_workers, timeout)
            self._single = core_ds.kind == "single"
        else:
            raise ConfigError(f"a {type(dataset).__name__} is not a dataset: give an rl.Dataset, rl.IterableDataset, "
                              "rl.ImageFolder or a torch Dataset")
        plan = getattr(core_ds, "plan", None) if isinstance(core_ds, (_TorchMapDataset, _TorchIterableDataset)) else None
        if collate_fn is not None:  # its output, unpickled from the slot
            self._make_batch = self._collated(lambda fields: _collate_fn.decode(_flat(fields[0])))
        elif plan is not None:  # a torch dataset: batches shaped as default_collate shapes them
            self._single = False
            self._make_batch = self._collated(plan.build if self._auto_batch else plan.build_one)
        elif isinstance(dataset, _ImageDataset) and dataset.transform is not None:
            # torchvision's form: [images, targets], as torch gives (batch_size=None: (image, target))
            self._make_batch = self._collated(list if self._auto_batch else (lambda f: [f[0][0], int(f[1][0])]))
        elif self._auto_batch:
            self._make_batch = Batch
        else:  # batch_size=None: the sample itself, its fields without the batch dimension, as torch
            self._make_batch = lambda arrays, names, b: Batch(tuple(x[0] for x in arrays), names, b)
        self.last_batch = None
        if start_method == "forkserver":
            if isinstance(dataset, IterableDataset) or isinstance(core_ds, (_TorchIterableDataset,
                                                                            _collate_fn.CollatedStream)):
                raise ConfigError('start_method="forkserver" takes a map-style dataset (rl.Dataset, rl.ImageFolder, '
                                  'rl.FileList, rl.Shards or a torch map-style Dataset); an iterable dataset runs '
                                  'with start_method="fork"')
            if not _process.server_started:
                raise ConfigError('start_method="forkserver" needs rl.init() called first thing in the program')
            try:
                sent = dataset if isinstance(dataset, _ImageDataset) and collate_fn is None else core_ds
                core_ds = ("recipe", "python", pickle.dumps(sent))
            except Exception as e:  # noqa: BLE001 - any pickling failure means the same thing
                raise ConfigError(f'start_method="forkserver" sends the dataset to the server pickled, and this one '
                                  f"cannot be: {e}. Define its class at module level") from e
        self.generator = generator
        self._seed_given = seed is not None
        self._base_drawn = False  # persistent workers: torch draws their base seed once
        self._shuffle = bool(shuffle)
        self._stream = isinstance(core_ds, (IterableDataset, _collate_fn.CollatedStream))
        options = dict(batch_size=batch_size if self._auto_batch and stream_batch is None else 1, shuffle=bool(shuffle), drop_last=drop_last, num_workers=num_workers,
                       prefetch_factor=prefetch_factor or 2,  # without workers the ring still has 2 slots
                       # the batch the loop keeps while the next is handed out, and at least one to fill
                       extra_slots=2 if prefetch_factor == 1 else 1,
                       persistent_workers=persistent_workers, timeout=timeout,
                       seed=seed,
                       in_order=in_order, on_error=on_error, max_retries=max_retries, shm_dir=shm_dir,
                       start_method=start_method, sampler=self._primed_sampler(sampler),
                       batch_sampler=None if batch_sampler is None
                       else (self._primed_sampler(batch_sampler), _largest_batch(batch_sampler)),
                       # torch calls worker_init_fn only in workers, after seeding them
                       worker_init_fn=functools.partial(_worker.call_init_fn, worker_init_fn, dataset)
                       if worker_init_fn is not None and num_workers > 0 else None)
        self.worker_init_fn = worker_init_fn
        self._user_sampler = sampler  # what the loader runs; self.sampler is torch's attribute
        self.sampler, batching = _torch_samplers(dataset, sampler, shuffle, generator, batch_size, drop_last,
                                                 batch_sampler)
        self._iter_gen = 0
        self._loader = _core.Loader(core_ds, options)
        self._layout = None  # (names, ragged, to_tensor), from the first batch: one assignment, so a Ctrl-C never half-sets it
        self._warned_threads = False
        self._pinned = None
        self.prefetch_factor, self.persistent_workers = prefetch_factor, persistent_workers
        self.timeout, self.drop_last, self.in_order = timeout, drop_last, in_order
        self.pin_memory, self.pin_memory_device = pin_memory, pin_memory_device
        self.multiprocessing_context, self.collate_fn, self.batch_sampler = multiprocessing_context, collate_fn, batching
        if pin_memory:
            self._pin()
        self._initialized = True

    # torch freezes these once the loader is built (the ring and its workers are shaped by them)
    _FROZEN = frozenset(("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers"))
    # torch applies these to the next epoch; here the ring and the workers are made with the loader
    _BUILT_IN = frozenset(("num_workers", "prefetch_factor", "pin_memory", "pin_memory_device", "timeout",
                           "worker_init_fn", "multiprocessing_context", "generator", "collate_fn", "in_order"))
    _initialized = False
    _primed = ()  # the user's samplers, primed as each epoch starts (samplers._Primed)

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
        user = self._user_sampler
        if isinstance(user, _NativeSampler) and user.epoch is not None:
            loader.set_epoch(user.epoch)
        for primed in self._primed:
            primed.prime()
        try:
            loader.start_epoch(None if self._seed_given or loader.resuming else self._draw_epoch_seed())
        except ConfigError as e:
            raise self._name_the_difference(e) from None
        self._iter_gen += 1  # an earlier iterator of this loader stops here (its epoch is abandoned)
        self._warn_threads()
        return _core.EpochIterator(self)  # C++ from the hand-out to the batch: see bindings.cpp

    def _primed_sampler(self, sampler):
        if sampler is None or isinstance(sampler, _NativeSampler):
            return sampler
        primed = _Primed(sampler)
        self.__dict__.setdefault("_primed", []).append(primed)
        return primed

    def _collate_fn_dataset(self, dataset, collate_fn, collate_bytes, num_workers, batch_size, drop_last, timeout):
        """The dataset the native loader runs when collate_fn is given (_collate_fn.py)."""
        if not callable(collate_fn):
            raise ConfigError(f"collate_fn must be callable, got {collate_fn!r}")
        if collate_bytes is not None and (not _is_int(collate_bytes) or collate_bytes <= 0):
            raise ConfigError(f"collate_bytes must be a positive number of bytes per sample, got {collate_bytes!r}")
        if isinstance(dataset, Dataset) and not hasattr(dataset, "__getitem__"):
            raise ConfigError("collate_fn runs on the samples dataset[i] gives; an rl.Dataset writes its samples "
                              "into the slot with get(index, out) and has no __getitem__: collate in get(), or give "
                              "a torch Dataset")
        if isinstance(dataset, _ImageDataset):
            warnings.warn(f"collate_fn=: {type(dataset).__name__}'s samples are made torchvision's way in the workers "
                          "(decoded in Python, then collate_fn), not by the native pipeline", RuntimeWarning,
                          stacklevel=4)
        stream = _is_iterable(dataset)
        batch = batch_size if self._auto_batch else None
        in_process = num_workers == 0  # the output stays in this process: no layout to learn
        if in_process:
            share = 4096
        elif collate_bytes is not None:
            share = collate_bytes * (batch or 1) if stream else collate_bytes
        elif not stream and len(dataset) == 0:
            share = 4096
        else:
            share = _probe.collate_share(dataset, collate_fn, num_workers, batch, stream, drop_last, timeout)
            if share is None:  # the first batch raised (it raises again, at its place) or an empty stream
                share = 1 << 16
        share = _collate_fn.share_for(0, 1) if share < 4096 else (share + 63) // 64 * 64
        if stream:
            return _collate_fn.CollatedStream(dataset, collate_fn, share, batch, drop_last, in_process)
        return _collate_fn.CollatedMap(dataset, collate_fn, share, self._auto_batch, in_process)

    def _draw_epoch_seed(self):
        """The seed of the epoch iter() starts, without seed=: drawn from `generator` (or torch's
        default one) as torch draws, so torch.manual_seed(s) before the loop reproduces the run and
        the loop's own later draws match torch's: the base seed (once with persistent workers,
        whose iterator torch keeps), and with shuffle=True and no generator, the seed torch's
        RandomSampler draws each epoch. None (keep the seed) when nothing is drawn."""
        seed = None
        if not (self.persistent_workers and self._base_drawn):
            seed = _draw_seed(self.generator)
            self._base_drawn = seed is not None
        if self._shuffle and self._user_sampler is None:
            if self.generator is None:
                order = _draw_seed(None)
                if order is not None:
                    seed = _mix(self._loader.seed if seed is None else seed, order)
            else:  # torch's RandomSampler draws its order from the generator: leave it as torch would
                import torch
                n = len(self.dataset)  # randperm(n) for the order, and once more for its empty tail
                for _ in range(2):
                    torch.randperm(n, generator=self.generator)
        return seed

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
        user = self._user_sampler
        if user is not None and not isinstance(user, _NativeSampler) and hasattr(user, "set_epoch"):
            user.set_epoch(epoch)

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
                "sampler": None if self._user_sampler is None else type(self._user_sampler).__name__}

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
