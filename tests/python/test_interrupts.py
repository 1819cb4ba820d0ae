"""Ctrl-C and sys.exit() raised inside a Python dataset run by the training process itself
(num_workers=0) reach the loop as themselves, as under torch's DataLoader; they were taken for
a bad sample (skipped, or a SampleError). The interrupted batch is filled again, whole."""
import pytest

import ringloader as rl


class Interrupting(rl.Dataset):
    schema = {"v": ("int64", ())}

    def __init__(self, exc, at=13):
        self.exc, self.at, self.raised = exc, at, False

    def __len__(self):
        return 40

    def get(self, index, out):
        if index == self.at and not self.raised:
            self.raised = True
            raise self.exc
        out["v"][...] = index


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit(3)], ids=["KeyboardInterrupt", "SystemExit"])
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_ctrl_c_in_an_in_process_dataset_propagates_and_loses_nothing(exc, on_error):
    loader = rl.DataLoader(Interrupting(exc), batch_size=5, on_error=on_error)
    it = iter(loader)
    seen = []
    with pytest.raises(type(exc) if isinstance(exc, BaseException) else exc):
        for (v,) in it:
            seen += v.tolist()
    assert seen == list(range(10))  # the two batches before the one interrupted
    for (v,) in it:  # the same epoch goes on: the interrupted batch comes whole
        seen += v.tolist()
    assert seen == list(range(40)) and loader.skipped == []


# ---- a Ctrl-C between the native hand-out and the batch object reaching the loop

import json  # noqa: E402
import signal  # noqa: E402


class Numbers(rl.Dataset):
    schema = {"v": ("int64", ())}

    def __len__(self):
        return 40

    def get(self, index, out):
        out["v"][...] = index


def _done(loader):
    """Batches the loader's state counts as delivered in this epoch."""
    return sum(b - a + 1 for a, b in json.loads(loader.state_dict()["ringloader_state"])["done"])


def _values(batch):
    return (batch if isinstance(batch, rl.Batch) else (batch,))[0].tolist()


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("at", [0, 3], ids=["first-batch", "later-batch"])
def test_ctrl_c_while_the_batch_is_built_keeps_it_for_the_next_call_and_out_of_the_state(monkeypatch, workers, copy, at):
    # The interrupt lands in Batch.__new__, the Python code that runs after the native loader
    # handed the batch out (a signal handler raises there). That batch was lost, yet the state
    # counted it: a checkpoint saved in `except KeyboardInterrupt:` skipped it on resume.
    calls = [0]
    real_new = rl.Batch.__new__

    def interrupted_new(cls, *args):
        calls[0] += 1
        if calls[0] == at + 1:
            raise KeyboardInterrupt
        return real_new(cls, *args)

    monkeypatch.setattr(rl.Batch, "__new__", interrupted_new)
    loader = rl.DataLoader(Numbers(), batch_size=4, shuffle=True, seed=1, num_workers=workers, copy=copy)
    it = iter(loader)
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for b in it:
            seen.append(_values(b))
    assert len(seen) == at and _done(loader) == at  # the interrupted batch is not counted
    saved = loader.state_dict()
    monkeypatch.setattr(rl.Batch, "__new__", real_new)

    resumed = rl.DataLoader(Numbers(), batch_size=4, shuffle=True, seed=1, num_workers=workers, copy=copy)
    resumed.load_state_dict(saved)
    rest = [_values(b) for b in resumed]
    assert sorted(sum(seen + rest, [])) == list(range(40))  # the checkpoint resumes with it

    for b in it:  # and the same iterator goes on with it
        seen.append(_values(b))
    assert seen == [_values(b) for b in rl.DataLoader(Numbers(), batch_size=4, shuffle=True, seed=1)]


def test_ctrl_c_storm_over_an_epoch_loses_and_repeats_nothing():
    # SIGALRM every 300 us raising KeyboardInterrupt wherever the loop happens to be: inside
    # the wait, the hand-out, the building of the batch. After each one the state counts exactly
    # the batches the loop received, and the epoch goes on without a gap or a repeat.
    armed = [False]
    interrupts = [0]

    def handler(signum, frame):
        if armed[0]:
            armed[0] = False
            interrupts[0] += 1
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        for workers in (0, 2):
            loader = rl.DataLoader(Numbers(), batch_size=1, shuffle=True, seed=2, num_workers=workers)
            for _ in range(3):  # epochs
                it = iter(loader)
                got, values = [], []
                signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
                while True:
                    try:
                        armed[0] = True
                        for b in it:
                            got.append(b)
                            armed[0] = False  # what a batch holds is read with the signal off
                            values += [_values(x)[0] for x in got]
                            got.clear()
                            armed[0] = True
                        armed[0] = False
                        break
                    except KeyboardInterrupt:
                        assert _done(loader) == len(values) + len(got)
                        values += [_values(x)[0] for x in got]
                        got.clear()
                signal.setitimer(signal.ITIMER_REAL, 0, 0)
                armed[0] = False
                assert sorted(values) == list(range(40))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert interrupts[0] >= 20
