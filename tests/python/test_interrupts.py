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
