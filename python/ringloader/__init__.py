"""ringloader: a drop-in data loader for PyTorch training scripts.

Forked worker processes decode samples straight into a shared-memory ring of batch slots;
each batch reaches the training loop as zero-copy tensors, and its slot goes back to the ring
when the last of them is freed. Nothing is pickled, nothing is copied twice.

    import ringloader as rl
    train = rl.ImageFolder("/data/train", size=224, random_crop=True, flip=True)
    loader = rl.DataLoader(train, batch_size=256, shuffle=True, num_workers=8,
                           persistent_workers=True, seed=1)
    for epoch in range(90):
        loader.set_epoch(epoch)
        for images, labels in loader:      # uint8 N x 224 x 224 x 3, int64 N
            ...
"""
from __future__ import annotations

from . import vision
from ._errors import (BatchError, ConfigError, DecodeError, Error, FolderNotFoundError, Interrupted, IpcError,
                      ResourceError, SampleError, TimeoutError, WorkerError)
from ._pack import pack
from ._process import WorkerInfo, get_worker_info, init, set_log_level
from .batch import Batch
from .dataloader import DataLoader
from .datasets import Dataset, IterableDataset
from .samplers import BlockShuffleSampler, DistributedSampler
from .vision import FileList, ImageFolder, Shards

__all__ = [
    "init", "get_worker_info", "WorkerInfo", "Dataset", "IterableDataset", "ImageFolder", "FileList", "Shards", "pack",
    "DistributedSampler", "BlockShuffleSampler", "DataLoader", "Batch", "set_log_level", "vision",
    "Error", "ConfigError", "IpcError", "DecodeError", "SampleError", "WorkerError", "BatchError",
    "TimeoutError", "ResourceError", "Interrupted", "FolderNotFoundError",
]
