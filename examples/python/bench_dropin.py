"""The drop-in spellings of rl.ImageFolder against each other and against torch, side by side in
one run, on the same image folder (2 workers, batch 64, shuffled, persistent workers):

  keyword    rl.ImageFolder(root, size=224, random_crop=..., flip=..., output="float")
  compose    rl.ImageFolder(root, transforms.Compose([...ToTensor(), Normalize(...)])): recognised,
             the same native pipeline
  fallback   the same Compose with one op the pipeline does not have (a Lambda that returns its
             input): decoded with PIL and transformed by torchvision in ringloader's workers
  torch      torch.utils.data.DataLoader over torchvision.datasets.ImageFolder with that Compose

images/s, the median of --epochs epochs after a warm-up epoch, for RandomResizedCrop(224)+flip
and Resize(256)+CenterCrop(224). Rounds alternate the four, --rounds times; the ratios are of the
medians over rounds.

    PYTHONPATH=build/python .venv/bin/python examples/python/bench_dropin.py ROOT [--epochs 3] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import sys
import warnings

import torch
import torchvision
from torchvision import transforms as T

import ringloader as rl
from bench_vs_torch import images_per_second  # beside this script: median images/s after a warm-up epoch

BATCH, WORKERS = 64, 2
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def identity(x):
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rl.set_log_level("error")
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    print(f"{args.root}: {len(torchvision.datasets.ImageFolder(args.root).samples)} images, {WORKERS} workers, "
          f"batch {BATCH}, images/s (median of {args.epochs} epochs, {args.rounds} rounds); torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, {os.cpu_count()} cores")
    for random_crop in (True, False):
        geometry = ([T.RandomResizedCrop(224), T.RandomHorizontalFlip()] if random_crop
                    else [T.Resize(256), T.CenterCrop(224)])
        tail = [T.ToTensor(), T.Normalize(MEAN, STD)]
        compose = T.Compose(geometry + tail)
        other = T.Compose(geometry + [T.Lambda(identity)] + tail)
        make = {
            "keyword": lambda: rl.DataLoader(
                rl.ImageFolder(args.root, size=224, random_crop=random_crop, flip=random_crop, output="float"),
                batch_size=BATCH, shuffle=True, num_workers=WORKERS, persistent_workers=True),
            "compose": lambda: rl.DataLoader(rl.ImageFolder(args.root, compose), batch_size=BATCH, shuffle=True,
                                             num_workers=WORKERS, persistent_workers=True),
            "fallback": lambda: rl.DataLoader(rl.ImageFolder(args.root, other), batch_size=BATCH, shuffle=True,
                                              num_workers=WORKERS, persistent_workers=True),
            "torch": lambda: torch.utils.data.DataLoader(
                torchvision.datasets.ImageFolder(args.root, other), batch_size=BATCH, shuffle=True,
                num_workers=WORKERS, persistent_workers=True),
        }
        assert rl.ImageFolder(args.root, compose).native and not rl.ImageFolder(args.root, other).native
        rates = {k: [] for k in make}
        for _ in range(args.rounds):
            for k, f in make.items():
                loader = f()
                rates[k].append(images_per_second(loader, args.epochs))
                del loader
        med = {k: statistics.median(v) for k, v in rates.items()}
        name = "RandomResizedCrop(224)+flip" if random_crop else "Resize(256)+CenterCrop(224)"
        print(f"\n{name}, +ToTensor+Normalize")
        for k, v in rates.items():
            print(f"  {k:<9} {med[k]:>7.0f}   (rounds: {', '.join(f'{x:.0f}' for x in v)})")
        print(f"  compose/keyword {med['compose'] / med['keyword']:.3f}   fallback/torch {med['fallback'] / med['torch']:.3f}")
        print(json.dumps({"bench": "dropin", "transform": name, **{k + "_ips": v for k, v in med.items()},
                          "compose_vs_keyword": med["compose"] / med["keyword"],
                          "fallback_vs_torch": med["fallback"] / med["torch"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
