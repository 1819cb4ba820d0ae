"""Samplers computed in C++ from (seed, epoch): the loader runs them natively."""
from __future__ import annotations

from . import _ringloader as _core

__all__ = ["BlockShuffleSampler", "DistributedSampler"]


class _NativeSampler:
    """A sampler computed in C++ from (seed, epoch): the loader runs it natively."""

    _native: _core.Sampler
    seed = None
    epoch = None

    def __len__(self) -> int:
        return len(self._native)

    def set_epoch(self, epoch: int) -> None:
        """As in PyTorch: the loader then iterates this epoch (same as loader.set_epoch)."""
        self.epoch = epoch

    def __iter__(self):
        return iter(self._native.indices(self.seed or 0, self.epoch or 0))


class BlockShuffleSampler(_NativeSampler):
    """Near-sequential order for data larger than memory: shuffles the shards, then the samples
    within a window of `window` shards, from the loader's seed and epoch. With several ranks
    (rank and world size from torchrun, Open MPI or Slurm unless given) each rank takes whole
    shards; ranks are padded (or cut, drop_last) to the same length.

        ds = rl.Shards("/data/train-packed", random_crop=True, flip=True)
        loader = rl.DataLoader(ds, batch_size=256, num_workers=8, sampler=rl.BlockShuffleSampler(ds))"""

    def __init__(self, dataset_or_block_sizes, window=4, num_replicas=None, rank=None, seed=None, drop_last=False):
        sizes = dataset_or_block_sizes
        if hasattr(sizes, "shard_sizes"):
            sizes = sizes.shard_sizes
        self.rank, self.num_replicas, self.local_rank, self.launcher = _core.detect_distributed(rank, num_replicas)
        self.window, self.seed, self.drop_last = window, seed, drop_last
        self._native = _core.BlockShuffleSampler(list(sizes), window, seed, self.rank, self.num_replicas, drop_last)
        self.epoch = None


class DistributedSampler(_NativeSampler):
    """torch.utils.data.DistributedSampler's rule (padding by wrap-around, rank r takes
    positions r, r + world, ...). Rank and world size come from torchrun, Open MPI or Slurm
    variables unless given. The shuffle follows the loader's seed and epoch."""

    def __init__(self, dataset_or_size, num_replicas=None, rank=None, shuffle=True, seed=None, drop_last=False):
        n = dataset_or_size if isinstance(dataset_or_size, int) else len(dataset_or_size)
        self.rank, self.num_replicas, self.local_rank, self.launcher = _core.detect_distributed(rank, num_replicas)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self._native = _core.DistributedSampler(n, self.rank, self.num_replicas, shuffle, seed, drop_last)
        self.epoch = None


class _Primed:
    """A sampler (or batch sampler) of the user's own, iterated when torch's DataLoader iterates
    it: iter() as the epoch starts, before the epoch's seed is drawn (an __iter__ written as a
    generator function then runs its body at the first index, after the draw, as under torch)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self._it = None

    def prime(self):
        self._it = iter(self.sampler)

    def __iter__(self):
        it, self._it = self._it, None
        return it if it is not None else iter(self.sampler)

    def __len__(self):
        return len(self.sampler)

    def __getattr__(self, name):  # rank, num_replicas, batch_size, ...: the user's sampler's
        return getattr(self.__dict__["sampler"], name)
