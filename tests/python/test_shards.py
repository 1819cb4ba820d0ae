"""rl.Shards and rl.BlockShuffleSampler: packed datasets read from Python."""
import io
import json
import os
import subprocess
import tarfile

import numpy as np
import pytest

import ringloader as rl


def webdataset_tar(folder, out, start=0):
    """A tar as the webdataset library writes it (KEY.jpg + KEY.cls), made with Python's tarfile."""
    items = []
    for ci, c in enumerate(sorted(os.listdir(folder))):
        for f in sorted(os.listdir(os.path.join(folder, c))):
            items.append((os.path.join(folder, c, f), ci))
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        for k, (path, label) in enumerate(items):
            key = f"s{start + k:05d}"
            t.add(path, arcname=f"{key}.{path.rsplit('.', 1)[1]}")
            data = str(label).encode()
            info = tarfile.TarInfo(f"{key}.cls")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return items


def by_path(folder_ds):
    return {p: i for i, (p, _) in enumerate(folder_ds.samples)}


def test_a_webdataset_tar_reads_as_the_folder(image_folder, tmp_path):
    tar = tmp_path / "train.tar"
    items = webdataset_tar(image_folder, tar)
    ds = rl.Shards(tar, size=64)
    folder = rl.ImageFolder(image_folder, size=64)
    assert len(ds) == len(items) == len(folder)
    assert ds.targets == [label for _, label in items]
    assert ds.shard_sizes == [len(items)]
    a = np.concatenate([x.numpy() for x, _ in rl.DataLoader(ds, batch_size=16, num_workers=2)])
    b = np.concatenate([x.numpy() for x, _ in rl.DataLoader(folder, batch_size=16, num_workers=2)])
    assert a.shape == (len(items), 64, 64, 3)
    assert np.array_equal(a, b)  # same files, same order (sorted class then name), same pixels
    ahead = rl.Shards(tar, size=64, reader_threads=3)  # bytes fetched ahead by threads: the same pixels
    c = np.concatenate([x.numpy() for x, _ in rl.DataLoader(ahead, batch_size=16, num_workers=2)])
    assert np.array_equal(a, c)
    assert ahead.classes == [str(c) for c in range(4)]  # a foreign tar's classes are its labels


@pytest.mark.skipif("RINGLOADER_PACK" not in os.environ, reason="needs the ringloader-pack binary")
def test_packed_folder_round_trip_with_block_order(image_folder, tmp_path):
    out = tmp_path / "packed"
    r = subprocess.run([os.environ["RINGLOADER_PACK"], image_folder, str(out), "--shard-size", "60000", "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ds = rl.Shards(out, size=48, random_crop=True, flip=True)
    folder = rl.ImageFolder(image_folder, size=48)
    assert ds.classes == folder.classes
    assert len(ds.shard_sizes) > 2 and sum(ds.shard_sizes) == len(folder)
    # every source file once, with its label (the source name is in each sample's path)
    names = sorted((p.split("(")[1].rstrip(")"), label) for p, label in ds.samples)
    want = sorted((os.path.relpath(p, image_folder), label) for p, label in folder.samples)
    assert names == want
    sampler = rl.BlockShuffleSampler(ds, window=2)
    loader = rl.DataLoader(ds, batch_size=7, num_workers=2, sampler=sampler)
    orders = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        seen = [int(i) for b in loader for i in b.indices]
        assert sorted(seen) == list(range(len(ds)))
        orders.append(seen)
    assert orders[0] != orders[1]


def _files(folder):
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder))}


def test_pack_reads_back_as_the_folder(image_folder, tmp_path):
    out = tmp_path / "packed"
    r = rl.pack(image_folder, out, shard_size=60000, order="source", jobs=2, quiet=True)
    folder = rl.ImageFolder(image_folder, size=48)
    ds = rl.Shards(out, size=48)
    assert r["images"] == len(folder) == len(ds) and r["bad_files"] == [] and r["reencoded"] == 0
    assert r["shards"] == len(ds.shard_sizes) > 2
    assert ds.classes == folder.classes
    assert ds.targets == folder.targets
    # order="source": sample i is the folder's sample i (its source name is in the sample's path)
    names = [p.split("(")[1].rstrip(")") for p, _ in ds.samples]
    assert names == [os.path.relpath(p, image_folder) for p, _ in folder.samples]
    a = np.concatenate([x.numpy() for x, _ in rl.DataLoader(ds, batch_size=16)])
    b = np.concatenate([x.numpy() for x, _ in rl.DataLoader(folder, batch_size=16)])
    assert np.array_equal(a, b)  # the same bytes stored: the same pixels
    with pytest.raises(rl.ConfigError, match="exists"):
        rl.pack(image_folder, out, quiet=True)
    with pytest.raises(rl.ConfigError, match="order"):
        rl.pack(image_folder, tmp_path / "other", order="sorted")
    assert sorted(os.listdir(tmp_path)) == ["packed"]  # nothing left beside it


@pytest.mark.skipif("RINGLOADER_PACK" not in os.environ, reason="needs the ringloader-pack binary")
def test_pack_writes_the_bytes_the_cli_writes(image_folder, tmp_path):
    r = subprocess.run([os.environ["RINGLOADER_PACK"], image_folder, str(tmp_path / "cli"), "--shard-size", "60000",
                        "--max-short-side", "100", "--quality", "85", "--seed", "4", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = rl.pack(image_folder, tmp_path / "py", shard_size=60000, max_short_side=100, quality=85, seed=4, quiet=True)
    assert got["reencoded"] > 0
    assert _files(tmp_path / "py") == _files(tmp_path / "cli")
    summary = json.loads(r.stdout)
    assert {k: got[k] for k in ("images", "shards", "bytes", "reencoded")} == \
        {k: summary[k] for k in ("images", "shards", "bytes", "reencoded")}


def test_block_sampler_ranks_take_whole_shards_and_cover_everything():
    sizes = [5, 3, 8, 4, 6, 2]
    starts = np.cumsum([0] + sizes)
    shard_of = {i: s for s in range(len(sizes)) for i in range(starts[s], starts[s + 1])}
    taken = []
    lengths = set()
    for rank in range(3):
        s = rl.BlockShuffleSampler(sizes, window=2, rank=rank, num_replicas=3, seed=5)
        idx = list(s)
        lengths.add(len(idx))
        assert len(s) == len(idx)
        taken.append({shard_of[i] for i in idx})
    assert len(lengths) == 1  # padded to the same length on every rank
    assert set().union(*taken) == set(range(len(sizes)))
    assert sum(len(t) for t in taken) == len(sizes)  # a shard goes to one rank only


def test_a_damaged_shard_is_an_error_naming_it(image_folder, tmp_path):
    tar = tmp_path / "bad.tar"
    webdataset_tar(image_folder, tar)
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(rl.DecodeError) as e:
        rl.Shards(tar)
    assert "bad.tar" in str(e.value)
