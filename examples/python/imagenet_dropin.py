"""The data path of an ImageNet training script written for torchvision and torch.utils.data
(the shape of pytorch/examples' imagenet/main.py), switched to ringloader by changing its
imports and two class names and nothing else:

    from torchvision import datasets            ->  import ringloader as rl
    datasets.ImageFolder(...)                    ->  rl.ImageFolder(...)
    torch.utils.data.DataLoader(...)             ->  rl.DataLoader(...)

The transforms below are torchvision's; ringloader recognises them and runs them in C++ in the
workers. CPU, one process:
    PYTHONPATH=build/python .venv/bin/python examples/python/imagenet_dropin.py DATA --steps 5 --seed 1
Two ranks with gloo (DATA holds train/ and val/ image folders):
    PYTHONPATH=build/python .venv/bin/python -m torch.distributed.run --nproc_per_node 2 \\
        examples/python/imagenet_dropin.py DATA --steps 5 --seed 1 --dist-backend gloo
"""
import argparse
import os
import random

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.utils.data
import torch.utils.data.distributed
import torchvision.models as models
import torchvision.transforms as transforms
from torch.utils.data import Subset

import ringloader as rl


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a folder with train/ and val/ image folders")
    p.add_argument("-a", "--arch", default="resnet18", help="a torchvision.models name")
    p.add_argument("-j", "--workers", default=2, type=int)
    p.add_argument("--epochs", default=1, type=int)
    p.add_argument("--steps", default=0, type=int, help="stop each epoch's training after this many steps (0: all)")
    p.add_argument("-b", "--batch-size", default=8, type=int)
    p.add_argument("--lr", default=0.1, type=float)
    p.add_argument("--crop", default=224, type=int, help="the training crop (224 in main.py)")
    p.add_argument("--seed", default=None, type=int)
    p.add_argument("--dist-backend", default="gloo")
    return p.parse_args()


def main():
    args = parse()
    if args.seed is not None:
        random.seed(args.seed)
        torch.manual_seed(args.seed)
        torch.use_deterministic_algorithms(True)
    args.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if args.distributed:
        dist.init_process_group(backend=args.dist_backend)
        args.rank, args.world_size = dist.get_rank(), dist.get_world_size()
    else:
        args.rank, args.world_size = 0, 1

    # -- data: torchvision's transforms, ringloader's dataset and loader
    traindir = os.path.join(args.data, "train")
    valdir = os.path.join(args.data, "val")
    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    train_dataset = rl.ImageFolder(traindir, transforms.Compose([
        transforms.RandomResizedCrop(args.crop),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        normalize,
    ]))
    val_dataset = rl.ImageFolder(valdir, transforms.Compose([
        transforms.Resize(args.crop * 8 // 7),
        transforms.CenterCrop(args.crop),
        transforms.ToTensor(),
        normalize,
    ]))
    if args.distributed:
        train_sampler = torch.utils.data.distributed.DistributedSampler(train_dataset)
        val_sampler = torch.utils.data.distributed.DistributedSampler(val_dataset, shuffle=False, drop_last=True)
    else:
        train_sampler = None
        val_sampler = None
    train_loader = rl.DataLoader(
        train_dataset, batch_size=args.batch_size, shuffle=(train_sampler is None),
        num_workers=args.workers, pin_memory=True, sampler=train_sampler)
    val_loader = rl.DataLoader(
        val_dataset, batch_size=args.batch_size, shuffle=False,
        num_workers=args.workers, pin_memory=True, sampler=val_sampler)

    # -- model
    model = models.__dict__[args.arch](num_classes=len(train_dataset.classes))
    if args.distributed:
        model = nn.parallel.DistributedDataParallel(model)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9, weight_decay=1e-4)

    for epoch in range(args.epochs):
        if args.distributed:
            train_sampler.set_epoch(epoch)
        train(train_loader, model, criterion, optimizer, epoch, args)
        acc1 = validate(val_loader, model, criterion, args)
        if args.rank == 0:
            print(f"epoch {epoch} val acc@1 {acc1:.3f}", flush=True)


def train(train_loader, model, criterion, optimizer, epoch, args):
    model.train()
    for i, (images, target) in enumerate(train_loader):
        output = model(images)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"rank {args.rank} epoch {epoch} step {i} loss {loss.item():.6f}", flush=True)
        if args.steps and i + 1 >= args.steps:
            break


def validate(val_loader, model, criterion, args):
    def run_validate(loader):
        correct, count = torch.zeros(()), torch.zeros(())
        with torch.no_grad():
            for images, target in loader:
                output = model(images)
                correct += (output.argmax(1) == target).sum()
                count += target.numel()
        return correct, count

    model.eval()
    correct, count = run_validate(val_loader)
    if args.distributed:
        stats = torch.stack([correct, count])
        dist.all_reduce(stats)
        correct, count = stats[0], stats[1]
    # The samples DistributedSampler(drop_last=True) left out: every rank runs them, as main.py does.
    if args.distributed and (len(val_loader.sampler) * args.world_size < len(val_loader.dataset)):
        aux_val_dataset = Subset(val_loader.dataset,
                                 range(len(val_loader.sampler) * args.world_size, len(val_loader.dataset)))
        aux_val_loader = rl.DataLoader(
            aux_val_dataset, batch_size=args.batch_size, shuffle=False,
            num_workers=args.workers, pin_memory=True)
        c, n = run_validate(aux_val_loader)
        correct, count = correct + c, count + n
        if args.rank == 0:
            print(f"aux val: {len(aux_val_dataset)} samples", flush=True)
    if args.rank == 0:
        print(f"val: {int(count)} samples", flush=True)
    return float(correct / count)


if __name__ == "__main__":
    main()
