"""ringloader from Python against torch.utils.data.DataLoader, side by side in one run.

    PYTHONPATH=build/python .venv/bin/python examples/python/bench_vs_torch.py ROOT [--workers 0,1,2] [--epochs 3]

On the same image folder, the same transform and batch size, shuffled, persistent workers:
images/s (median of --epochs epochs, after a warm-up) for
  ringloader   rl.ImageFolder decoded in C++ (TurboJPEG + libyuv) into the shared ring
  pil          torchvision.datasets.ImageFolder (PIL) + transforms.v2 on the PIL image + torch DataLoader
  tvio         torch DataLoader over torchvision.io.decode_jpeg + transforms.v2 on the uint8 tensor
               (Resize with antialias), as torchvision's documentation writes it today
for Resize(256)+CenterCrop(224) and RandomResizedCrop(224)+flip (uint8 output). Then the
Python cost of one ringloader batch (microseconds inside next() when the batch is ready, plus
deleting the previous one), and
a Python-defined dataset against the same __getitem__ work under torch's DataLoader: fill a
3x224x224 uint8 sample from a seeded NumPy generator. Prints a table and one JSON line each.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import PIL
import torch
import torchvision
from torchvision.transforms import v2

import ringloader as rl

BATCH = 64


# ---------------------------------------------------------------- the torch pipelines

def v2_steps(random_crop):
    """The transform, as transforms.v2 (PIL image or uint8 tensor in, either way)."""
    if random_crop:
        return [v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()]
    return [v2.Resize(256, antialias=True), v2.CenterCrop(224)]


class TvioFolder(torch.utils.data.Dataset):
    """Files read as bytes, decoded by torchvision.io (JPEG: decode_jpeg, else decode_image),
    then transforms.v2 on the uint8 tensor: the faster torch pipeline."""

    def __init__(self, root, random_crop):
        self.samples = torchvision.datasets.ImageFolder(root).samples
        self.transform = v2.Compose(v2_steps(random_crop))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        data = torchvision.io.read_file(path)
        if path.lower().endswith((".jpg", ".jpeg")):
            img = torchvision.io.decode_jpeg(data, mode=torchvision.io.ImageReadMode.RGB)
        else:
            img = torchvision.io.decode_image(data, mode=torchvision.io.ImageReadMode.RGB)
        return self.transform(img), label


def torch_loader(ds, workers):
    return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers,
                                       persistent_workers=workers > 0, generator=torch.Generator().manual_seed(1))


def pil_dataset(root, random_crop):
    return torchvision.datasets.ImageFolder(root, transform=v2.Compose(v2_steps(random_crop) + [v2.PILToTensor()]))


# ---------------------------------------------------------------- measuring

def images_per_second(loader, epochs):
    """Median images/s over `epochs` epochs, after one warm-up epoch (forks, page cache)."""
    for _ in loader:
        pass
    rates = []
    for _ in range(epochs):
        t0, n = time.perf_counter(), 0
        for batch in loader:
            n += len(batch[0])
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


class Noise(rl.Dataset):
    """The Python dataset of the last comparison: 3x224x224 uint8 from a seeded generator."""

    schema = {"x": ("uint8", (3, 224, 224)), "label": ("int64", ())}

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def get(self, index, out):
        rng = np.random.default_rng(index)
        out["x"][:] = np.frombuffer(rng.bytes(3 * 224 * 224), dtype=np.uint8).reshape(3, 224, 224)
        out["label"][...] = index % 10


class TorchNoise(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        x = np.frombuffer(rng.bytes(3 * 224 * 224), dtype=np.uint8).reshape(3, 224, 224)
        return torch.from_numpy(x.copy()), index % 10


class Empty(rl.Dataset):
    schema = {"x": ("uint8", (3, 64, 64)), "label": ("int64", ())}

    def __len__(self):
        return 64 * 400

    def get(self, index, out):
        out["label"][...] = index  # the least a get() writes (one that writes nothing is an error)


def python_cost_per_batch(busy):
    """Microseconds the training loop spends on one batch that is already filled: inside next()
    plus giving the previous batch back (deleting it). The loop "trains" 5 ms between batches,
    so the ring is always full when it asks. `busy`: the step computes, as a training step keeps
    its core; else it sleeps, and the batch is handed out by a core that was idle (caches cold,
    on a VM possibly descheduled). Returns (median, mean)."""
    loader = rl.DataLoader(Empty(), batch_size=BATCH, num_workers=2, persistent_workers=True, prefetch_factor=2)
    it = iter(loader)
    b = None
    for _ in range(20):
        b = next(it)
    times = []
    for _ in range(300):
        if busy:
            until = time.perf_counter() + 0.005
            while time.perf_counter() < until:
                pass
        else:
            time.sleep(0.005)
        t0 = time.perf_counter()
        del b
        b = next(it)
        times.append((time.perf_counter() - t0) * 1e6)
    del b, it, loader
    return statistics.median(times), statistics.mean(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="an image folder (e.g. ringloader-bench --make-dataset DIR)")
    ap.add_argument("--workers", default="0,1,2", help="worker counts, comma separated")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per configuration (median)")
    ap.add_argument("--noise-samples", type=int, default=2048)
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    rl.set_log_level("error")
    torch.set_num_threads(1)  # one core per worker process, as the loaders use them

    print(f"{len(torchvision.datasets.ImageFolder(args.root).samples)} images in {args.root}, batch {BATCH}, "
          f"images/s (median of {args.epochs} epochs); torch {torch.__version__}, torchvision "
          f"{torchvision.__version__}, Pillow {PIL.__version__}, numpy {np.__version__}, {os.cpu_count()} cores")
    for random_crop in (False, True):
        name = "RandomResizedCrop(224)+flip" if random_crop else "Resize(256)+CenterCrop(224)"
        print(f"\n{name}")
        print(f"  {'workers':>7} {'ringloader':>11} {'pil':>9} {'tvio':>9} {'rl/pil':>7} {'rl/tvio':>8}")
        for w in workers:
            rl_ds = rl.ImageFolder(args.root, size=224, random_crop=random_crop, flip=random_crop)
            ours = images_per_second(rl.DataLoader(rl_ds, batch_size=BATCH, shuffle=True, num_workers=w,
                                                   persistent_workers=True, seed=1), args.epochs)
            pil = images_per_second(torch_loader(pil_dataset(args.root, random_crop), w), args.epochs)
            tvio = images_per_second(torch_loader(TvioFolder(args.root, random_crop), w), args.epochs)
            print(f"  {w:>7} {ours:>11.0f} {pil:>9.0f} {tvio:>9.0f} {ours / pil:>6.2f}x {ours / tvio:>7.2f}x")
            print(json.dumps({"bench": "python_vs_torch", "transform": name, "workers": w, "ringloader_ips": ours,
                              "pil_ips": pil, "tvio_ips": tvio, "vs_pil": ours / pil, "vs_tvio": ours / tvio}))
    (cost, cost_mean), (cold, cold_mean) = python_cost_per_batch(True), python_cost_per_batch(False)
    print(f"\nPython cost per ready batch (next() + deleting the previous batch, batch {BATCH}, 2 fields, "
          f"300 batches): median {cost:.1f} us (mean {cost_mean:.1f}) when the loop computes between batches, "
          f"median {cold:.1f} us (mean {cold_mean:.1f}) when it sleeps")
    print(json.dumps({"bench": "python_cost", "us_per_batch": cost, "us_per_batch_mean": cost_mean,
                      "us_per_batch_after_sleep": cold, "us_per_batch_after_sleep_mean": cold_mean}))
    n = args.noise_samples
    print(f"\nPython dataset, 3x224x224 uint8 per sample from a seeded NumPy generator, {n} samples, 2 workers:")
    ours = images_per_second(rl.DataLoader(Noise(n), batch_size=BATCH, shuffle=True, num_workers=2,
                                           persistent_workers=True, seed=1), args.epochs)
    theirs = images_per_second(torch_loader(TorchNoise(n), 2), args.epochs)
    print(f"  ringloader {ours:.0f} samples/s   torch DataLoader {theirs:.0f} samples/s   ratio {ours / theirs:.2f}x")
    print(json.dumps({"bench": "python_dataset", "ringloader_sps": ours, "torch_sps": theirs, "ratio": ours / theirs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
