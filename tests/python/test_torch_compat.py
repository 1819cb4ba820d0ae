"""rl.DataLoader against torch.utils.data.DataLoader on the same datasets, side by side: worker
RNG seeding, torch.manual_seed reproducibility, get_worker_info() in workers, worker_init_fn,
a user's DistributedSampler epoch, iterators that end or are abandoned. Ported from the
behaviours torch's test/test_dataloader.py checks; each case runs under a time limit."""
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader as TorchLoader
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import DistributedSampler as TorchDistributedSampler
from torch.utils.data import IterableDataset as TorchIterable
from torch.utils.data import get_worker_info as torch_get_worker_info

import ringloader as rl
from ringloader import _worker


pytestmark = pytest.mark.usefixtures("time_limit")  # conftest.py: a hang fails after 60 s


class Draws(TorchDataset):
    """Each sample: what the worker's random, torch and numpy RNGs draw for it (what a
    torchvision random transform draws from)."""

    def __init__(self, n=32):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor([random.random(), torch.rand(1).item(), float(np.random.rand())], dtype=torch.float64)


def draws_of(loader, epochs=2):
    out = []
    for _ in range(epochs):
        for batch in loader:
            out += [tuple(row) for row in batch.tolist()]
    return out


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_draw_different_numbers_every_worker_and_epoch(persistent):
    for make in (rl.DataLoader, TorchLoader):
        loader = make(Draws(), batch_size=4, num_workers=2, persistent_workers=persistent)
        draws = draws_of(loader)
        for k in range(3):  # random, torch, numpy: no value drawn twice over 2 workers x 2 epochs
            column = [d[k] for d in draws]
            assert len(set(column)) == len(column), f"{make.__module__}: RNG {k} repeats across workers or epochs"
        del loader


def test_torch_manual_seed_reproduces_order_and_worker_draws():
    def run(seed):
        torch.manual_seed(seed)
        order = [int(i) for b in rl.DataLoader(range(32), batch_size=8, shuffle=True) for i in b]
        loader = rl.DataLoader(Draws(), batch_size=4, shuffle=True, num_workers=2)
        draws = draws_of(loader)
        del loader
        return order, draws
    assert run(7) == run(7)
    assert run(7) != run(8)


@pytest.mark.parametrize("workers", [0, 2])
def test_manual_seed_after_the_loader_is_built_reproduces_the_run(workers):
    """torch draws at each iter(), not when the loader is built: a script that builds its loader
    first and calls torch.manual_seed(s) later is reproducible."""
    def run(make, dataset):
        loader = make(dataset, batch_size=4, shuffle=True, num_workers=workers)
        torch.manual_seed(5)
        epochs = [[tuple(r) if isinstance(r, list) else r for b in loader for r in b.tolist()] for _ in range(2)]
        del loader
        return epochs
    for make in (rl.DataLoader, TorchLoader):
        # without workers random and numpy are the training process's own (torch seeds neither)
        dataset = Draws(16) if workers else list(range(16))
        first = run(make, dataset)
        assert first == run(make, dataset), make.__module__
        assert first[0] != first[1], make.__module__  # the next epoch draws anew


@pytest.mark.parametrize("shuffle,workers,persistent", [(False, 0, False), (True, 0, False), (True, 2, False),
                                                       (False, 2, True), (True, 2, True)])
def test_the_training_loops_own_draws_follow_torchs(shuffle, workers, persistent):
    """Without seed=, iter() draws from torch's default generator what torch's DataLoader draws
    (its base seed; the RandomSampler's seed with shuffle=True), so the loop's own random draws
    (dropout, noise) are the ones a run under torch makes."""
    after = {}
    for make in (rl.DataLoader, TorchLoader):
        torch.manual_seed(3)
        loader = make(list(range(12)), batch_size=4, shuffle=shuffle, num_workers=workers,
                      persistent_workers=persistent)
        after[make] = []
        for _ in range(3):
            for _ in loader:
                pass
            after[make].append(torch.rand(1).item())
        del loader
    assert after[rl.DataLoader] == after[TorchLoader]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_generator_is_left_as_torchs_loader_leaves_it(workers):
    after = {}
    for make in (rl.DataLoader, TorchLoader):
        g = torch.Generator().manual_seed(1)
        loader = make(list(range(12)), batch_size=4, shuffle=True, generator=g, num_workers=workers)
        for _ in range(2):
            for _ in loader:
                pass
        after[make] = torch.rand(2, generator=g).tolist()
        del loader
    assert after[rl.DataLoader] == after[TorchLoader]


class OwnBatches:
    """A batch sampler of the user's own without batch_size: its order comes from torch's RNG."""

    def __iter__(self):
        order = torch.randperm(9).tolist()
        return iter([order[k:k + 3] for k in range(0, 9, 3)])

    def __len__(self):
        return 3


def test_a_batch_sampler_without_batch_size_gives_torchs_batches():
    """Sizing the slots runs a pass over it; that pass must not draw from the run's RNG."""
    got = {}
    for make in (rl.DataLoader, TorchLoader):
        torch.manual_seed(0)
        got[make] = [b.tolist() for b in make(list(range(9)), batch_sampler=OwnBatches())]
        got[make].append(torch.rand(1).item())
    assert got[rl.DataLoader] == got[TorchLoader]


@pytest.mark.parametrize("kwargs", [dict(batch_size=2, shuffle=True), dict(batch_size=2), dict(batch_size=None),
                                    dict(batch_size=3, drop_last=True, sampler=[5, 4, 3, 2, 1, 0])])
def test_sampler_and_batch_sampler_attributes_are_torchs(kwargs):
    """Integrations (Lightning, accelerate) read them to rebuild a loader."""
    ours, theirs = rl.DataLoader(list(range(6)), **kwargs), TorchLoader(list(range(6)), **kwargs)
    assert type(ours.sampler) is type(theirs.sampler) and type(ours.batch_sampler) is type(theirs.batch_sampler)
    if theirs.batch_sampler is not None:
        assert (ours.batch_sampler.batch_size, ours.batch_sampler.drop_last) == \
            (theirs.batch_sampler.batch_size, theirs.batch_sampler.drop_last)
    if not kwargs.get("shuffle"):
        assert list(ours.sampler) == list(theirs.sampler)


class Threaded(TorchDataset):
    """Runs a multi-threaded torch op: a process forked after torch's thread pool ran can
    deadlock in that pool, so nothing may fork to learn the layout without workers."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        x = torch.nn.functional.interpolate(torch.rand(1, 3, 256, 256), size=(300, 300), mode="bilinear")
        return x[0, :, :4, :4]


def test_without_workers_nothing_forks_to_learn_the_layout():
    torch.nn.functional.interpolate(torch.rand(1, 3, 512, 512), size=(600, 600))  # the pool runs
    for collate_fn in (None, lambda b: torch.stack(b)):
        loader = rl.DataLoader(Threaded(), batch_size=2, collate_fn=collate_fn)
        assert [b.shape for b in loader] == [(2, 3, 4, 4)] * 2


def test_without_workers_collate_fn_hands_its_output_over_as_it_is():
    """torch's single-process loader never pickles: a generator or a class made inside a function."""
    import collections
    Local = collections.namedtuple("Local", "x")

    def collate(batch):
        return Local(x for x in batch)
    for make in (rl.DataLoader, TorchLoader):
        got = [list(b.x) for b in make(list(range(5)), batch_size=2, collate_fn=collate)]
        assert got == [[0, 1], [2, 3], [4]], make.__module__


def test_shuffling_an_empty_dataset_is_torchs_error():
    for make in (rl.DataLoader, TorchLoader):
        with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
            make([], batch_size=2, shuffle=True)


def test_with_seed_given_torchs_generator_is_not_drawn_from():
    torch.manual_seed(3)
    expect = torch.rand(1).item()
    torch.manual_seed(3)
    loader = rl.DataLoader(list(range(12)), batch_size=4, shuffle=True, seed=9)
    orders = [[int(i) for b in loader for i in b] for _ in range(2)]
    assert torch.rand(1).item() == expect
    assert orders[0] != orders[1] and sorted(orders[0]) == list(range(12))


def test_a_resumed_epoch_keeps_its_saved_seed():
    """The epoch a state resumes runs with the seed it was saved with (not a new draw), so its
    remaining batches are the ones the saved run had still to come."""
    torch.manual_seed(1)
    loader = rl.DataLoader(Draws(16), batch_size=4, shuffle=True, num_workers=2)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    rest = [tuple(r) for b in it for r in b.tolist()]
    del it, loader
    torch.manual_seed(99)  # another generator state: not drawn from for the resumed epoch
    again = rl.DataLoader(Draws(16), batch_size=4, shuffle=True, num_workers=2)
    again.load_state_dict(state)
    assert [tuple(r) for b in again for r in b.tolist()] == rest
    del again


def test_a_samples_draws_do_not_depend_on_the_worker_count_or_scheduling():
    """ringloader's extra: workers claim batches as they come free, so the draws are keyed by the
    batch (loader seed, epoch, its indices), not by the worker: the same for 1 or 3 workers."""
    def run(workers):
        torch.manual_seed(11)
        loader = rl.DataLoader(Draws(24), batch_size=4, shuffle=True, num_workers=workers)
        draws = draws_of(loader)
        del loader
        return draws
    assert run(1) == run(3)


def test_generator_argument_reproduces_the_shuffle_as_torch_does():
    def order(make, seed):
        loader = make(range(40), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [int(i) for b in loader for i in b]
    for make in (rl.DataLoader, TorchLoader):
        assert order(make, 3) == order(make, 3)
        assert order(make, 3) != order(make, 4)
        assert sorted(order(make, 3)) == list(range(40))


class Sharded(TorchIterable):
    """torch's documented recipe: each worker takes its share by get_worker_info()."""

    def __init__(self, n=30):
        self.n = n

    def __iter__(self):
        info = torch_get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_torch_get_worker_info_shards_an_iterable_dataset_as_in_torch(workers):
    got = {}
    for make in (rl.DataLoader, TorchLoader):
        got[make] = sorted(int(v) for b in make(Sharded(), batch_size=4, num_workers=workers) for v in b)
    assert got[rl.DataLoader] == got[TorchLoader] == list(range(30))


class WhoAmI(TorchDataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        t, r = torch_get_worker_info(), rl.get_worker_info()
        if t is None:
            raise RuntimeError("WhoAmI ran in the training process")
        same = (t.id, t.num_workers, t.seed) == (r.id, r.num_workers, r.seed) and t.dataset is r.dataset is self
        return torch.tensor([t.id, t.num_workers, int(same), 1])  # the seeds at start: the worker_init_fn test


def test_worker_info_is_the_same_from_torch_and_ringloader():
    rows = [r for b in rl.DataLoader(WhoAmI(), batch_size=3, num_workers=2) for r in b.tolist()]
    assert {r[0] for r in rows} <= {0, 1}
    assert all(r[1] == 2 and r[2] == 1 and r[3] == 1 for r in rows), rows
    assert rl.get_worker_info() is None and torch_get_worker_info() is None  # in the training process


class OnlyInWorkers(TorchDataset):
    """Raises in the training process: torch never runs dataset code there when it has workers."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        if torch_get_worker_info() is None:
            raise RuntimeError("__getitem__ ran in the training process")
        return {"x": torch.tensor([i]), "name": f"s{i}"}


class OnlyInWorkersStream(TorchIterable):
    def __iter__(self):
        info = torch_get_worker_info()
        if info is None:
            raise RuntimeError("__iter__ ran in the training process")
        return iter(range(info.id, 12, info.num_workers))


def test_the_training_process_never_runs_dataset_code_when_there_are_workers():
    for make in (rl.DataLoader, TorchLoader):
        batches = list(make(OnlyInWorkers(), batch_size=4, num_workers=2))
        assert sorted(int(i) for b in batches for i in b["x"]) == list(range(10)), make.__module__
        assert sorted(n for b in batches for n in b["name"]) == sorted(f"s{i}" for i in range(10))
        stream = make(OnlyInWorkersStream(), batch_size=5, num_workers=2)
        assert sorted(int(i) for b in stream for i in b) == list(range(12)), make.__module__


class OneShot(TorchIterable):
    """A stream that can be iterated once (a generator over a socket, say)."""

    def __init__(self):
        self.source = iter(range(9))

    def __iter__(self):
        return self.source


@pytest.mark.parametrize("workers", [0, 1])
def test_a_one_shot_stream_loses_no_sample(workers):
    for make in (rl.DataLoader, TorchLoader):
        assert [int(i) for b in make(OneShot(), batch_size=4, num_workers=workers) for i in b] == list(range(9))


class LinesOfAnOpenFile(TorchIterable):
    """A stream over a file opened when the dataset was made: without workers, reading it in a
    forked child would move the offset this process reads from (and lose a buffer's worth)."""

    def __init__(self, path):
        self.file = open(path)

    def __iter__(self):
        return (torch.tensor(int(line)) for line in self.file)


def test_a_stream_over_an_open_file_loses_nothing_without_workers(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"{i}\n" for i in range(5000)))
    for make in (rl.DataLoader, TorchLoader):
        dataset = LinesOfAnOpenFile(path)
        assert [int(i) for b in make(dataset, batch_size=64) for i in b] == list(range(5000)), make.__module__
        dataset.file.close()


class NotImplementedItems(TorchDataset):
    """torch's ErrorDataset: no __getitem__, so every sample raises NotImplementedError."""

    def __len__(self):
        return 10


class FirstFails(TorchDataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 0:
            raise KeyError(i)
        return torch.tensor([i])


@pytest.mark.parametrize("workers", [0, 2])
def test_errors_in_getitem_surface_batch_by_batch_when_iterating(workers):
    """torch's test_error / test_error_workers: building the loader raises nothing, and each
    batch raises its samples' error, iteration going on to the end."""
    for make in (rl.DataLoader, TorchLoader):
        it = iter(make(NotImplementedItems(), batch_size=4, num_workers=workers))
        errors = 0
        while True:
            try:
                next(it)
            except NotImplementedError:
                errors += 1
            except StopIteration:
                break
        assert errors == 3, make.__module__
        got, errors = [], []
        it = iter(make(FirstFails(), batch_size=4, num_workers=workers))
        while True:
            try:
                got += [int(i) for i in next(it)]
            except KeyError as e:
                errors.append(e)
            except StopIteration:
                break
        assert got == list(range(4, 10)) and len(errors) == 1, make.__module__


def drain(it, *errors):
    """(the values of every batch, the errors raised) over the whole epoch."""
    got, raised = [], []
    while True:
        try:
            got += [int(v) for v in next(it)]
        except StopIteration:
            return got, raised
        except errors as e:
            raised.append(e)


class KillsItsWorker(TorchDataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 0:
            import os
            os._exit(3)
        return torch.tensor(i)


def test_a_sample_that_kills_its_process_fails_its_batch_only():
    """Building the loader loads no sample here (the layout child dies on sample 0 and another
    takes sample 1); iterating gives up batch 0 and delivers batch 1."""
    loader = rl.DataLoader(KillsItsWorker(), batch_size=4, num_workers=2, max_retries=1)
    got, raised = drain(iter(loader), rl.BatchError)
    assert got == [4, 5, 6, 7] and len(raised) == 1 and list(raised[0].indices) == [0, 1, 2, 3]


class FirstEightRaise(TorchDataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        if i < 8:
            raise KeyError(i)
        return torch.tensor(i)


class WorkerZeroRaises(TorchIterable):
    def __iter__(self):
        if torch_get_worker_info().id == 0:
            raise ValueError("worker 0's part is unreadable")
        return iter(range(100, 103))


def test_a_layout_is_learned_past_samples_and_stream_parts_that_raise():
    for make in (rl.DataLoader, TorchLoader):
        got, raised = drain(iter(make(FirstEightRaise(), batch_size=8, num_workers=2)), KeyError)
        assert got == list(range(8, 40)) and len(raised) == 1, make.__module__
    # (torch's own worker fails with an UnboundLocalError of its fetcher here: no side to compare)
    got, raised = drain(iter(rl.DataLoader(WorkerZeroRaises(), batch_size=2, num_workers=2)), ValueError)
    assert got == [100, 101, 102] and len(raised) == 1


def test_worker_init_fn_sees_the_seeds_torch_gives():
    """torch: worker w is seeded base + w (random, torch), numpy from _generate_state(base, w)."""
    seen = {}
    for make in (rl.DataLoader, TorchLoader):
        def init(worker_id):
            info = torch_get_worker_info()
            assert info.id == worker_id and torch.initial_seed() == info.seed
            base = info.seed - worker_id
            expect = np.random.RandomState(_worker._generate_state(base, worker_id)).rand()
            assert np.random.rand() == expect  # numpy was seeded from (base, worker id)
            assert random.random() == random.Random(info.seed).random()
        loader = make(Draws(8), batch_size=4, num_workers=2, worker_init_fn=init)
        seen[make] = draws_of(loader, epochs=1)  # an assertion failing in init fails the epoch
        del loader
    assert len(seen[rl.DataLoader]) == len(seen[TorchLoader]) == 8


def test_worker_init_fn_is_not_called_without_workers():
    calls = []
    for make in (rl.DataLoader, TorchLoader):
        assert len(list(make(Draws(8), batch_size=4, num_workers=0, worker_init_fn=calls.append))) == 2
    assert calls == []


def test_generate_state_without_torch_matches_torchs():
    from torch.utils.data._utils.worker import _generate_state
    rng = random.Random(5)
    for _ in range(200):
        base, wid = rng.getrandbits(63), rng.randrange(64)
        assert _worker._generate_state_without_torch(base, wid) == _generate_state(base, wid)


def test_a_users_distributed_sampler_keeps_its_epoch():
    ds = list(range(50))
    orders = {}
    for make in (rl.DataLoader, TorchLoader):
        sampler = TorchDistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=0)
        sampler.set_epoch(5)
        orders[make] = [int(i) for b in make(ds, batch_size=5, sampler=sampler) for i in b]
    assert orders[rl.DataLoader] == orders[TorchLoader]
    epoch0 = TorchDistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=0)
    assert orders[rl.DataLoader] != list(epoch0)


def test_loader_set_epoch_reaches_a_users_sampler():
    ds = list(range(50))
    sampler = TorchDistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=0)
    loader = rl.DataLoader(ds, batch_size=5, sampler=sampler)
    loader.set_epoch(3)
    assert sampler.epoch == 3
    expect = TorchDistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=0)
    expect.set_epoch(3)
    assert [int(i) for b in loader for i in b] == list(expect)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_exhausted_iterator_stays_exhausted(workers):
    for make in (rl.DataLoader, TorchLoader):
        loader = make(range(10), batch_size=4, num_workers=workers)
        it = iter(loader)
        assert sum(1 for _ in it) == 3
        for _ in range(3):
            with pytest.raises(StopIteration):
                next(it)
        del it, loader


def test_two_live_iterators_never_mix_batches():
    loader = rl.DataLoader(range(20), batch_size=4)
    first = iter(loader)
    assert next(first).tolist() == [0, 1, 2, 3]
    second = iter(loader)
    assert [b.tolist() for b in second] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17, 18, 19]]
    with pytest.raises(rl.Error, match="abandoned by a later iter"):
        next(first)
    with pytest.raises(rl.Error, match="abandoned by a later iter"):
        list(zip(loader, loader))


@pytest.mark.parametrize("kwargs", [
    dict(num_workers=-1), dict(timeout=-1), dict(prefetch_factor=2), dict(num_workers=2, prefetch_factor=-1),
    dict(persistent_workers=True), dict(batch_size=None, drop_last=True), dict(sampler=[0, 1], shuffle=True),
    dict(batch_sampler=[[0, 1]], batch_size=2), dict(batch_sampler=[[0, 1]], shuffle=True),
    dict(batch_sampler=[[0, 1]], sampler=[0]), dict(batch_sampler=[[0, 1]], drop_last=True),
    dict(batch_size=-1), dict(batch_size=0), dict(drop_last=1), dict(num_workers=0, multiprocessing_context="fork"),
    dict(num_workers=1, multiprocessing_context="bogus"),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_invalid_arguments_raise_torchs_value_error(kwargs):
    ds = list(range(10))
    with pytest.raises(ValueError) as theirs:
        list(TorchLoader(ds, **kwargs))
    with pytest.raises(rl.ConfigError) as ours:
        rl.DataLoader(ds, **kwargs)
    assert isinstance(ours.value, ValueError) and str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("kwargs", [dict(shuffle=True), dict(sampler=[0, 1])])
def test_an_iterable_dataset_refuses_what_torch_refuses(kwargs):
    with pytest.raises(ValueError) as theirs:
        TorchLoader(Sharded(), **kwargs)
    with pytest.raises(rl.ConfigError) as ours:
        rl.DataLoader(Sharded(), **kwargs)
    assert str(ours.value) == str(theirs.value)


class SizedStream(Sharded):
    def __len__(self):
        return self.n


def test_a_torch_iterable_dataset_with_len_is_iterable_style():
    for make in (rl.DataLoader, TorchLoader):
        assert sorted(int(v) for b in make(SizedStream(), batch_size=4, num_workers=2) for v in b) == list(range(30))


@pytest.mark.parametrize("kwargs,named", [
    (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"), (dict(seed=1 << 64), "seed"),
    (dict(num_workers=1.5), "num_workers"), (dict(batch_size=2.5), "batch_size"),
    (dict(timeout=float("nan")), "timeout"), (dict(timeout=float("inf")), "timeout"), (dict(timeout=1e300), "timeout"),
    (dict(max_retries=-1), "max_retries"),
])
def test_options_torch_does_not_check_are_named_in_a_config_error(kwargs, named):
    with pytest.raises(rl.ConfigError, match=named):
        rl.DataLoader(list(range(10)), **kwargs)


class Sleepy(TorchDataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        import time
        time.sleep(2)
        return i


def test_a_timeout_under_half_a_millisecond_still_bounds_the_wait():
    loader = rl.DataLoader(Sleepy(), batch_size=1, num_workers=1, timeout=0.0004)
    with pytest.raises(rl.TimeoutError):
        next(iter(loader))
    del loader


def test_attributes_are_torchs_and_frozen_as_in_torch():
    ds = list(range(10))
    ours, theirs = rl.DataLoader(ds, batch_size=2), TorchLoader(ds, batch_size=2)
    for name in ("dataset", "batch_size", "num_workers", "prefetch_factor", "pin_memory", "pin_memory_device",
                 "timeout", "worker_init_fn", "multiprocessing_context", "sampler", "batch_sampler", "generator",
                 "collate_fn", "drop_last", "persistent_workers", "in_order"):
        assert hasattr(ours, name), name
    for name in ("num_workers", "prefetch_factor", "pin_memory", "timeout", "drop_last", "persistent_workers",
                 "generator", "worker_init_fn", "in_order", "batch_size"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in ("batch_size", "sampler", "drop_last", "dataset", "persistent_workers", "batch_sampler"):
        for loader in (ours, theirs):
            with pytest.raises(ValueError, match=f"{name} attribute should not be set after DataLoader is initialized"):
                setattr(loader, name, None)
    theirs.num_workers = 0  # torch applies it to its next epoch; ringloader says it cannot, never ignores it
    with pytest.raises(rl.ConfigError, match="num_workers cannot be changed"):
        ours.num_workers = 0


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_multiprocessing_context_is_accepted(context):
    import warnings as w
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        loader = rl.DataLoader(list(range(12)), batch_size=4, num_workers=2, multiprocessing_context=context)
        assert sorted(int(i) for b in loader for i in b) == list(range(12))
    if context != "fork" and not rl._process.server_started:
        assert any("multiprocessing_context" in str(c.message) for c in caught)
    del loader


def test_an_index_drawn_twice_in_an_epoch_gets_other_draws():
    """Oversampling (replacement, DistributedSampler's padding) is there for other augmentations."""
    loader = rl.DataLoader(Draws(8), batch_size=4, sampler=[0, 0, 0, 1, 1, 1, 2, 2], num_workers=2)
    draws = draws_of(loader, epochs=1)
    assert len(draws) == 8 and len(set(draws)) == 8, draws


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_of_the_same_indices_draw_differently(workers):
    """batch_size=1 and a sampler with replacement: every batch is [0], and each must get other
    draws (as under torch), keyed by the batch's number in the epoch."""
    from torch.utils.data import WeightedRandomSampler
    for make in (rl.DataLoader, TorchLoader):
        loader = make(Draws(4), batch_size=1, sampler=WeightedRandomSampler([1, 0, 0, 0], 6), num_workers=workers)
        draws = draws_of(loader, epochs=1)
        assert len(draws) == 6 and len(set(draws)) == 6, (make.__module__, draws)
        del loader


def test_random_and_numpy_draw_their_own_streams():
    """torch seeds numpy apart from random; ringloader's per-batch seeding keeps them apart too."""
    for make in (rl.DataLoader, TorchLoader):
        draws = draws_of(make(Draws(16), batch_size=4, num_workers=2), epochs=1)
        assert all(d[0] != d[2] for d in draws), make.__module__


def test_seeds_a_worker_init_fn_sets_are_kept():
    """A worker_init_fn that seeds numpy itself owns the workers' streams, as under torch."""
    def init(worker_id):
        np.random.seed(1234)
    loader = rl.DataLoader(Draws(16), batch_size=4, num_workers=2, worker_init_fn=init)
    stream = set(np.random.RandomState(1234).rand(16).tolist())
    assert {d[2] for d in draws_of(loader, epochs=1)} <= stream
