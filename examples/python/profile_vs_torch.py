"""Where ringloader and torch's DataLoader spend their CPU per image, at 2 workers.

    PYTHONPATH=build/python .venv/bin/python examples/python/profile_vs_torch.py ROOT [--epochs 3] [--random-crop]

Runs each loader of examples/python/bench_vs_torch.py (ringloader, torch + PIL, torch +
torchvision.io; the same transform, batch 64, shuffled, persistent workers) under
`perf record -e cpu-clock` (software clock sampling: this works on VMs without hardware
counters; the workers are followed), then sorts every sample, main process and workers
together, into a stage by its library and symbol:

  read      the kernel's file-read and page-cache paths
  decode    libjpeg / libturbojpeg / libspng / libpng / zlib (any copy: Debian's, Pillow's, torchvision's)
  resize    libyuv; Pillow's resampler; torch's interpolation kernels; ringloader's transforms
  collate   torch's stack/cat/copy kernels; memcpy/memmove
  hand-off  moving a batch to the training loop: pickling, torch's shared-memory file
            descriptors and queues, futex/socket/scheduler work in the kernel, ringloader's ring
  memory    the kernel's page faults and page zeroing: fresh memory for images and batches
  python    the interpreter itself (libpython, the python binary)
  other     everything else (kernel memory management, libc, ...)

and prints CPU milliseconds per image for each stage (samples / frequency / images). Each
loader runs twice: a warm-up epoch alone (imports, forks, page cache) and the warm-up plus
--epochs epochs; the difference of the two profiles is the steady state, so start-up costs
(importing torch, forking) are left out. The figures are CPU time over both cores, not wall
time: a loader that keeps 2 cores busy at 1000 images/s spends 2 ms of CPU per image.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FREQ = 999
STAGES = ["read", "decode", "resize", "collate", "hand-off", "memory", "python", "other"]

# (stage, dso pattern, symbol pattern): the first rule that matches wins.
RULES = [
    ("decode", r"libjpeg|libturbojpeg|libspng|libpng|libz[.-]|libwebp|libsharpyuv", r""),
    ("decode", r"_imaging", r"(?i)jpeg|decode|png|zip|inflate"),
    ("decode", r"_ringloader|ringloader", r"(?i)decode|jpeg|png|spng|inflate"),
    ("resize", r"libyuv", r""),
    ("resize", r"_imaging", r"(?i)resample|resize|reduce|imaging(copy|crop|transpose|flip)|unpack|pack|convert"),
    ("resize", r"libtorch_cpu", r"(?i)upsample|interp|_aa|resize|resample|flip|crop|index"),
    ("resize", r"_ringloader|ringloader", r"(?i)resize|scale|crop|flip|transform|convert"),
    ("collate", r"libtorch_cpu", r"(?i)\bcat\b|cat_|stack|copy_|copy_kernel|memcpy"),
    ("collate", r"libc[.-]|libc\.so", r"(?i)memcpy|memmove"),
    ("hand-off", r"libtorch|libshm|libc10", r"(?i)shm|share|storage|pickle|reduce|ipc|fd"),
    ("hand-off", r"\[kernel", r"(?i)futex|sock|unix_|pipe|sched|schedule|switch_to|wake|poll|epoll|sem|shmem|mmap|munmap|tlb"),
    ("hand-off", r"_pickle|_posixshmem|_multiprocessing|select", r""),
    ("hand-off", r"_ringloader|ringloader", r""),
    ("read", r"\[kernel", r"(?i)filemap|copy_user|copy_to_user|ext4|vfs_read|page_cache|generic_file|rep_movs|xas_|readahead|open|path_|lookup|dentry|inode"),
    ("memory", r"\[kernel", r"(?i)page_fault|clear_page|alloc_pages|rmqueue|__pte|pte_|pmd|do_anonymous|handle_mm|lru|folio|zap_|free_pages|free_unref|release_pages|memcg|mem_cgroup"),
    ("python", r"python3|libpython", r""),
]


def stage_of(dso, sym):
    for stage, dpat, spat in RULES:
        if re.search(dpat, dso) and (not spat or re.search(spat, sym)):
            return stage
    return "other"


def run_one(args):
    """In the profiled child: one loader, a warm-up epoch, then --epochs epochs; prints the
    images of those epochs."""
    sys.path.insert(0, HERE)
    import bench_vs_torch as b
    import ringloader as rl
    import torch
    torch.set_num_threads(1)
    rl.set_log_level("error")
    if args.loader == "ringloader":
        ds = rl.ImageFolder(args.root, size=224, random_crop=args.random_crop, flip=args.random_crop)
        loader = rl.DataLoader(ds, batch_size=b.BATCH, shuffle=True, num_workers=args.workers,
                               persistent_workers=True, seed=1)
    elif args.loader == "pil":
        loader = b.torch_loader(b.pil_dataset(args.root, args.random_crop), args.workers)
    else:
        loader = b.torch_loader(b.TvioFolder(args.root, args.random_crop), args.workers)
    for batch in loader:
        pass
    n = 0
    for _ in range(args.epochs):
        for batch in loader:
            n += len(batch[0])
    print(f"IMAGES {n}")


def record(args, loader, epochs):
    """{(dso, sym): samples} of one run, and the images of its timed epochs."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(FREQ), "-o", data, "--",
               sys.executable, os.path.abspath(__file__), args.root, "--run", loader,
               "--epochs", str(epochs), "--workers", str(args.workers)]
        if args.random_crop:
            cmd.append("--random-crop")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        images = int(re.search(r"IMAGES (\d+)", out).group(1))
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                              "-F", "sample,dso,sym", "-q"], capture_output=True, text=True, check=True).stdout
    samples = {}
    for line in rep.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+)\s+\[.\]\s+(.*)$", line)
        if m:
            key = (m.group(2), m.group(3).strip())
            samples[key] = samples.get(key, 0) + int(m.group(1))
    return samples, images


def profile(args, loader):
    base, _ = record(args, loader, 0)
    full, images = record(args, loader, args.epochs)
    ms = dict.fromkeys(STAGES, 0.0)
    top = []
    for (dso, sym), n in full.items():
        n -= base.get((dso, sym), 0)
        stage = stage_of(dso, sym)
        ms[stage] += n / FREQ * 1000 / images
        top.append((n, stage, dso, sym))
    return images, ms, sorted(top, reverse=True)[:args.top]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--random-crop", action="store_true", help="RandomResizedCrop(224)+flip, else Resize(256)+CenterCrop(224)")
    ap.add_argument("--top", type=int, default=0, help="also list the N hottest symbols of each loader")
    ap.add_argument("--run", choices=["ringloader", "pil", "tvio"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        args.loader = args.run
        return run_one(args)
    name = "RandomResizedCrop(224)+flip" if args.random_crop else "Resize(256)+CenterCrop(224)"
    print(f"CPU ms per image by stage, {args.workers} workers, {name}, {args.epochs} epochs after a warm-up one")
    print(f"  {'loader':<11}" + "".join(f"{s:>9}" for s in STAGES) + f"{'total':>9}")
    for loader in ("ringloader", "pil", "tvio"):
        images, ms, top = profile(args, loader)
        print(f"  {loader:<11}" + "".join(f"{ms[s]:>9.2f}" for s in STAGES) + f"{sum(ms.values()):>9.2f}")
        for samples, stage, dso, sym in top:
            print(f"      {samples:>7} {stage:<9} {dso[:28]:<28} {sym[:70]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
