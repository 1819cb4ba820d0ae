"""pin_memory=True where a CUDA device exists: the ring is registered once as page-locked
memory, batches come out pinned (no copy), and .cuda(non_blocking=True) gives the same bytes.
Skipped without a GPU (tests/python/test_loader.py checks the error there)."""
import pytest
import torch

import ringloader as rl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


class Ramp(rl.Dataset):
    schema = {"x": ("float32", (3, 32, 32)), "label": ("int64", ())}

    def __len__(self):
        return 64

    def get(self, index, out):
        out["x"][:] = float(index)
        out["label"][...] = index


def test_pinned_batches_copy_to_the_gpu_asynchronously():
    loader = rl.DataLoader(Ramp(), batch_size=16, num_workers=2, pin_memory=True, persistent_workers=True)
    base, size = loader.shared_memory()
    for _ in range(2):
        for x, y in loader:
            assert x.is_pinned() and y.is_pinned()  # the slot itself: registered, not copied
            assert base <= x.data_ptr() < base + size
            xg = x.cuda(non_blocking=True)
            yg = y.cuda(non_blocking=True)
            torch.cuda.synchronize()
            assert torch.equal(xg.cpu(), x) and torch.equal(yg.cpu(), y)
            assert torch.equal(xg[:, 0, 0, 0].long(), yg)
    loader.close()
