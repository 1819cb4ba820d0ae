"""A few training steps of a small CNN on an image folder, fed by ringloader: what switching a
PyTorch script looks like (the loader lines are the only ringloader ones).

    PYTHONPATH=build/python python3 examples/python/train.py demo-data --steps 20
"""
import argparse
import time

import torch
import torch.nn as nn

import ringloader as rl


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="an image folder: ROOT/<class>/<image>")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps in all (0: run every epoch)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size", type=int, default=64, help="RandomResizedCrop size")
    args = p.parse_args()

    torch.manual_seed(0)
    train = rl.ImageFolder(args.root, size=args.size, random_crop=True, flip=True, output="float")
    loader = rl.DataLoader(train, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                           persistent_workers=True, seed=1, drop_last=True)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, len(train.classes)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    print(f"{len(train)} images, {len(train.classes)} classes, {len(loader)} batches per epoch")
    step, t0 = 0, time.monotonic()
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        for images, labels in loader:  # float32 N x 3 x size x size, int64 N: views of shared memory
            loss = nn.functional.cross_entropy(model(images), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 5 == 0:
                print(f"epoch {epoch} step {step} loss {loss.item():.3f}")
            if args.steps and step >= args.steps:
                break
        if args.steps and step >= args.steps:
            break
    print(f"{step} steps in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
