"""collate_fn= as torch runs it: in the workers, once per batch, on the list of the batch's
samples (with batch_size=None, on each sample), its output reaching the loop unchanged.

The output travels through the slot. Each sample of a map-style batch owns a fixed field of
`share` bytes ("collated"); the n samples' fields lie end to end, so a batch has n x share
contiguous bytes. They hold a protocol-5 pickle of the output whose tensors and arrays are
out-of-band buffers, each at a 64-byte boundary: the main process rebuilds them as views of the
slot, with no copy (the slot returns to the ring when the last of them is freed). Numbers,
strings and other objects are in the pickle itself. A stream's batch is one sample of the
native loader, grouped from the worker's part of the stream here.

The share is learned from the first batch, loaded in the child that learns layouts
(_probe.py): 1.5 x its bytes per sample plus 4 KiB. A later batch that does not fit (a collate
that pads to the longest sequence, say) raises, naming the sizes and collate_bytes=.
"""
from __future__ import annotations

import io
import itertools
import math
import pickle
import struct
import sys

from ._errors import ConfigError
from .datasets import _Wraps, _WrapsStream

FIELD = "collated"
_STASH = {}  # without workers: collate_fn's output by key, handed over as it is (no pickling)
_STASH_TAG = "ringloader-in-process"
_stash_keys = itertools.count()


def _stash(obj):
    """Without workers the output never leaves this process: the slot carries a key to it, so
    what torch's single-process loader hands over as it is (a generator, a class made inside a
    function, a deep structure) comes back the same object."""
    key = next(_stash_keys)
    _STASH[key] = obj
    while len(_STASH) > 64:  # an abandoned epoch's batches: never asked for
        _STASH.pop(next(iter(_STASH)))
    return (_STASH_TAG, key)
ALIGN = 64
_HEAD = struct.Struct("<QQ")  # pickle bytes, buffer count; then (offset, length) per buffer


def _torch():
    import torch
    return torch


_BASES = None  # while decode() runs: id(storage bytes) -> (them, a uint8 tensor over them)


def _rebuild_tensor(raw, dtype, size, stride, offset, requires_grad):
    """A tensor over its storage's bytes in the slot: tensors that shared a storage in the worker
    (a tensor and its slices) share one here, with their strides, offsets and requires_grad."""
    torch = _torch()
    entry = _BASES.get(id(raw)) if _BASES is not None else None
    if entry is None:
        entry = (raw, torch.from_numpy(raw))
        if _BASES is not None:
            _BASES[id(raw)] = entry
    t = torch.empty(0, dtype=getattr(torch, dtype.rpartition(".")[2])).set_(
        entry[1].untyped_storage(), offset, size, stride)
    return t.requires_grad_() if requires_grad else t


class _Pickler(pickle.Pickler):
    """Plain CPU tensors go as their storages' bytes, out of band, each storage once; anything
    else (tv_tensors and other subclasses, sparse, quantized, a tensor with a grad_fn) by its
    own pickling, so it comes back as it was."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._storages = {}

    def reducer_override(self, obj):
        torch = sys.modules.get("torch")
        if (torch is None or type(obj) is not torch.Tensor or obj.layout != torch.strided or obj.is_quantized
                or obj.device.type != "cpu" or obj.grad_fn is not None):
            return NotImplemented
        storage = obj.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        raw = self._storages.get(key)
        if raw is None:
            raw = self._storages[key] = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
        return _rebuild_tensor, (raw, str(obj.dtype), tuple(obj.shape), obj.stride(), obj.storage_offset(),
                                 obj.requires_grad)


def encode(obj):
    """The output as pieces [(offset, bytes-like)] and its total length."""
    buffers = []
    buf = io.BytesIO()
    _Pickler(buf, protocol=5, buffer_callback=buffers.append).dump(obj)
    data = buf.getvalue()
    raws = [b.raw() for b in buffers]
    head = _HEAD.size + 16 * len(raws)
    offset = _align(head + len(data))
    table = []
    for r in raws:
        table.append((offset, r.nbytes))
        offset = _align(offset + r.nbytes)
    header = _HEAD.pack(len(data), len(raws)) + b"".join(struct.pack("<QQ", o, n) for o, n in table)
    pieces = [(0, header), (len(header), data)] + [(o, r) for (o, _), r in zip(table, raws)]
    return pieces, offset


def decode(flat):
    """The output back from the batch's bytes (a 1-D uint8 array over the slot)."""
    size, count = _HEAD.unpack_from(flat, 0)
    table = [struct.unpack_from("<QQ", flat, _HEAD.size + 16 * k) for k in range(count)]
    start = _HEAD.size + 16 * count
    buffers = [flat[o:o + n].data for o, n in table]
    global _BASES
    _BASES = {}
    try:
        obj = pickle.loads(flat[start:start + size].data, buffers=buffers)
    finally:
        _BASES = None
    if type(obj) is tuple and len(obj) == 2 and obj[0] == _STASH_TAG:
        return _STASH.pop(obj[1])
    return obj


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def share_for(total, samples):
    """Bytes per sample for batches like one of `total` bytes over `samples` samples."""
    return _align(math.ceil(1.5 * total / max(1, samples)) + 4096)


def write_part(pieces, total, share, part, out):
    """Copies bytes [part x share, (part+1) x share) of the encoded output into `out` (a uint8
    array of `share` bytes): each byte is copied once, from the tensors themselves."""
    import numpy as np
    lo, hi = part * share, (part + 1) * share
    for offset, piece in pieces:
        view = memoryview(piece).cast("B")
        a, b = max(lo, offset), min(hi, offset + view.nbytes)
        if a < b:
            out[a - lo:b - lo] = np.frombuffer(view[a - offset:b - offset], dtype=np.uint8)


class CollatedMap(_Wraps):
    """A map-style dataset whose batches are collate_fn(samples): a Dataset for the native loader
    (rl.Dataset's get(index, out) protocol)."""

    def __init__(self, ds, collate_fn, share, auto_batch, in_process=False):
        self.ds, self.collate_fn, self.share, self.auto_batch = ds, collate_fn, share, auto_batch
        self.in_process = in_process
        self.schema = {FIELD: ("uint8", (share,))}
        self._serial = None
        self._encoded = None  # (pieces, total) or the exception the batch raised
        self._cursor = 0

    def __len__(self):
        return len(self.ds)

    def get(self, index, out):
        if out.batch_serial != self._serial:  # the batch's first sample: collate the whole batch
            self._serial, self._cursor = out.batch_serial, 0
            indices = out.batch
            try:
                result = collate(self.ds, self.collate_fn, indices, self.auto_batch)
                self._encoded = encode(_stash(result) if self.in_process else result)
            except Exception as e:  # noqa: BLE001 - the batch raises it, at each of its samples
                self._encoded = e
                raise
            pieces, total = self._encoded
            if total > self.share * len(indices):
                self._encoded = ConfigError(
                    f"collate_fn's output for the batch of samples {list(indices)[:8]}{'...' if len(indices) > 8 else ''} "
                    f"is {total} bytes, and the slot holds {self.share} per sample ({self.share * len(indices)} for this "
                    f"batch), learned from the first batch: give the loader collate_bytes= (bytes per sample) of at least "
                    f"{math.ceil(total / len(indices))}")
        if isinstance(self._encoded, BaseException):
            raise self._encoded
        pieces, total = self._encoded
        write_part(pieces, total, self.share, self._cursor, out[FIELD])
        self._cursor += 1


class CollatedStream(_WrapsStream):
    """A stream whose samples are whole batches: collate_fn over `batch_size` samples of the
    worker's part of the user's stream, as torch batches a stream in each worker."""

    def __init__(self, ds, collate_fn, share, batch_size, drop_last, in_process=False):
        self.ds, self.collate_fn, self.batch_size, self.drop_last = ds, collate_fn, batch_size, drop_last
        self.in_process = in_process
        self.share = share
        self.schema = {FIELD: ("uint8", (share,))}

    def __iter__(self):
        import numpy as np
        for group in _groups(iter(self.ds), self.batch_size, self.drop_last):
            result = self.collate_fn(group)
            pieces, total = encode(_stash(result) if self.in_process else result)
            if total > self.share:
                raise ConfigError(f"collate_fn's output for a batch is {total} bytes, and the slot holds {self.share}, "
                                  f"learned from the first batch: give the loader collate_bytes= of at least "
                                  f"{math.ceil(total / self.batch_size)} (bytes per sample)")
            out = np.empty(self.share, dtype=np.uint8)
            write_part(pieces, total, self.share, 0, out)
            yield {FIELD: out}


def _groups(it, size, drop_last):
    if size is None:  # batch_size=None: collate_fn on each sample, as torch
        for sample in it:
            yield sample
        return
    group = []
    for sample in it:
        group.append(sample)
        if len(group) == size:
            yield group
            group = []
    if group and not drop_last:
        yield group


def collate(ds, collate_fn, indices, auto_batch):
    """collate_fn's output for the batch of `indices` (with batch_size=None, for its one sample)."""
    return collate_fn([ds[i] for i in indices] if auto_batch else ds[indices[0]])


def first_total(ds, collate_fn, indices, auto_batch):
    """In the layout child: the encoded size of the first batch."""
    return encode(collate(ds, collate_fn, indices, auto_batch))[1]


def first_stream_total(ds, collate_fn, batch_size, drop_last):
    for group in _groups(iter(ds), batch_size, drop_last):
        return encode(collate_fn(group))[1], (len(group) if batch_size is not None else 1)
    return None
