"""rl.Batch: the batches of ringloader's own datasets (fields by name, indices, skipped)."""
from __future__ import annotations

import collections

__all__ = ["Batch"]


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
