"""Packed shards against the image folder they came from, and against torch, side by side in one run.

    PYTHONPATH=build/python python3 examples/python/bench_shards.py ROOT --pack build/bin/ringloader-pack

Packs ROOT with `ringloader-pack --max-short-side 256 --shard-size 16M` (timed: images/s, median of --pack-runs;
bytes on disk), writes the packed (pre-resized) images back out as a folder for the torch
side, then measures images/s (median of --epochs epochs after a warm-up, shuffled, batch 64,
--workers workers) for RandomResizedCrop(224)+flip and Resize(256)+CenterCrop(224):
  folder     rl.ImageFolder over ROOT's original files
  whole      the same decoding whole images (decoder="fast-noroi": no region-of-interest decode)
  shards     rl.Shards over the packed dataset (exact shuffle)
  block      rl.Shards in rl.BlockShuffleSampler order (window 4)
  small      rl.ImageFolder over the pre-resized files
  pil, tvio  torch DataLoader + torchvision ImageFolder (PIL), and over torchvision.io, on the
             pre-resized files (examples/python/bench_vs_torch.py's pipelines)
Prints a table and one JSON line per transform.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import torch
import torchvision

import ringloader as rl
from bench_vs_torch import BATCH, TvioFolder, images_per_second, pil_dataset, torch_loader


def pack(args, out):
    """ringloader-pack ROOT OUT, timed; returns (images/s median, the summary of the last run)."""
    rates, summary = [], None
    for _ in range(args.pack_runs):
        t0 = time.perf_counter()
        r = subprocess.run([args.pack, args.root, out, "--max-short-side", str(args.max_short_side), "--shard-size",
                            args.shard_size, "--jobs",
                            str(max(args.workers, 1)), "--force", "-q"], capture_output=True, text=True)
        took = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"bench_shards: ringloader-pack failed ({r.returncode}): {r.stderr.strip()}")
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        rates.append(summary["images"] / took)
    return statistics.median(rates), summary


def unpack_to_folder(packed, folder):
    """The packed images as files: folder/<class>/<key>.<ext> (what torch's ImageFolder reads)."""
    with open(os.path.join(packed, "manifest.json")) as f:
        classes = json.load(f)["classes"]
    for c in classes:
        os.makedirs(os.path.join(folder, c), exist_ok=True)
    for name in sorted(os.listdir(packed)):
        if not name.endswith(".tar"):
            continue
        with tarfile.open(os.path.join(packed, name)) as t:
            members = {m.name: m for m in t.getmembers()}
            for m in members.values():
                key, ext = m.name.split(".", 1)
                if ext == "cls":
                    continue
                label = int(t.extractfile(members[key + ".cls"]).read())
                with open(os.path.join(folder, classes[label], m.name), "wb") as f:
                    f.write(t.extractfile(m).read())


def disk_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="an image folder (e.g. ringloader-bench --make-dataset DIR)")
    ap.add_argument("--pack", required=True, help="the ringloader-pack binary")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per loader (median)")
    ap.add_argument("--pack-runs", type=int, default=3, help="timed packs (median)")
    ap.add_argument("--max-short-side", type=int, default=256)
    ap.add_argument("--shard-size", default="16M", help="ringloader-pack --shard-size")
    ap.add_argument("--work-dir", help="where the packed and pre-resized copies go (default: a temporary folder)")
    args = ap.parse_args()
    rl.set_log_level("error")
    torch.set_num_threads(1)
    w, e = args.workers, args.epochs

    work = args.work_dir or tempfile.mkdtemp(prefix="ringloader-bench-shards-")
    try:
        packed, small = os.path.join(work, "packed"), os.path.join(work, "small")
        ips, summary = pack(args, packed)
        shutil.rmtree(small, ignore_errors=True)
        unpack_to_folder(packed, small)
        src, dst = disk_bytes(args.root), disk_bytes(packed)
        print(f"pack: {summary['images']} images, {summary['reencoded']} re-encoded at --max-short-side "
              f"{args.max_short_side}, {summary['shards']} shard(s); {ips:.0f} images/s with --jobs {max(w, 1)} "
              f"(median of {args.pack_runs}); {src / 1e6:.1f} MB of originals -> {dst / 1e6:.1f} MB on disk "
              f"({dst / src:.2f}x)")
        print(json.dumps({"bench": "pack", "images": summary["images"], "images_per_s": ips, "source_bytes": src,
                          "packed_bytes": dst, "jobs": max(w, 1)}))

        print(f"\n{w} workers, batch {BATCH}, images/s (median of {e} epochs); torch {torch.__version__}, "
              f"torchvision {torchvision.__version__}, {os.cpu_count()} cores")
        cols = ("folder", "whole", "shards", "block", "small", "pil", "tvio")
        print(f"  {'transform':<28} " + " ".join(f"{c:>7}" for c in cols) +
              f" {'shards/folder':>13} {'/whole':>6} {'/pil':>6} {'/tvio':>6}")
        for random_crop in (True, False):
            name = "RandomResizedCrop(224)+flip" if random_crop else "Resize(256)+CenterCrop(224)"
            kw = dict(size=224, random_crop=random_crop, flip=random_crop)

            def ours(ds, sampler=None):
                return images_per_second(rl.DataLoader(ds, batch_size=BATCH, shuffle=sampler is None, sampler=sampler,
                                                       num_workers=w, persistent_workers=True, seed=1), e)

            shards_ds = rl.Shards(packed, **kw)
            r = {
                "folder": ours(rl.ImageFolder(args.root, **kw)),
                "whole": ours(rl.ImageFolder(args.root, decoder="fast-noroi", **kw)),
                "shards": ours(shards_ds),
                "block": ours(shards_ds, rl.BlockShuffleSampler(shards_ds, window=4)),
                "small": ours(rl.ImageFolder(small, **kw)),
                "pil": images_per_second(torch_loader(pil_dataset(small, random_crop), w), e),
                "tvio": images_per_second(torch_loader(TvioFolder(small, random_crop), w), e),
            }
            ratios = {"shards_vs_folder": r["shards"] / r["folder"], "shards_vs_whole": r["shards"] / r["whole"],
                      "shards_vs_pil": r["shards"] / r["pil"], "shards_vs_tvio": r["shards"] / r["tvio"]}
            print(f"  {name:<28} " + " ".join(f"{r[k]:>7.0f}" for k in cols)
                  + f" {ratios['shards_vs_folder']:>12.2f}x {ratios['shards_vs_whole']:>5.2f}x"
                  + f" {ratios['shards_vs_pil']:>5.2f}x {ratios['shards_vs_tvio']:>5.2f}x")
            print(json.dumps({"bench": "shards", "transform": name, "workers": w, **{k + "_ips": v for k, v in r.items()},
                              **ratios}))
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
