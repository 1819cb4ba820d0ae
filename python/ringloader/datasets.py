"""Datasets: ringloader's own (a schema, and get() writing into the slot), and the adapters
that run a torch Dataset or IterableDataset unchanged (torch's default_collate shapes, see
_collate.py). The image datasets are in vision.py."""
from __future__ import annotations

import sys

import itertools

from . import _probe
from ._collate import Plan as _Plan
from ._errors import ConfigError
from .vision import _ImageDataset

__all__ = ["Dataset", "IterableDataset"]


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


class _Wraps:
    """An adapter over the user's dataset `ds`: get_worker_info().dataset is the user's, as in torch."""

    @property
    def _user_dataset(self):
        return self.ds


class _WrapsStream(_Wraps):
    def set_epoch(self, epoch):
        if hasattr(self.ds, "set_epoch"):
            self.ds.set_epoch(epoch)


_NO_LAYOUT = {"0": ("uint8", ())}  # a placeholder: no batch is ever laid out in it


def _no_layout_error(probe, what):
    return ConfigError(f"{what} loaded, but {probe.failed()} raised when the loader was built, so it has no batch "
                       "layout: make those load, or give the loader schema=")


class _TorchMapDataset(_Wraps, Dataset):
    """An existing map-style dataset (torch.utils.data.Dataset, or anything with __getitem__ and
    __len__) run unchanged: each sample is copied once into the slot. Its layout is learned from
    a sample loaded in a child process (_probe.py), never here, when there are workers."""

    def __init__(self, ds, schema=None, num_workers=0, timeout=0.0):
        self.ds = ds
        self.plan = None  # how a sample travels and its batch is shaped (default_collate's shapes)
        self.probe = None
        if schema is not None:
            self.schema, self.kind = schema, "tuple"
        elif len(ds) == 0:  # torch's DataLoader gives 0 batches; there is no sample to infer from
            self.schema, self.kind = _NO_LAYOUT, "single"
        else:
            self.probe = _probe.map_plan(ds, num_workers, timeout)
            self.plan = self.probe.plan
            if self.plan is None:  # every sample tried raised: each batch raises its own, as in torch
                self.schema, self.kind = _NO_LAYOUT, "unlaid"
            else:
                self.schema, self.kind = self.plan.schema, "plan"

    def __len__(self):
        return len(self.ds)

    def get(self, index, out):
        sample = self.ds[index]
        if self.kind == "unlaid":
            raise _no_layout_error(self.probe, f"sample {index}")
        out.write(sample if self.plan is None else self.plan.encode(sample))


class _TorchIterableDataset(_WrapsStream, IterableDataset):
    def __init__(self, ds, schema=None, num_workers=0, timeout=0.0):
        self.ds = ds
        self.plan = None
        self.probe = None
        self._replay = None  # without workers: (the first sample, the iterator it came from)
        if schema is None and num_workers == 0:
            self.probe = self._first_in_process(ds)
        elif schema is None:
            self.probe = _probe.stream_plan(ds, num_workers, timeout)
        if schema is None:
            self.plan = self.probe.plan
            if self.plan is not None:
                schema, self.kind = self.plan.schema, "plan"
            elif self.probe.failures:  # __iter__ raised: each worker's epoch raises it, as in torch
                schema, self.kind = _NO_LAYOUT, "unlaid"
            else:  # an empty stream: 0 batches, as under torch
                schema, self.kind = _NO_LAYOUT, "single"
        else:
            self.kind = "tuple"
        self.schema = schema

    def _first_in_process(self, ds):
        """Without workers the stream runs in this process: its first sample is read here and
        handed out again as the first epoch's first, from the same iterator. A forked child
        would share this process's open files, and what it read (a buffered file's next 8 KiB)
        would be lost to the epoch."""
        try:
            it = iter(ds)
            first = next(it)
        except StopIteration:
            return _probe.Probe()
        except Exception as e:  # noqa: BLE001 - the epoch raises it, as under torch
            return _probe.Probe(None, -1, [(0, f"{type(e).__name__}: {e}")])
        self._replay = (first, it)
        return _probe.Probe(_Plan(first), 0)

    def __iter__(self):
        if self.kind == "unlaid":
            return self._unlaid()
        samples = self.ds
        if self._replay is not None:
            first, it = self._replay
            self._replay = None
            samples = itertools.chain([first], it)
        if self.plan is None:
            return iter(samples)
        return map(self.plan.encode, samples)

    def _unlaid(self):
        for _ in self.ds:
            raise _no_layout_error(self.probe, "a sample of the stream")
        yield from ()


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
