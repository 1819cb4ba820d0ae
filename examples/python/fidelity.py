"""How close rl.ImageFolder's native pixels come to torchvision's, per op and decoder, on real
photographs: PSNR (dB, uint8) of the same transform run both ways over the same JPEGs.

    python examples/python/fidelity.py [--photos .photos]

.photos/ holds 8 photographs from Debian's scikit-image and matplotlib data packages
(`.ci/install-deps photos` fetches them); they are saved as JPEGs (quality 92) first.
"""
import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

import ringloader as rl

OPS = [
    ([T.Resize(256), T.CenterCrop(224)], "Resize(256)+CenterCrop(224)"),
    ([T.Resize((224, 320))], "Resize((224, 320))"),
    ([T.CenterCrop(224)], "CenterCrop(224)"),
    ([T.RandomResizedCrop(224, scale=(1.0, 1.0), ratio=(1.0, 1.0))], "RandomResizedCrop(224), whole image"),
    ([T.Resize(40), T.CenterCrop(32)], "Resize(40)+CenterCrop(32)"),
]


def psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default=str(Path(__file__).resolve().parents[2] / ".photos"))
    ap.add_argument("--decoders", default="fast,turbojpeg")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp()) / "photos"
    files = sorted(p for p in Path(args.photos).iterdir() if p.suffix in (".png", ".jpg"))
    for k, f in enumerate(files):
        d = root / ("a" if k % 2 == 0 else "b")
        d.mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("RGB").save(d / f"{f.stem}.jpg", quality=92)
    decoders = args.decoders.split(",")
    print(f"{len(files)} photographs; PSNR against torchvision in dB (all photos / the worst one)")
    print(f"{'op':40s}" + "".join(f"{d:>22s}" for d in decoders))
    for ops, name in OPS:
        tf = T.Compose(ops + [T.PILToTensor()])
        theirs = torch.cat([x for x, _ in torch.utils.data.DataLoader(
            torchvision.datasets.ImageFolder(str(root), tf), batch_size=8)])
        cells = []
        for decoder in decoders:
            ds = rl.ImageFolder(str(root), tf, decoder=decoder)
            ours = torch.cat([x for x, _ in rl.DataLoader(ds, batch_size=8)])
            worst = min(psnr(ours[i].numpy(), theirs[i].numpy()) for i in range(len(ours)))
            cells.append(f"{psnr(ours.numpy(), theirs.numpy()):.1f} / {worst:.1f}")
        print(f"{name:40s}" + "".join(f"{c:>22s}" for c in cells))


if __name__ == "__main__":
    main()
