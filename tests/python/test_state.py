"""state_dict() / load_state_dict() at the edges: a state from a loader that batches or orders
differently is refused naming what differs (it was accepted when only the batch count matched),
and a state saved again right after loading is the loaded position (it was "nothing done")."""
import pytest

import ringloader as rl


class Squares(rl.Dataset):
    schema = {"v": ("int64", ())}

    def __len__(self):
        return 100

    def get(self, index, out):
        out["v"][...] = index * index


def saved_after(loader, k):
    it = iter(loader)
    for _ in range(k):
        next(it)
    return loader.state_dict()


@pytest.mark.parametrize("made,change,named", [
    (dict(shuffle=True), dict(batch_size=11), "batch_size=10"),  # 100 / 10 and 100 / 11: 10 batches each
    (dict(shuffle=True), dict(shuffle=False), "shuffle=True"),
    (dict(shuffle=False), dict(sampler=rl.DistributedSampler(100, num_replicas=1, rank=0, shuffle=True)),
     "sampler=None"),
])
def test_a_state_from_a_loader_that_batches_differently_is_refused(made, change, named):
    made = dict(batch_size=10, seed=3, **made)
    state = saved_after(rl.DataLoader(Squares(), **made), 2)
    other = rl.DataLoader(Squares(), **{**made, **change})
    with pytest.raises(rl.ConfigError, match=named):
        other.load_state_dict(state)
        iter(other)  # the order is compared when the resumed epoch starts


def test_a_loader_that_batches_the_same_way_takes_the_state():
    """Another spelling of the same order is not refused: resuming it skips and repeats nothing."""
    state = saved_after(rl.DataLoader(Squares(), batch_size=10, seed=3), 2)
    same = rl.DataLoader(Squares(), batch_size=10, seed=3,
                         sampler=rl.DistributedSampler(100, num_replicas=1, rank=0, shuffle=False))
    same.load_state_dict(state)
    assert [int(v) for (b,) in same for v in b] == [i * i for i in range(20, 100)]


def test_the_native_check_catches_what_the_python_fields_do_not_name():
    state = saved_after(rl.DataLoader(Squares(), batch_size=10, shuffle=True, seed=3), 2)
    del state["batching"]  # a state written by the C++ API, or an older one
    other = rl.DataLoader(Squares(), batch_size=10, shuffle=False, seed=3)
    other.load_state_dict(state)
    with pytest.raises(rl.ConfigError, match="batched or ordered differently"):
        iter(other)  # the order is compared when the resumed epoch starts


@pytest.mark.parametrize("workers", [0, 2])
def test_a_state_saved_right_after_loading_is_the_loaded_position(workers):
    kw = dict(batch_size=10, shuffle=True, seed=3, num_workers=workers)
    whole = [int(v) for (b,) in rl.DataLoader(Squares(), **kw) for v in b]
    state = saved_after(rl.DataLoader(Squares(), **kw), 4)
    second = rl.DataLoader(Squares(), **kw)
    second.load_state_dict(state)
    again = second.state_dict()
    assert again == state
    third = rl.DataLoader(Squares(), **kw)
    third.load_state_dict(again)
    rest = [int(v) for (b,) in third for v in b]
    assert rest == whole[40:]


def test_close_with_a_live_iterator_stops_the_workers_and_says_so():
    import os
    import time
    loader = rl.DataLoader(Squares(), batch_size=10, num_workers=2, persistent_workers=True)
    it = iter(loader)
    held = next(it)
    pids = loader.worker_pids()
    assert len(pids) == 2
    loader.close()
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z" for p in pids):
        assert time.monotonic() < deadline, "workers outlived close()"
        time.sleep(0.01)
    assert held[0].tolist() == [i * i for i in range(10)]  # a batch still held stays valid
    for call in (lambda: next(it), lambda: len(loader), lambda: iter(loader), loader.state_dict):
        with pytest.raises(rl.ConfigError, match="was closed"):
            call()
    loader.close()  # idempotent


def test_a_torch_distributed_samplers_rank_is_in_the_state():
    import torch.utils.data as tud
    ds = Squares()

    def make(rank):
        return rl.DataLoader(ds, batch_size=5, sampler=tud.DistributedSampler(ds, num_replicas=2, rank=rank, seed=1))

    state = saved_after(make(1), 2)
    with pytest.raises(rl.ConfigError, match="rank 1's"):
        make(0).load_state_dict(state)
    make(1).load_state_dict(state)
