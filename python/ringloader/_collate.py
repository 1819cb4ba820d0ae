"""Batches of a torch dataset shaped as torch's default_collate shapes them.

A sample's structure (tuples, lists, dicts, namedtuples, nested) is flattened into the fields of
the slot, each sample written once; the main process rebuilds the structure around the stacked
fields: a tuple or list becomes a list, a dict a dict, a namedtuple the namedtuple, numbers
tensors (int64, float64, bool), str and bytes lists of them (tuples inside a tuple or list, as
default_collate transposes those with zip). dtypes the slot does not have
(bool, float16, bfloat16, int8, int16, uint16, uint32, ...) travel as their bytes and are viewed
back, so nothing is converted.
"""
from __future__ import annotations

import collections.abc

from ._errors import ConfigError

_SLOT_DTYPES = {"uint8", "int32", "int64", "float32", "float64"}
MAX_TEXT = 4096  # bytes of a str / bytes field per sample


class _LazyNumpy:
    """numpy, imported on first use: importing ringloader must start no thread (numpy's BLAS
    starts some), so rl.init() can still be the first thing a program does."""

    def __getattr__(self, name):
        import numpy
        return getattr(numpy, name)


np = _LazyNumpy()


def _is_tensor(v):
    return hasattr(v, "detach") and hasattr(v, "dtype") and hasattr(v, "shape")


def _is_namedtuple(v):
    return isinstance(v, tuple) and hasattr(v, "_fields")


class Plan:
    """How samples like `sample` travel: schema (the slot's fields), encode (a sample -> the
    fields' values), build (the stacked fields -> the batch)."""

    def __init__(self, sample):
        self.schema = {}
        self.leaves = []  # (kind, meta) per field, in schema order
        self.dtypes = []  # per field: the sample's own dtype (None for str/bytes): later samples must match it
        self.tree = self._walk(sample, "", None)

    # -- the structure
    def _walk(self, v, path, parent):
        if isinstance(v, collections.abc.Mapping):
            keys = list(v.keys())
            return ("dict", type(v), keys, [self._walk(v[k], f"{path}{k}.", "dict") for k in keys])
        if _is_namedtuple(v):
            return ("namedtuple", type(v), [self._walk(x, f"{path}{i}.", "seq") for i, x in enumerate(v)])
        if isinstance(v, (tuple, list)):
            return ("list", None, [self._walk(x, f"{path}{i}.", "seq") for i, x in enumerate(v)])
        return ("leaf", self._leaf(v, path.rstrip(".") or "0", parent))

    def _leaf(self, v, name, parent):
        i = len(self.leaves)
        name = name if name not in self.schema else f"{name}#{i}"
        if isinstance(v, (str, bytes)):
            kind = "str" if isinstance(v, str) else "bytes"
            self.schema[name] = ("uint8", (MAX_TEXT,), "variable")
            # default_collate transposes sequences with zip: their str fields come back as tuples
            self.leaves.append((kind, tuple if parent == "seq" else list))
            self.dtypes.append(None)
            return i
        torch_dtype = None
        py = type(v) if isinstance(v, (bool, int, float)) else None  # unbatched (batch_size=None), it stays one
        if _is_tensor(v):
            torch_dtype = v.dtype
            if str(v.dtype) == "torch.bfloat16":  # no NumPy dtype: its bytes, as int16
                v = v.view(_torch().int16)
            v = v.detach().cpu().numpy()
        elif isinstance(v, bool):
            v = np.bool_(v)
        elif isinstance(v, int):
            v = np.int64(v)
        elif isinstance(v, float):
            v = np.float64(v)
        elif not isinstance(v, (np.ndarray, np.generic)):
            raise ConfigError(f"field '{name}' of sample 0 is a {type(v).__name__}: batches hold tensors, NumPy arrays, "
                              "numbers, str and bytes (torch's default_collate: the same); convert it in the dataset")
        a = np.asarray(v)
        self.dtypes.append(a.dtype)
        if a.dtype.name in _SLOT_DTYPES:
            self.schema[name] = (a.dtype.name, a.shape)
            self.leaves.append(("plain", py))
        elif a.dtype == np.bool_:
            self.schema[name] = ("uint8", a.shape)
            self.leaves.append(("bool", py))
        elif a.dtype.kind in "iufc" and a.dtype.itemsize <= 16:
            self.schema[name] = ("uint8", a.shape + (a.dtype.itemsize,))
            self.leaves.append(("raw", (a.dtype, torch_dtype)))
        else:
            raise ConfigError(f"field '{name}' of sample 0 has dtype {a.dtype}, which a batch cannot hold")
        return i

    # -- in the workers: a sample into the slot's field values
    def encode(self, sample):
        out = [None] * len(self.leaves)
        self._encode(self.tree, sample, out, "sample")
        return tuple(out)

    def _encode(self, node, v, out, where):
        kind = node[0]
        if kind == "leaf":
            out[node[1]] = self._encode_leaf(node[1], v, where)
        elif kind == "dict":
            if not isinstance(v, collections.abc.Mapping) or list(v.keys()) != node[2]:
                raise ConfigError(f"{where} has keys {list(v.keys()) if isinstance(v, collections.abc.Mapping) else v!r}, "
                                  f"sample 0 had {node[2]}: every sample must have the same structure")
            for k, child in zip(node[2], node[3]):
                self._encode(child, v[k], out, f"{where}[{k!r}]")
        else:
            children = node[2]
            if not isinstance(v, (tuple, list)) or len(v) != len(children):
                raise ConfigError(f"{where} has {len(v) if isinstance(v, (tuple, list)) else 'no'} parts, sample 0 "
                                  f"had {len(children)}: each element in list of batch should be of equal size")
            for i, (child, x) in enumerate(zip(children, v)):
                self._encode(child, x, out, f"{where}[{i}]")

    def _encode_leaf(self, i, v, where):
        kind, meta = self.leaves[i]
        if kind == "str":
            b = v.encode("utf-8", "surrogateescape") if isinstance(v, str) else None
        elif kind == "bytes":
            b = bytes(v) if isinstance(v, (bytes, bytearray)) else None
        else:
            if _is_tensor(v):
                if str(v.dtype) == "torch.bfloat16":
                    v = v.view(_torch().int16)
                v = v.detach().cpu().numpy()
            if isinstance(v, (np.ndarray, np.generic)) and v.dtype != self.dtypes[i]:
                # never a silent cast (an int64 300001 into int16, a float64 into float32)
                raise ConfigError(f"{where} has dtype {v.dtype}, the first sample had {self.dtypes[i]}: a batch keeps "
                                  "one dtype per field; make the dataset's dtypes agree, or give the loader schema=")
            if kind == "raw":
                a = np.ascontiguousarray(v, dtype=meta[0])
                return a.view(np.uint8).reshape(a.shape + (a.dtype.itemsize,))
            return v
        if b is None:
            raise ConfigError(f"{where} is a {type(v).__name__}, sample 0 had a {kind}")
        if len(b) > MAX_TEXT:
            raise ConfigError(f"{where} is {len(b)} bytes long; str and bytes fields hold at most {MAX_TEXT}")
        return np.frombuffer(b, dtype=np.uint8)

    # -- in the main process: the stacked fields into the batch
    def build(self, fields):
        return self._build(self.tree, fields)

    def build_one(self, fields):
        """batch_size=None: the sample itself, as torch's default_convert gives it (numbers stay
        Python numbers, arrays become tensors)."""
        return self._build(self.tree, [_one(x) for x in fields], one=True)

    def _build(self, node, fields, one=False):
        kind = node[0]
        if kind == "leaf":
            v = self._build_leaf(node[1], fields[node[1]], one)
            py = self.leaves[node[1]][1] if self.leaves[node[1]][0] in ("plain", "bool") else None
            return py(v.item()) if one and py is not None else v
        if kind == "dict":
            values = {k: self._build(c, fields, one) for k, c in zip(node[2], node[3])}
            return values if node[1] is dict else _try(node[1], values)
        items = [self._build(c, fields, one) for c in node[2]]
        return node[1](*items) if kind == "namedtuple" else items

    def _build_leaf(self, i, x, one=False):
        kind, meta = self.leaves[i]
        if kind == "plain":
            return x
        if kind in ("str", "bytes"):
            raw = [bytes(np.asarray(e)) for e in ([x] if one else x)]
            out = [r.decode("utf-8", "surrogateescape") for r in raw] if kind == "str" else raw
            return out[0] if one else meta(out)
        if _is_tensor(x):
            torch = _torch()
            if kind == "bool":
                return x.view(torch.bool)
            np_dtype, torch_dtype = meta
            if torch_dtype is not None and str(torch_dtype) == "torch.bfloat16":
                return x.view(torch.int16).squeeze(-1).view(torch.bfloat16)
            return torch.from_numpy(x.numpy().view(np_dtype)[..., 0])
        if kind == "bool":
            return x.view(np.bool_)
        return x.view(meta[0])[..., 0]


def _one(x):
    """The single sample of a batch of one (a ragged field: the list's only array)."""
    return x[0]


def _try(cls, values):
    try:
        return cls(values)
    except TypeError:  # as default_collate: a mapping type that cannot be built from a dict
        return values


def _torch():
    import torch
    return torch
