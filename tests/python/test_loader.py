"""The Python package: iteration, zero-copy batches, errors, resume, and what a training script
does to a loader (Ctrl-C, SIGKILL of a worker, many loaders in a row)."""
import gc
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

import ringloader as rl


class Points(rl.Dataset):
    """x: 3 x 8 x 8 float32 from out.rng; label: the index. Module level: picklable."""

    schema = {"x": ("float32", (3, 8, 8)), "label": ("int64", ())}

    def __init__(self, n=100, fail_at=None):
        self.n, self.fail_at = n, fail_at

    def __len__(self):
        return self.n

    def get(self, index, out):
        if index == self.fail_at:
            raise ValueError(f"sample {index} is cursed")
        out["x"][:] = out.rng.random((3, 8, 8), dtype=np.float32)
        out["label"][...] = index


class Slow(Points):
    def get(self, index, out):
        time.sleep(0.002)
        super().get(index, out)


def epoch_of(loader):
    labels, xs = [], []
    for x, y in loader:
        labels += y.tolist()
        xs.append(x.clone())
    return labels, torch.cat(xs) if xs else None


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_every_index_exactly_once_with_a_partial_last_batch(workers):
    loader = rl.DataLoader(Points(103), batch_size=10, shuffle=True, num_workers=workers, seed=3)
    for _ in range(2):
        labels, _ = epoch_of(loader)
        assert sorted(labels) == list(range(103))
    assert len(loader) == 11
    loader_drop = rl.DataLoader(Points(103), batch_size=10, num_workers=workers, drop_last=True)
    labels, _ = epoch_of(loader_drop)
    assert labels == list(range(100))


def test_same_seed_same_bytes_for_any_worker_count():
    outs = []
    for w in (0, 1, 2):
        labels, x = epoch_of(rl.DataLoader(Points(64), batch_size=8, shuffle=True, num_workers=w, seed=11))
        outs.append((labels, x))
    for labels, x in outs[1:]:
        assert labels == outs[0][0]
        assert torch.equal(x, outs[0][1])


def test_image_folder_shapes_and_dtypes(image_folder):
    train = rl.ImageFolder(image_folder, size=64, random_crop=True, flip=True)
    assert train.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert len(train) == 40 and train.samples[0][1] == 0 and train.samples[-1][1] == 3
    images, labels = next(iter(rl.DataLoader(train, batch_size=16, num_workers=2, seed=1)))
    assert images.shape == (16, 64, 64, 3) and images.dtype == torch.uint8
    assert labels.shape == (16,) and labels.dtype == torch.int64
    f = rl.ImageFolder(image_folder, size=32, output="float")
    images, labels = next(iter(rl.DataLoader(f, batch_size=8, num_workers=1)))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert -3 < float(images.min()) and float(images.max()) < 3  # normalised


def test_every_decoder_draws_the_same_crops_and_roi_is_a_switch(image_folder):
    def epoch(decoder):
        ds = rl.ImageFolder(image_folder, size=64, random_crop=True, flip=True, decoder=decoder)
        return np.concatenate([x.numpy().copy() for x, _ in rl.DataLoader(ds, batch_size=16, num_workers=1, seed=5)])
    fast = epoch("fast").astype(np.float64)
    for decoder in ("fast-noroi", "turbojpeg", "stb"):
        other = epoch(decoder).astype(np.float64)
        assert other.shape == fast.shape == (40, 64, 64, 3)
        # The same crops and flips, resampled otherwise: each image close (a flip or crop that
        # differed would fall far below 30 dB), and not byte-identical.
        assert not np.array_equal(fast, other), decoder
        mse = np.maximum(np.mean((fast - other) ** 2, axis=(1, 2, 3)), 1e-9)
        assert np.min(10 * np.log10(255 ** 2 / mse)) > 30, decoder
    with pytest.raises(rl.ConfigError, match="fast-noroi"):
        rl.ImageFolder(image_folder, decoder="fastest")


def test_batches_are_views_into_the_ring_and_slots_are_reused():
    loader = rl.DataLoader(Points(64), batch_size=16, num_workers=2, prefetch_factor=1, persistent_workers=True)
    base, size = loader.shared_memory()
    ptrs = []
    for _ in range(2):
        epoch = []
        for x, y in loader:
            assert base <= x.data_ptr() < base + size
            assert not base <= y.data_ptr() < base + size  # labels are copied: keeping them pins nothing
            epoch.append(x.data_ptr())
        ptrs.append(set(epoch))
    assert ptrs[0] == ptrs[1]  # the same slots, epoch after epoch: nothing was allocated


def test_a_slot_comes_back_when_the_last_tensor_is_freed_and_not_before():
    loader = rl.DataLoader(Points(64), batch_size=8, num_workers=1, prefetch_factor=2, persistent_workers=True)
    it = iter(loader)
    first = next(it)
    x0 = first[0]
    second = next(it)
    del first, second  # x0 still views slot 0
    third = next(it)  # the second's slot came back
    base, size = loader.shared_memory()
    assert base <= third[0].data_ptr() < base + size
    fourth = next(it)  # x0 and the third hold 2 of 3 slots: the worker keeps the last, this is a copy
    assert not base <= fourth[0].data_ptr() < base + size and loader.stats()["copied_batches"] == 1
    assert isinstance(x0, torch.Tensor) and x0.shape == (8, 3, 8, 8)
    del x0, third, fourth
    gc.collect()
    assert base <= next(it)[0].data_ptr() < base + size  # both back: zero-copy again
    assert loader.stats()["copied_batches"] == 1


def test_copy_gives_owning_tensors_and_frees_the_slot_at_once():
    loader = rl.DataLoader(Points(40), batch_size=8, num_workers=1, prefetch_factor=1, copy=True)
    base, size = loader.shared_memory()
    kept = [b for b in loader]  # holding all 5 batches of a 1-slot ring is fine with copy=True
    assert len(kept) == 5
    assert not (base <= kept[0][0].data_ptr() < base + size)
    assert sorted(torch.cat([b[1] for b in kept]).tolist()) == list(range(40))


def test_batch_fields_by_name_position_and_unpacking():
    batch = next(iter(rl.DataLoader(Points(16), batch_size=4, num_workers=0)))
    x, y = batch
    assert batch["x"] is x and batch[1] is y and batch.names == ["x", "label"]
    assert list(batch.indices) == [0, 1, 2, 3] and batch.seq == 0
    with pytest.raises(KeyError, match="fields: x, label"):
        batch["image"]


def test_numpy_format():
    x, y = next(iter(rl.DataLoader(Points(16), batch_size=4, format="numpy")))
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and y.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_python_exception_is_a_sample_error_with_its_traceback_and_iteration_goes_on(workers):
    loader = rl.DataLoader(Points(40, fail_at=13), batch_size=10, num_workers=workers)
    got, errors = [], []
    it = iter(loader)
    while True:
        try:
            b = next(it)
        except StopIteration:
            break
        except rl.SampleError as e:
            errors.append(e)
            continue
        got += b[1].tolist()
    assert sorted(got) == list(range(0, 10)) + list(range(20, 40))
    assert len(errors) == 1
    e = errors[0]
    assert e.index == 13 and e.type == "ValueError"
    assert "sample 13 is cursed" in str(e) and "ValueError" in str(e)
    assert "Traceback (most recent call last)" in e.traceback and "in get" in e.traceback


def test_on_error_skip_drops_and_reports():
    loader = rl.DataLoader(Points(40, fail_at=13), batch_size=10, num_workers=2, on_error="skip")
    labels, _ = epoch_of(loader)
    assert sorted(labels) == [i for i in range(40) if i != 13]
    assert [s[0] for s in loader.skipped] == [13]
    assert "cursed" in loader.skipped[0][2]


class TorchStyle(torch.utils.data.Dataset):
    """An ordinary torch Dataset: a tuple of a tensor, an int and a float per sample."""

    def __len__(self):
        return 30

    def __getitem__(self, i):
        return torch.full((2, 3), float(i)), i, i * 0.5


class DictStyle(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {"image": np.full((4, 4), i, dtype=np.uint8), "label": i}


class Ragged(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(i + 1)


def test_a_torch_dataset_runs_unchanged():
    loader = rl.DataLoader(TorchStyle(), batch_size=8, num_workers=2)
    seen = []
    for t, i, f in loader:
        assert t.shape[1:] == (2, 3) and t.dtype == torch.float32
        assert i.dtype == torch.int64 and f.dtype == torch.float64
        assert torch.equal(t[:, 0, 0], i.float()) and torch.allclose(f, i.double() * 0.5)
        seen += i.tolist()
    assert sorted(seen) == list(range(30))
    batch = next(iter(rl.DataLoader(DictStyle(), batch_size=4)))
    assert batch["image"].dtype == torch.uint8 and batch["label"].tolist() == [0, 1, 2, 3]
    with pytest.raises(rl.SampleError, match="pass schema="):  # sample 1's shape differs from sample 0's
        for _ in rl.DataLoader(Ragged(), batch_size=2, num_workers=0):
            pass


def test_holding_more_batches_than_the_ring_spares_hands_out_copies():
    loader = rl.DataLoader(Points(64), batch_size=4, num_workers=1, prefetch_factor=2)
    assert loader._loader.num_slots == 3  # 1 worker x 2, and 1 for the batch the loop keeps
    it = iter(loader)
    held = [next(it), next(it), next(it)]  # the third would leave the worker no slot: a copy
    base, size = loader.shared_memory()
    assert [base <= b[0].data_ptr() < base + size for b in held] == [True, True, False]
    assert loader.stats()["copied_batches"] == 1
    del held


def test_a_worker_sigkilled_mid_epoch_changes_nothing():
    calm, calm_x = epoch_of(rl.DataLoader(Slow(120), batch_size=10, shuffle=True, num_workers=2, seed=5))
    loader = rl.DataLoader(Slow(120), batch_size=10, shuffle=True, num_workers=2, seed=5, persistent_workers=True)
    labels, xs = [], []
    for k, (x, y) in enumerate(loader):
        if k == 3:
            os.kill(loader.worker_pids()[0], signal.SIGKILL)
        labels += y.tolist()
        xs.append(x.clone())
    assert labels == calm and torch.equal(torch.cat(xs), calm_x)
    assert loader.stats()["worker_deaths"] == 1


def test_ctrl_c_during_a_wait_raises_keyboard_interrupt():
    class Hang(Points):
        def get(self, index, out):
            if index >= 8:
                time.sleep(60)
            super().get(index, out)

    loader = rl.DataLoader(Hang(40), batch_size=8, num_workers=1)
    it = iter(loader)
    next(it)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        next(it)
    took = time.monotonic() - t0
    timer.join()
    # Loose on purpose: a wait deaf to the signal lasts the worker's 60 s sleep.
    assert took < 30, took
    del it, loader  # then no worker and nothing in /dev/shm (the fixture checks)


def test_state_dict_resumes_byte_exact():
    whole, whole_x = epoch_of(rl.DataLoader(Points(90), batch_size=8, shuffle=True, num_workers=2, seed=4))
    first = rl.DataLoader(Points(90), batch_size=8, shuffle=True, num_workers=2, seed=4)
    labels, xs = [], []
    for k, (x, y) in enumerate(first):
        labels += y.tolist()
        xs.append(x.clone())
        if k == 4:
            state = first.state_dict()
            break
    del first
    second = rl.DataLoader(Points(90), batch_size=8, shuffle=True, num_workers=1)
    second.load_state_dict(state)
    for x, y in second:
        labels += y.tolist()
        xs.append(x.clone())
    assert labels == whole and torch.equal(torch.cat(xs), whole_x)
    with pytest.raises(rl.ConfigError, match="another dataset"):
        rl.DataLoader(Points(91), batch_size=8).load_state_dict(state)


class Stream(rl.IterableDataset):
    schema = {"v": ("int64", ())}

    def __iter__(self):
        info = rl.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, 50, step))


@pytest.mark.parametrize("workers", [0, 2])
def test_iterable_dataset_shards_by_worker_info(workers):
    values = []
    for (v,) in rl.DataLoader(Stream(), batch_size=7, num_workers=workers):
        values += v.tolist()
    assert sorted(values) == list(range(50))
    assert rl.get_worker_info() is None  # in the training process


def test_worker_init_fn_and_get_worker_info():
    class Who(Points):
        def get(self, index, out):
            super().get(index, out)
            info = rl.get_worker_info()
            out["label"][...] = info.id * 1000 + index

    loader = rl.DataLoader(Who(40), batch_size=5, num_workers=2, worker_init_fn=lambda wid: None)
    labels, _ = epoch_of(loader)
    assert {l // 1000 for l in labels} <= {0, 1} and sorted(l % 1000 for l in labels) == list(range(40))


def test_bad_options_are_config_errors_naming_them():
    with pytest.raises(rl.ConfigError, match="batch_size"):
        rl.DataLoader(Points(), batch_size=0)
    with pytest.raises(rl.ConfigError, match="on_error"):
        rl.DataLoader(Points(), on_error="ignore")
    with pytest.raises(ValueError, match="start_method"):
        rl.DataLoader(Points(), start_method="spawn")
    with pytest.raises(rl.ConfigError, match="collate_fn"):
        rl.DataLoader(Points(), collate_fn=lambda b: b)
    with pytest.raises(rl.ConfigError, match="not a dataset"):
        rl.DataLoader(42)


def test_timeout_bounds_each_wait():
    class Stuck(Points):
        def get(self, index, out):
            if index == 20:
                time.sleep(60)
            super().get(index, out)

    loader = rl.DataLoader(Stuck(40), batch_size=10, num_workers=1, timeout=0.5)
    it = iter(loader)
    next(it), next(it)
    t0 = time.monotonic()
    with pytest.raises(rl.TimeoutError) as e:
        next(it)
    took = time.monotonic() - t0
    # Not before the timeout (a real promise), and not after the stuck sample: loose on purpose.
    assert 0.5 <= took < 30, took
    assert isinstance(e.value, TimeoutError) and not e.value.batch_given_up
    assert "batch 2" in str(e.value)


def test_pin_memory_without_cuda_warns_and_goes_on_as_torch_does():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/python/test_gpu.py covers pin_memory")
    for make in (rl.DataLoader, torch.utils.data.DataLoader):
        with pytest.warns(UserWarning, match="no accelerator is found"):
            loader = make(Points() if make is rl.DataLoader else list(range(10)), batch_size=5, pin_memory=True)
            pinned = [batch[0].is_pinned() for batch in loader]
        assert len(pinned) >= 2 and not any(pinned)
        del loader


def test_distributed_sampler_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    s = rl.DistributedSampler(10, shuffle=False)
    assert (s.rank, s.num_replicas, s.launcher) == (1, 3, "torchrun")
    labels, _ = epoch_of(rl.DataLoader(Points(10), batch_size=2, sampler=s))
    assert labels == [1, 4, 7, 0]  # PyTorch's rule: padded by wrap-around, positions 1, 4, 7, 10
    monkeypatch.setenv("WORLD_SIZE", "x")
    with pytest.raises(rl.ConfigError, match="WORLD_SIZE"):
        rl.DistributedSampler(10)


def test_a_python_sampler():
    labels, _ = epoch_of(rl.DataLoader(Points(10), batch_size=3, sampler=[9, 7, 5, 3, 1]))
    assert labels == [9, 7, 5, 3, 1]


def test_many_loaders_in_a_row_leak_nothing():
    def figures():
        fds = len(os.listdir("/proc/self/fd"))
        with open("/proc/self/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return fds, rss

    def cycle():
        loader = rl.DataLoader(Points(32), batch_size=8, num_workers=1)
        n = sum(len(y) for _, y in loader)
        assert n == 32

    for _ in range(10):
        cycle()
    gc.collect()
    fds0, rss0 = figures()
    for _ in range(200):
        cycle()
    gc.collect()
    fds1, rss1 = figures()
    assert fds1 == fds0
    assert rss1 - rss0 < 8 * 1024, f"RSS grew by {rss1 - rss0} KiB over 200 loaders"
