"""Edges of the Python API: a get(index, out) that returns its sample instead of writing into
`out` has it written into the slot, and one that does neither is a SampleError naming the
mistake (both handed out the slot's previous bytes); file and class names that are not UTF-8
come back as os.fsdecode gives them (they raised UnicodeDecodeError)."""
import pytest

import ringloader as rl


class Returns(rl.Dataset):
    schema = {"v": ("int64", ()), "w": ("float32", (2,))}

    def __init__(self, as_dict=False):
        self.as_dict = as_dict

    def __len__(self):
        return 30

    def get(self, index, out):
        sample = (index * 3, [index, -index])
        return dict(v=sample[0], w=sample[1]) if self.as_dict else sample


class WritesNothing(rl.Dataset):
    schema = {"v": ("int64", ())}

    def __len__(self):
        return 12

    def get(self, index, out):
        pass


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("as_dict", [False, True])
def test_a_returned_sample_is_written_into_the_slot(workers, as_dict):
    v, w = [], []
    for _ in range(2):  # the second epoch reuses slots: stale bytes would show there
        for bv, bw in rl.DataLoader(Returns(as_dict), batch_size=4, num_workers=workers):
            v += bv.tolist()
            w += bw.tolist()
    assert v == [i * 3 for i in range(30)] * 2
    assert w == [[float(i), float(-i)] for i in range(30)] * 2


@pytest.mark.parametrize("workers", [0, 2])
def test_a_get_that_writes_nothing_is_a_sample_error(workers):
    with pytest.raises(rl.SampleError, match="wrote nothing into `out` and returned nothing"):
        for _ in rl.DataLoader(WritesNothing(), batch_size=4, num_workers=workers):
            pass


def test_file_and_class_names_that_are_not_utf8_come_back_as_os_fsdecode_gives_them(tmp_path, image_folder):
    """A class folder and a file whose names are Latin-1 bytes: classes, samples, skipped and the
    SampleError name them with surrogateescape (os.fsdecode), as torchvision's ImageFolder does."""
    import os
    import shutil
    root = os.fsencode(str(tmp_path / "odd"))
    cls = os.path.join(root, b"caf\xe9")
    os.makedirs(cls)
    src = os.path.join(os.fsencode(image_folder), b"class_0")
    first = sorted(os.listdir(src))[0]
    shutil.copy(os.path.join(src, first), os.path.join(cls, b"\xe9t\xe9.jpg"))
    with open(os.path.join(cls, b"b\xe2d.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    ds = rl.ImageFolder(os.fsdecode(root), size=32)
    assert ds.classes == [os.fsdecode(b"caf\xe9")]
    assert sorted(p for p, _ in ds.samples) == sorted(os.fsdecode(os.path.join(cls, n)) for n in (b"\xe9t\xe9.jpg", b"b\xe2d.jpg"))
    with pytest.raises(rl.SampleError) as e:
        for _ in rl.DataLoader(ds, batch_size=2):
            pass
    assert os.fsencode(e.value.path) == os.path.join(cls, b"b\xe2d.jpg")
    loader = rl.DataLoader(ds, batch_size=2, on_error="skip")
    assert sum(len(b[1]) for b in loader) == 1
    assert [os.fsencode(p) for _, p, _ in loader.skipped] == [os.path.join(cls, b"b\xe2d.jpg")]


@pytest.mark.parametrize("make", ["ImageFolder", "Shards"])
def test_reader_threads_past_what_a_worker_can_run_is_a_config_error(make, image_folder):
    with pytest.raises(rl.ConfigError, match=r"reader_threads must be in \[0, 1024\].*100000"):
        getattr(rl, make)(image_folder, reader_threads=100000)


class ExitsWithThree(rl.Dataset):
    """Exits with the code the loader once took for a failed start hook, once, inside get()."""
    schema = {"v": ("int64", ())}

    def __init__(self, flag):
        self.flag = flag

    def __len__(self):
        return 20

    def get(self, index, out):
        import os
        if index == 7 and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(3)
        out["v"][...] = index


def test_a_worker_exiting_with_code_3_in_get_is_a_crash_and_its_batch_is_retried(tmp_path):
    loader = rl.DataLoader(ExitsWithThree(str(tmp_path / "exited")), batch_size=5, num_workers=2)
    got = sorted(int(v) for (b,) in loader for v in b)
    assert got == list(range(20))
    assert loader.stats()["worker_deaths"] == 1


class BadStream(rl.IterableDataset):
    schema = {"v": ("int64", ())}

    def __iter__(self):
        raise KeyError("no shard for this worker")


@pytest.mark.parametrize("workers", [0, 2])
def test_an_iterable_dataset_whose_iter_raises_is_raised_once_with_its_traceback(workers):
    """It cost 24 forks and ended in a BatchError blaming the OOM killer, the user's error nowhere."""
    loader = rl.DataLoader(BadStream(), batch_size=4, num_workers=workers)
    with pytest.raises(rl.Error) as e:
        for _ in loader:
            pass
    text = str(e.value)
    assert "KeyError" in text and "no shard for this worker" in text and "Traceback" in text, text
    assert "OOM" not in text
    assert loader.stats()["worker_deaths"] == 0


class TorchLike:
    """A map-style dataset as torch knows them: __getitem__ and __len__."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("workers", [0, 2])
def test_empty_torch_datasets_give_no_batches_as_in_torch(workers):
    import torch

    class Empty(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(())
    for ds in (TorchLike([]), Empty()):
        ours = list(rl.DataLoader(ds, batch_size=4, num_workers=workers))
        theirs = list(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers))
        assert ours == theirs == []


@pytest.mark.parametrize("items,named", [([1, 2.7, 3], "float64"), ([(1, 0), (300, 1)], "int64")])
def test_a_sample_that_does_not_fit_the_inferred_dtype_is_an_error_never_a_silent_cast(items, named):
    import numpy as np
    if isinstance(items[0], tuple):  # field 0 inferred from a uint8 array
        items = [(np.uint8(a), b) if k == 0 else (a, b) for k, (a, b) in enumerate(items)]
    with pytest.raises(rl.SampleError, match=f"is {named} with values .* cannot hold"):
        for _ in rl.DataLoader(TorchLike(items), batch_size=3):
            pass


class Counter(rl.Dataset):
    schema = {"x": ("float32", (4, 4)), "label": ("int64", ())}

    def __len__(self):
        return 48

    def get(self, index, out):
        out["x"][...] = index
        out["label"][...] = index


def test_keeping_every_batchs_indices_pins_no_slot():
    loader = rl.DataLoader(Counter(), batch_size=4, num_workers=2)  # 4 slots, 12 batches
    kept = [b.indices for b in loader]
    assert [int(i) for ix in kept for i in ix] == list(range(48))


@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle", "torch.save"])
def test_a_batch_can_be_copied_and_pickled_and_the_copy_pins_nothing(how, tmp_path):
    import copy
    import io
    import pickle
    import torch
    loader = rl.DataLoader(Counter(), batch_size=4, num_workers=1)  # 2 slots: holding 3 batches would fail
    copies = []
    for b in loader:
        if how == "deepcopy":
            c = copy.deepcopy(b)
        elif how == "copy":
            c = copy.copy(b)
        elif how == "pickle":
            c = pickle.loads(pickle.dumps(b))
        else:
            buf = io.BytesIO()
            torch.save(b, buf)
            c = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
        copies.append(c)
    assert len(copies) == 12
    x, label = copies[5]
    assert label.tolist() == [20, 21, 22, 23] and float(x[3, 0, 0]) == 23.0
    assert copies[5].indices.tolist() == [20, 21, 22, 23] and copies[5]["label"].tolist() == [20, 21, 22, 23]


def test_holding_every_batch_works_the_ring_hands_out_copies():
    loader = rl.DataLoader(Counter(), batch_size=4, num_workers=1)
    held = [b for b in loader]
    assert len(held) == len(loader) and loader.stats()["copied_batches"] == len(held) - 2


def test_init_after_threads_started_warns(tmp_path):
    import subprocess
    import sys
    code = ("import threading, time, warnings\n"
            "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
            "import ringloader as rl\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    rl.init()\n"
            "print('WARNED' if any('threads' in str(x.message) for x in w) else 'SILENT')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "WARNED" in out.stdout, out.stdout + out.stderr
    first = code.replace("threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n", "")
    out = subprocess.run([sys.executable, "-c", first], capture_output=True, text=True, timeout=60)
    assert "SILENT" in out.stdout, out.stdout + out.stderr  # rl.init() first thing: no warning


# ---- calls that arrive while next() runs (a signal handler, the dataset's code, another thread)

import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


class SlowAfter(rl.Dataset):
    schema = {"v": ("int64", ())}

    def __init__(self, n=40, slow_from=4, delay=0.3):
        self.n, self.slow_from, self.delay = n, slow_from, delay

    def __len__(self):
        return self.n

    def get(self, index, out):
        if index >= self.slow_from:
            time.sleep(self.delay)
        out["v"][...] = index


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("then", ["returns", "raises"])
def test_close_from_a_signal_handler_during_next_closes_when_next_returns(workers, then):
    # close() must not free the loader under the running next(): that is a segmentation fault.
    loader = rl.DataLoader(SlowAfter(), batch_size=4, num_workers=workers)

    def handler(signum, frame):
        loader.close()
        if then == "raises":
            raise SystemExit(3)

    old = signal.signal(signal.SIGALRM, handler)
    try:
        it = iter(loader)
        next(it)
        signal.setitimer(signal.ITIMER_REAL, 0.15)
        if then == "raises":
            with pytest.raises(SystemExit):  # the handler's own exception, not ours
                next(it)
        else:
            with pytest.raises(rl.ConfigError, match="closed"):
                next(it)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    with pytest.raises(rl.ConfigError, match="closed"):
        iter(loader)


@pytest.mark.parametrize("workers", [0, 2])
def test_close_from_another_thread_during_next(workers):
    loader = rl.DataLoader(SlowAfter(delay=0.5), batch_size=4, num_workers=workers)
    it = iter(loader)
    next(it)
    closer = threading.Timer(0.2, loader.close)
    closer.start()
    try:
        with pytest.raises(rl.ConfigError, match="closed"):
            next(it)
    finally:
        closer.join()


class LoadsInGet(rl.Dataset):
    schema = {"v": ("int64", ())}

    def __init__(self):
        self.loader, self.state, self.error = None, None, None

    def __len__(self):
        return 20

    def get(self, index, out):
        if index == 9 and self.error is None:
            try:
                self.loader.load_state_dict(self.state)
            except rl.Error as e:
                self.error = e
        out["v"][...] = index


def test_a_state_loaded_from_inside_next_is_refused_and_the_loader_goes_on():
    # Refused, so that the loader's slots stay its own ("all 2 ring slots are held" otherwise).
    ds = LoadsInGet()
    loader = ds.loader = rl.DataLoader(ds, batch_size=4)
    ds.state = loader.state_dict()
    assert [int(v) for (b,) in loader for v in b] == list(range(20))
    assert "while this loader's next() is running" in str(ds.error)
    assert [int(v) for (b,) in loader for v in b] == list(range(20))


class CountingSampler:
    def __init__(self, n):
        self.n, self.calls = n, 0

    def __len__(self):
        return self.n

    def __iter__(self):
        self.calls += 1
        return iter(range(self.n))


def test_state_dict_does_not_run_the_users_sampler():
    # A torch RandomSampler's __iter__ draws from torch's generator: a state_dict() that ran it
    # would change the order of later epochs by saving a checkpoint.
    sampler = CountingSampler(20)
    loader = rl.DataLoader(SlowAfter(20, slow_from=99), batch_size=4, sampler=sampler)
    it = iter(loader)
    next(it)
    calls = sampler.calls
    for _ in range(3):
        loader.state_dict()
    assert sampler.calls == calls


def test_torch_distributed_sampler_epoch_may_be_set_after_loading_the_state():
    import torch.utils.data as tud
    kw = dict(batch_size=2)

    def make():
        ds = SlowAfter(20, slow_from=99)
        return rl.DataLoader(ds, sampler=tud.DistributedSampler(ds, num_replicas=1, rank=0, seed=5), **kw)

    first = make()
    first.set_epoch(1)
    it = iter(first)
    seen = [int(v) for v in next(it)[0]] + [int(v) for v in next(it)[0]]
    state = first.state_dict()
    rest_expected = [int(v) for (b,) in it for v in b]
    second = make()
    second.load_state_dict(state)
    second.set_epoch(1)  # torch's script order: load the checkpoint, then set the sampler's epoch
    assert [int(v) for (b,) in second for v in b] == rest_expected
    assert sorted(seen + rest_expected) == list(range(20))


@pytest.mark.parametrize("bad", [{}, {"ringloader_state": 5}, None, "x"])
def test_a_malformed_state_is_a_config_error(bad):
    with pytest.raises(rl.ConfigError, match="state_dict"):
        rl.DataLoader(SlowAfter(8, slow_from=99), batch_size=4).load_state_dict(bad)


def test_a_new_epoch_begun_while_a_batch_was_being_built_drops_that_batch(monkeypatch):
    # A Ctrl-C handler that starts a new epoch (iter(loader)) while the batch object is built:
    # the interrupted batch belongs to the abandoned epoch and must not open the new one.
    loader = rl.DataLoader(SlowAfter(20, slow_from=99), batch_size=4, shuffle=True, seed=3)
    real_new = rl.Batch.__new__
    state = {"calls": 0, "new_it": None}

    def new(cls, *args):
        state["calls"] += 1
        if state["calls"] == 2:
            state["new_it"] = iter(loader)
            raise KeyboardInterrupt
        return real_new(cls, *args)

    monkeypatch.setattr(rl.Batch, "__new__", new)
    it = iter(loader)
    next(it)
    with pytest.raises(KeyboardInterrupt):
        next(it)
    monkeypatch.setattr(rl.Batch, "__new__", real_new)
    fresh = [sorted(int(v) for v in b[0]) for b in state["new_it"]]
    assert len(fresh) == 5 and sorted(sum(fresh, [])) == list(range(20))  # the new epoch, whole and alone


# ---- an exception raised in dataset code keeps its type (as torch re-raises it) and is an rl.SampleError


class OwnError(Exception):
    def __init__(self, code, detail):  # arguments the loader cannot know
        super().__init__(f"{code}: {detail}")


class Raising(rl.Dataset):
    schema = {"v": ("int64", ())}

    def __init__(self, exc):
        self.exc = exc

    def __len__(self):
        return 12

    def get(self, index, out):
        if index == 5:
            raise self.exc
        out["v"][...] = index


@pytest.mark.parametrize("exc, catch", [
    (KeyError("missing"), KeyError), (ValueError("bad"), ValueError), (FileNotFoundError(2, "gone"), OSError),
    (OwnError(7, "own"), OwnError), (StopIteration(), rl.SampleError)],
    ids=["KeyError", "ValueError", "FileNotFoundError", "own class", "StopIteration"])
@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_in_get_is_its_own_type_and_a_sample_error(exc, catch, workers):
    loader = rl.DataLoader(Raising(exc), batch_size=2, num_workers=workers)
    it, got, caught = iter(loader), [], []
    while True:
        try:
            (b,) = next(it)
        except StopIteration:
            break
        except catch as e:
            caught.append(e)
            continue
        got += b.tolist()
    assert len(caught) == 1 and isinstance(caught[0], rl.SampleError) and caught[0].index == 5
    assert "Traceback" in str(caught[0]) and type(exc).__name__ in str(caught[0])
    assert got == [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]  # iteration went on (the failed batch is not delivered)
