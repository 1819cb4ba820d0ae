"""Fixtures for the Python package's tests: each test checks afterwards that it left no child
process and nothing in /dev/shm (STYLE: a test that forks or signals checks that)."""
import os
import random

import numpy as np
import pytest


def pytest_report_header(config):
    """Which PyTorch the suite runs against, on the first lines of its output."""
    import sys
    try:
        import torch
        import torchvision
        versions = f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    except ImportError:
        versions = "no torch"
    return f"ringloader tests: Python {sys.version.split()[0]} ({sys.executable}), {versions}, numpy {np.__version__}"


def own_children():
    me = os.getpid()
    kids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == me:
            kids.append(int(pid))
    return kids


def shm_entries():
    """What this process created in /dev/shm (the ring is nameless; a name would be a leak)."""
    return [e for e in os.listdir("/dev/shm") if e.startswith(f"ringloader-{os.getpid()}-")]


@pytest.fixture(autouse=True)
def leaves_nothing():
    before = set(shm_entries())
    yield
    import gc
    gc.collect()
    assert own_children() == [], "a worker outlived its loader"
    assert set(shm_entries()) - before == set(), "something was left in /dev/shm"


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """40 photo-like images (JPEG and PNG, odd sizes) in 4 classes."""
    from PIL import Image
    root = tmp_path_factory.mktemp("images") / "photos"
    rng = np.random.default_rng(7)
    for c in range(4):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(10):
            h, w = int(rng.integers(120, 300)), int(rng.integers(120, 300))
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full((h, w), 60 * c)], axis=-1)
            img = (img + rng.integers(0, 30, size=(h, w, 3))).clip(0, 255).astype(np.uint8)
            ext = "png" if i % 5 == 4 else "jpg"
            Image.fromarray(img).save(d / f"img_{i:02d}.{ext}")
    return str(root)


@pytest.fixture
def time_limit():
    """A case that hangs fails after 60 s instead of stalling the suite (pytestmark =
    pytest.mark.usefixtures("time_limit") in a module)."""
    import signal

    def expire(signum, frame):
        raise TimeoutError("this case took over 60 s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    """Real photographs (.photos/, fetched by `.ci/install-deps photos`, which `make test` runs)
    as JPEGs in 2 classes of 4."""
    from pathlib import Path
    from PIL import Image
    source = Path(__file__).resolve().parents[2] / ".photos"
    if not (source / ".complete").exists():
        pytest.fail(f"the real photographs are missing from {source}: run .ci/install-deps photos (make test does)")
    files = sorted(p for p in source.iterdir() if p.suffix in (".png", ".jpg"))
    assert len(files) == 8, files
    root = tmp_path_factory.mktemp("real") / "photos"
    for k, f in enumerate(files):
        d = root / ("a" if k % 2 == 0 else "b")
        d.mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("RGB").save(d / f"{f.stem}.jpg", quality=92)
    return str(root)


@pytest.fixture
def seeded():
    random.seed(0)
    return 0
