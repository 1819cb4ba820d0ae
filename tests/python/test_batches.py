"""Holding batches never fails: list(loader), keeping every target of a validation pass,
keeping every batch of an epoch. Zero-copy while the loop lets go; past what the ring can spare
the next batches are handed out as copies (counted in stats()); labels and indices are copied
out of the slot, so keeping them pins nothing."""
import pytest
import torch

import ringloader as rl


class Numbers(rl.Dataset):
    schema = {"image": ("uint8", (64, 64, 3)), "label": ("int64", ())}

    def __len__(self):
        return 50

    def get(self, index, out):
        out["image"][...] = index % 256
        out["label"][...] = index


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_list_of_the_loader_holds_every_batch(workers):
    loader = rl.DataLoader(Numbers(), batch_size=4, num_workers=workers)
    for _ in range(2):  # the second epoch reuses the slots the copies let go
        batches = list(loader)
        assert len(batches) == 13
        assert [int(y) for _, y in batches for y in y] == list(range(50))
        assert all(int(x[k, 0, 0, 0]) == int(y[k]) for x, y in batches for k in range(len(y)))
    copied = loader.stats()["copied_batches"]
    assert 0 < copied <= 2 * 13 and loader.stats()["batches"] == 26
    del batches


@pytest.mark.parametrize("workers", [0, 2])
def test_a_training_loop_that_lets_go_copies_nothing(workers):
    loader = rl.DataLoader(Numbers(), batch_size=4, num_workers=workers)
    for _ in range(2):
        for x, y in loader:
            pass
    assert loader.stats()["copied_batches"] == 0


def test_keeping_labels_and_indices_pins_no_slot():
    loader = rl.DataLoader(Numbers(), batch_size=4, num_workers=2)
    targets, indices = [], []
    for b in loader:
        targets.append(b[1])
        indices.append(b.indices)
    assert torch.cat(targets).tolist() == list(range(50))
    assert loader.stats()["copied_batches"] == 0  # the labels are not views of the slot


# ---- torch datasets: batches shaped as torch's default_collate shapes them, side by side

import collections  # noqa: E402

import numpy as np  # noqa: E402
from torch.utils.data import DataLoader as TorchLoader  # noqa: E402
from torch.utils.data import Dataset as TorchDataset  # noqa: E402

Point = collections.namedtuple("Point", ["xy", "label"])


class Shaped(TorchDataset):
    def __init__(self, kind):
        self.kind = kind

    def __len__(self):
        return 10

    def __getitem__(self, i):
        x = torch.full((2, 3), float(i))
        if self.kind == "tuple":
            return x, i
        if self.kind == "list":
            return [x, float(i), i % 2 == 0]
        if self.kind == "dict":
            return {"image": x, "meta": {"id": i, "name": f"sample-{i}", "raw": bytes([i, 255])}, "w": np.float32(i)}
        if self.kind == "namedtuple":
            return Point(x, i)
        if self.kind == "single":
            return x
        if self.kind == "text":  # str and bytes inside sequences and a dict
            return x, f"s{i}", [f"n{i}", bytes([i])], {"caption": f"c{i}"}
        if self.kind == "dtypes":
            return (torch.tensor([i % 2 == 0, True]), torch.tensor([i], dtype=torch.float16),
                    torch.tensor([-i], dtype=torch.int8), torch.tensor([i], dtype=torch.int16),
                    np.array([i], dtype=np.uint16), torch.tensor([i / 3], dtype=torch.bfloat16),
                    np.array([i], dtype=np.uint32), torch.tensor([i + 0.5], dtype=torch.float64))
        raise AssertionError(self.kind)


def same(a, b, where="batch"):
    assert type(a) is type(b), f"{where}: {type(a).__name__} against torch's {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), f"{where}: {a} against {b}"
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} against {b!r}"


@pytest.mark.parametrize("kind", ["tuple", "list", "dict", "namedtuple", "single", "dtypes", "text"])
@pytest.mark.parametrize("workers", [0, 2])
def test_a_torch_datasets_batches_have_default_collates_structure_and_dtypes(kind, workers):
    ours = list(rl.DataLoader(Shaped(kind), batch_size=4, num_workers=workers))
    theirs = list(TorchLoader(Shaped(kind), batch_size=4))
    assert len(ours) == len(theirs) == 3
    for k, (a, b) in enumerate(zip(ours, theirs)):
        same(a, b, f"batch {k}")


def test_torch_shaped_batches_say_their_indices_on_the_loader():
    loader = rl.DataLoader(Shaped("tuple"), batch_size=4, shuffle=True, seed=2)
    for x, y in loader:
        assert sorted(loader.last_batch.indices.tolist()) == sorted(y.tolist())


class Uneven:
    """A batch sampler of the user's own: lists of indices of different sizes, no batch_size."""

    def __len__(self):
        return 3

    def __iter__(self):
        return iter([[0, 1, 2], [9], [3, 4, 5, 6, 7]])


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_sampler_lists_or_torchs_batch_sampler(workers):
    from torch.utils.data import BatchSampler, SequentialSampler
    for bs in (BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False), Uneven()):
        ours = rl.DataLoader(Shaped("tuple"), batch_sampler=bs, num_workers=workers)
        theirs = TorchLoader(Shaped("tuple"), batch_sampler=bs)
        assert ours.batch_size is None and ours.drop_last is False and len(ours) == len(theirs)
        got = list(ours)
        assert len(got) == len(theirs)
        for a, b in zip(got, theirs):
            same(a, b)


@pytest.mark.parametrize("kind", ["tuple", "dict", "single", "list"])
def test_batch_size_none_gives_samples_as_torch_does(kind):
    ours = list(rl.DataLoader(Shaped(kind), batch_size=None, num_workers=2))
    theirs = list(TorchLoader(Shaped(kind), batch_size=None))
    assert len(ours) == len(theirs) == 10
    for a, b in zip(ours, theirs):
        same(a, b)


def test_batch_sampler_with_batch_size_is_torchs_error():
    from torch.utils.data import BatchSampler, SequentialSampler
    bs = BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        rl.DataLoader(Shaped("tuple"), batch_sampler=bs, batch_size=4)


class Own(rl.Dataset):
    schema = {"image": ("uint8", (4, 4, 3)), "label": ("int64", ())}

    def __len__(self):
        return 6

    def get(self, index, out):
        out["image"][...] = index
        out["label"][...] = index


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_size_none_gives_an_rl_datasets_samples_without_the_batch_dimension(workers):
    samples = list(rl.DataLoader(Own(), batch_size=None, num_workers=workers))
    assert len(samples) == 6
    for k, s in enumerate(samples):
        assert s["image"].shape == (4, 4, 3) and s["label"].shape == () and int(s["label"]) == k
        assert list(s.indices) == [k] and int(s["image"][0, 0, 0]) == k


class DtypeDrifts(torch.utils.data.Dataset):
    """float32 first, then float64: torch's default_collate would promote; a slot field has
    one dtype, so the later sample is an error, never silently cast to float32."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.full((2,), 1 / 3, dtype=torch.float32 if i == 0 else torch.float64)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_sample_whose_dtype_differs_from_the_first_is_an_error_not_a_cast(workers):
    it = iter(rl.DataLoader(DtypeDrifts(), batch_size=1, num_workers=workers))
    assert next(it).dtype == torch.float32
    with pytest.raises(ValueError, match="dtype float64, the first sample had float32"):
        next(it)


class Varied(torch.utils.data.Dataset):
    """Samples of every structure: without batching torch hands each over as it is."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return [torch.ones(i), {"a": i}, np.arange(i), 2 ** 70, None, "s", (i, float(i))][i]


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_size_none_hands_over_samples_of_any_structure_as_torch(workers):
    from torch.utils.data import DataLoader as TorchLoader
    ours = rl.DataLoader(Varied(), batch_size=None, num_workers=workers)
    theirs = TorchLoader(Varied(), batch_size=None, num_workers=workers)
    assert ours.collate_fn is theirs.collate_fn  # torch's default_convert
    for a, b in zip(list(ours), list(theirs), strict=True):
        assert type(a) is type(b)
        if isinstance(b, torch.Tensor):
            assert torch.equal(a, b)
        else:
            assert a == b
