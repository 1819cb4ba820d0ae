"""collate_fn= as torch's: run in the workers on each batch's samples (on each sample with
batch_size=None), its output reaching the loop unchanged, side by side with
torch.utils.data.DataLoader on the same datasets. Tensors come back as views of the slot."""
import collections

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader as TorchLoader
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import IterableDataset as TorchIterable
from torch.utils.data import default_collate, get_worker_info

import ringloader as rl


pytestmark = pytest.mark.usefixtures("time_limit")  # conftest.py: a hang fails after 60 s


class Sequences(TorchDataset):
    """Variable-length samples: what a padding collate_fn is for."""

    def __len__(self):
        return 23

    def __getitem__(self, i):
        return torch.arange(i % 7 + 1, dtype=torch.float32), i


Padded = collections.namedtuple("Padded", "x lengths y")


def pad(batch):
    xs, ys = zip(*batch)
    return {"x": pad_sequence(xs, batch_first=True), "lengths": torch.tensor([len(x) for x in xs]),
            "y": torch.tensor(ys), "names": [f"s{y}" for y in ys], "worker": get_worker_info() is not None,
            "half": pad_sequence(xs, batch_first=True).to(torch.bfloat16), "np": np.arange(len(ys))}


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_a_padding_collate_fn_gives_torchs_batches(workers, shuffle):
    got = {}
    for make in (rl.DataLoader, TorchLoader):
        torch.manual_seed(0)
        got[make] = list(make(Sequences(), batch_size=5, shuffle=shuffle, num_workers=workers, collate_fn=pad))
    if not shuffle:  # the orders are each loader's own
        assert same(got[rl.DataLoader], got[TorchLoader])
    ours = got[rl.DataLoader]
    assert sorted(int(y) for b in ours for y in b["y"]) == list(range(23))
    assert all(b["worker"] == (workers > 0) for b in ours)  # collate_fn ran in the workers
    for b in ours:
        for k, n in enumerate(b["lengths"].tolist()):
            assert torch.equal(b["x"][k, :n], torch.arange(n, dtype=torch.float32))


@pytest.mark.parametrize("workers", [0, 2])
def test_collate_fn_without_auto_batching_runs_on_each_sample(workers):
    def double(sample):
        return sample[0] * 2, sample[1]
    got = {make: list(make(Sequences(), batch_size=None, num_workers=workers, collate_fn=double))
           for make in (rl.DataLoader, TorchLoader)}
    assert same(got[rl.DataLoader], got[TorchLoader])


def named(batch):
    xs, ys = zip(*batch)
    return Padded(pad_sequence(xs, batch_first=True), torch.tensor([len(x) for x in xs]), torch.tensor(ys))


def test_a_namedtuple_or_a_custom_object_comes_back_as_it_is():
    got = {make: list(make(Sequences(), batch_size=4, num_workers=2, collate_fn=named))
           for make in (rl.DataLoader, TorchLoader)}
    assert same(got[rl.DataLoader], got[TorchLoader])
    assert isinstance(got[rl.DataLoader][0], Padded)


def test_the_tensors_are_views_of_the_slot():
    loader = rl.DataLoader(Sequences(), batch_size=4, num_workers=2, collate_fn=pad)
    address, size = loader.shared_memory()
    for batch in loader:
        for t in (batch["x"], batch["y"], batch["lengths"]):
            assert address <= t.data_ptr() < address + size
            assert t.data_ptr() % 64 == 0
    assert loader.stats()["copied_batches"] == 0
    del batch, loader


class Stream(TorchIterable):
    def __iter__(self):
        info = get_worker_info()
        r = range(30) if info is None else range(info.id, 30, info.num_workers)
        return ((torch.tensor([i, i * i]), i) for i in r)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("drop_last", [False, True])
def test_collate_fn_over_a_stream_batches_each_workers_part_as_torch(workers, drop_last):
    got = {}
    for make in (rl.DataLoader, TorchLoader):
        batches = list(make(Stream(), batch_size=4, num_workers=workers, collate_fn=default_collate,
                            drop_last=drop_last))
        got[make] = sorted((len(b[1]), tuple(b[1].tolist())) for b in batches)
    assert got[rl.DataLoader] == got[TorchLoader]


class Growing(TorchDataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.zeros(1 + 4000 * (i // 4))  # batch 0 is tiny, batch 2 is 8000 floats a sample


def test_without_workers_any_batch_size_is_handed_over():
    """The output never enters the slot without workers: no room to outgrow."""
    assert [b.shape[0] for b in rl.DataLoader(Growing(), batch_size=4, collate_fn=pad_sequence)] == [1, 4001, 8001]


@pytest.mark.parametrize("workers", [2])
def test_a_batch_larger_than_the_slot_raises_naming_collate_bytes(workers):
    it = iter(rl.DataLoader(Growing(), batch_size=4, num_workers=workers, collate_fn=pad_sequence))
    assert next(it).shape == (1, 4)  # pad_sequence: time first
    with pytest.raises(ValueError, match="collate_bytes="):
        next(it)
        next(it)
    ok = rl.DataLoader(Growing(), batch_size=4, num_workers=workers, collate_fn=pad_sequence, collate_bytes=40000)
    assert [b.shape[0] for b in ok] == [1, 4001, 8001]


class FailingCollate(TorchDataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return i


def picky(batch):
    if 4 in batch:
        raise KeyError("no 4")
    return torch.tensor(batch)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_in_collate_fn_raises_at_its_batch_and_iteration_goes_on(workers):
    for make in (rl.DataLoader, TorchLoader):
        it = iter(make(FailingCollate(), batch_size=4, num_workers=workers, collate_fn=picky))
        assert next(it).tolist() == [0, 1, 2, 3]
        with pytest.raises(KeyError):
            next(it)
        with pytest.raises(StopIteration):
            next(it)


def test_collate_fn_arguments_are_checked():
    with pytest.raises(ValueError, match="callable"):
        rl.DataLoader(Sequences(), collate_fn=3)
    with pytest.raises(ValueError, match="collate_bytes"):
        rl.DataLoader(Sequences(), collate_fn=pad, collate_bytes=0)

    class Own(rl.Dataset):
        schema = {"x": ("int64", ())}

        def __len__(self):
            return 4

        def get(self, index, out):
            out["x"][...] = index
    with pytest.raises(ValueError, match="__getitem__"):
        rl.DataLoader(Own(), collate_fn=pad)


class Plain(TorchDataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return float(i)


def structured(batch):
    """What a collate_fn may hand back besides fresh contiguous tensors."""
    from torchvision import tv_tensors
    x = torch.tensor(batch).repeat(3, 1)  # 3 x n
    return {"whole": x, "row": x[1], "column": x[:, 0], "t": x.t(), "grad": torch.ones(2, requires_grad=True),
            "param": torch.nn.Parameter(torch.zeros(2)),
            "boxes": tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8)),
            "half": torch.ones(2, dtype=torch.complex32), "empty": torch.zeros(0, 3)}


@pytest.mark.parametrize("workers", [0, 2])
def test_tensor_kinds_views_and_strides_come_back_as_collate_fn_made_them(workers):
    from torchvision import tv_tensors
    got = {make: list(make(Plain(), batch_size=3, num_workers=workers, collate_fn=structured))
           for make in (rl.DataLoader, TorchLoader)}
    for ours, theirs in zip(got[rl.DataLoader], got[TorchLoader]):
        for k in theirs:
            a, b = ours[k], theirs[k]
            assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape, k
            assert a.stride() == b.stride() and a.requires_grad == b.requires_grad, k
            assert torch.equal(a.to(torch.complex64) if k == "half" else a, b.to(torch.complex64) if k == "half" else b), k
        assert isinstance(ours["boxes"], tv_tensors.BoundingBoxes) and ours["boxes"].canvas_size == (8, 8)
        ours["whole"][1, 0] = 99  # the views still share the storage, as collate_fn made them
        assert ours["row"][0] == 99 and ours["column"][1] == 99 and ours["t"][0, 1] == 99
