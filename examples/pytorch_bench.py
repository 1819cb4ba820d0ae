#!/usr/bin/env python3
"""PyTorch's side of `ringloader-bench --vs-pytorch`: torchvision's ImageFolder and torch's
DataLoader over the same files, with the transform ringloader-bench uses, the same worker
count and batch size, shuffled, persistent workers, the same warm-up and repeats.

    .venv/bin/python examples/pytorch_bench.py ROOT --workers 2 --batch-size 64 --output uint8

The transform is written as torchvision's documentation writes it today: `transforms.v2` on the
PIL images torchvision's ImageFolder loads. Prints one JSON line: {"median_ips": ...,
"min_ips": ..., "max_ips": ..., ...}. Needs torch and torchvision (the repository's .venv/, or
`pip install ringloader[torch]`); exits 3 when they are missing.
"""
import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--output", choices=["uint8", "float"], default="uint8")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--random-crop", action="store_true", help="RandomResizedCrop(size) instead of Resize + CenterCrop")
    ap.add_argument("--flip", action="store_true", help="+ RandomHorizontalFlip()")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup-batches", type=int, default=4)
    ap.add_argument("--indices", help="file of dataset indices to use, one a line (default: all)")
    args = ap.parse_args()
    try:
        import torch
        import torchvision
        from torchvision.transforms import v2
    except ImportError as e:
        print(f"pytorch_bench.py: {e}: install with `pip install ringloader[torch]`", file=sys.stderr)
        return 3

    if args.random_crop:
        steps = [v2.RandomResizedCrop(args.size, antialias=True)]
    else:
        steps = [v2.Resize(args.size * 8 // 7, antialias=True), v2.CenterCrop(args.size)]
    if args.flip:
        steps.append(v2.RandomHorizontalFlip())
    if args.output == "uint8":
        steps.append(v2.PILToTensor())  # uint8 CHW, no normalisation: ringloader's uint8 output
    else:
        steps += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                  v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    dataset = torchvision.datasets.ImageFolder(args.root, transform=v2.Compose(steps))
    if args.indices:
        with open(args.indices) as f:
            dataset = torch.utils.data.Subset(dataset, [int(line) for line in f if line.strip()])
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(1),
    )
    for k, _ in enumerate(loader):  # warm-up: fork, imports in the workers, page cache
        if k + 1 >= args.warmup_batches:
            break
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        n = 0
        for images, _labels in loader:
            n += images.shape[0]
        rates.append(n / (time.perf_counter() - t0))
    print(json.dumps({
        "bench": "pytorch", "workers": args.workers, "batch": args.batch_size, "output": args.output,
        "images": n, "median_ips": statistics.median(rates), "min_ips": min(rates), "max_ips": max(rates),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
