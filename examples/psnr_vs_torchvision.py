#!/usr/bin/python3
"""Pixel fidelity of ringloader's transforms against torchvision's own.

For each image in DUMP/manifest.tsv (written by ringloader-decode-dump), load the source
file the way torchvision's ImageFolder does (PIL, convert("RGB")), apply
transforms.Resize(256) + transforms.CenterCrop(224) (PIL bilinear, antialiased) or, for a
dump made with --transform rrc, torchvision's resized_crop with the box ringloader's
RandomResizedCrop drew (and hflip where it flipped), and compare with ringloader's dump.
Prints the mean, median and worst PSNR in dB over all pixels and channels (peak 255).

Run with Debian's python, which has torch/torchvision:
    ringloader-decode-dump --dir /tmp/ringloader-photos --out /tmp/rl-dump --limit 300
    /usr/bin/python3 examples/psnr_vs_torchvision.py /tmp/rl-dump
    ringloader-decode-dump --dir /tmp/ringloader-photos --out /tmp/rl-rrc --transform rrc
    /usr/bin/python3 examples/psnr_vs_torchvision.py /tmp/rl-rrc
"""
import argparse
import math
import statistics
import sys

import numpy as np
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as F


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump", help="folder written by ringloader-decode-dump")
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--crop", type=int, default=224)
    args = ap.parse_args()
    tv = transforms.Compose([transforms.Resize(args.resize), transforms.CenterCrop(args.crop)])
    scores = []
    what = f"Resize({args.resize}) + CenterCrop({args.crop})"
    with open(f"{args.dump}/manifest.tsv") as manifest:
        for line in manifest:
            src, dump, *crop = line.rstrip("\n").split("\t")
            with open(src, "rb") as f:
                img = Image.open(f).convert("RGB")
            if crop:  # RandomResizedCrop: the box and flip ringloader drew
                x, y, w, h, flip = map(int, crop)
                img = F.resized_crop(img, y, x, h, w, [args.crop, args.crop])
                ref = np.asarray(F.hflip(img) if flip else img)
                what = f"RandomResizedCrop({args.crop}) + flip"
            else:
                ref = np.asarray(tv(img))
            ours = np.asarray(Image.open(dump).convert("RGB"))
            if ours.shape != ref.shape:
                sys.exit(f"{src}: shape {ours.shape} != torchvision's {ref.shape}")
            scores.append((psnr(ours, ref), src))
    if not scores:
        sys.exit("empty manifest")
    values = [s for s, _ in scores]
    worst = min(scores)
    print(f"{len(values)} images, {what} vs torchvision (PIL bilinear, antialiased):")
    print(f"  mean PSNR {statistics.fmean(values):.2f} dB, median {statistics.median(values):.2f} dB, "
          f"worst {worst[0]:.2f} dB ({worst[1]})")


if __name__ == "__main__":
    main()
