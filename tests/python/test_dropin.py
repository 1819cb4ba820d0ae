"""examples/python/imagenet_dropin.py: an ImageNet script's data path with only the imports and
two class names changed (torchvision's transforms, torch's DistributedSampler and Subset,
pin_memory=True on a machine without CUDA) trains: the same losses twice with --seed, and two
ranks with gloo over a validation set of odd size (the Subset tail main.py runs)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import ringloader as rl

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "imagenet_dropin.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from PIL import Image
    root = tmp_path_factory.mktemp("dropin")
    rng = np.random.default_rng(3)
    for split, per in (("train", [6, 6, 6, 6]), ("val", [2, 2, 2, 1])):  # 7 validation images
        for c, n in enumerate(per):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True)
            for i in range(n):
                h, w = int(rng.integers(80, 160)), int(rng.integers(80, 160))
                img = (rng.integers(0, 255, (h, w, 3)) // 4 + 50 * c).clip(0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"img_{i}.jpg")
    return str(root)


def run(args, timeout=240):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(rl.__file__)), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-W", "ignore"] + args, capture_output=True, text=True, timeout=timeout,
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def losses(text, rank=0):
    return [float(x) for x in re.findall(rf"rank {rank} epoch \d+ step \d+ loss ([0-9.]+)", text)]


def test_the_same_seed_gives_the_same_losses(data):
    common = [SCRIPT, data, "--steps", "3", "--crop", "64", "-b", "4", "-j", "2"]
    a, b = run(common + ["--seed", "1"]), run(common + ["--seed", "1"])
    assert len(losses(a)) == 3 and losses(a) == losses(b)
    assert "val: 7 samples" in a
    c = run(common + ["--seed", "2"])
    assert losses(c) != losses(a)


def test_two_ranks_with_gloo_and_the_subset_tail(data):
    out = run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", SCRIPT, data,
               "--steps", "2", "--seed", "1", "--crop", "64", "-b", "2", "-j", "1"], timeout=300)
    assert len(losses(out, 0)) == 2 and len(losses(out, 1)) == 2
    assert "aux val: 1 samples" in out and "val: 7 samples" in out  # 3 per rank, and the one left out
