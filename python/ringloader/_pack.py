"""rl.pack: an image folder or file list into the packed shards rl.Shards reads (the writer of
ringloader-pack, in C++: datasets::ShardWriter)."""
from __future__ import annotations

import os
import sys

from . import _ringloader as _core
from ._errors import ConfigError

__all__ = ["pack"]


def _say(line):
    print(f"ringloader.pack: {os.fsdecode(line)}", file=sys.stderr)


def pack(source, dest, *, shard_size=256 << 20, max_short_side=0, quality=90, jobs=0, seed=0, order="shuffled",
         max_pixels=64 << 20, force=False, quiet=False) -> dict:
    """Pack ``source`` into WebDataset-compatible tar shards in the folder ``dest``, with an index
    per shard and a manifest, for :class:`rl.Shards` to read in place. What the
    ``ringloader-pack SOURCE DEST`` program does, with its options as keywords; the same options
    give the same bytes.

        rl.pack("/data/train", "/data/train-packed", max_short_side=256)
        train = rl.Shards("/data/train-packed", size=224, random_crop=True, flip=True)

    source: an image folder (ROOT/<class>/**/<image>, as rl.ImageFolder) or a file list
    (path<TAB>label lines, as rl.FileList). dest must not exist unless ``force=True``; it is
    written beside itself and renamed into place, so a failed or interrupted pack (Ctrl-C raises
    KeyboardInterrupt) leaves nothing.

    shard_size: about this many bytes per shard. max_short_side: images whose shorter side exceeds
    it are resized to it and re-encoded as JPEG at ``quality`` (0: every image stored as it is).
    jobs: threads (0: one per core). order: "shuffled" (once, with ``seed``, so shards mix the
    classes) or "source" (the folder's order). max_pixels: larger images are bad files. quiet:
    False prints the scan's skipped files and the files left out to stderr.

    Files that cannot be read or decoded are left out and listed in dest/bad_files.tsv. Returns
    ``{"images", "shards", "bytes", "reencoded", "bad_files", "seconds", "images_per_second"}``
    (ringloader-pack's summary), bad_files as a list of (path, reason). Raises ConfigError for a
    dest that exists (or is source, or holds it), bad options, or a source none of whose images
    could be packed; the GIL is released while it works.
    """
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise ConfigError(f"shard_size must be a positive number of bytes, got shard_size={shard_size!r}")
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer in 1..100, got quality={quality!r}")
    for name, value in (("max_short_side", max_short_side), ("jobs", jobs), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {name}={value!r}")
    r = _core.pack(os.fsencode(source), os.fsencode(dest), shard_size, max_short_side, quality, jobs, seed, order,
                   max_pixels, bool(force), None if quiet else _say)
    r["bad_files"] = [(os.fsdecode(p), why.decode(errors="replace")) for p, why in r["bad_files"]]
    if not quiet:
        for path, why in r["bad_files"]:
            _say(f"left out {path}: {why}")
    return r
