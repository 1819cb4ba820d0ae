"""rl.ImageFolder with torchvision's signature: the same attributes and items as
torchvision.datasets.ImageFolder, a torchvision transform run natively when the pipeline has
every op (with torchvision's layout, dtype and close pixels), and torchvision's own way, with one
warning naming the op, when it does not."""
import math
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import ConcatDataset, DataLoader as TorchLoader, Subset, random_split
from torchvision import transforms as T
from torchvision.transforms import v2

import ringloader as rl

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def psnr(a, b, peak):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def torch_batches(ds, **kw):
    return list(TorchLoader(ds, batch_size=8, **kw))


def test_the_attributes_and_items_are_torchvisions(image_folder):
    tf = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor()])
    ours, theirs = rl.ImageFolder(image_folder, tf), torchvision.datasets.ImageFolder(image_folder, tf)
    assert ours.classes == theirs.classes and ours.class_to_idx == theirs.class_to_idx
    assert ours.samples == theirs.samples and ours.imgs == theirs.imgs and ours.targets == theirs.targets
    assert len(ours) == len(theirs) and ours.transform is tf and ours.target_transform is None
    for i in (0, 7, len(ours) - 1, -1):
        a, b = ours[i], theirs[i]
        assert a[1] == b[1] and torch.equal(a[0], b[0])
    with pytest.raises(IndexError):
        ours[len(ours)]
    plain = rl.ImageFolder(image_folder)  # no transform: PIL images, as torchvision's
    assert type(plain[0][0]) is type(theirs.loader(theirs.samples[0][0]))
    assert not plain.native


def test_is_valid_file_chooses_the_files_as_torchvisions(image_folder, tmp_path):
    import os
    import shutil
    root = tmp_path / "folder"
    shutil.copytree(image_folder, root)
    (root / os.listdir(root)[0] / "notes.txt").write_text("not an image")  # no image extension
    seen = []

    def odd(path):
        seen.append(path)
        return path.endswith(".txt") or int("".join(c for c in os.path.basename(path) if c.isdigit()) or 0) % 2 == 1
    tf = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor()])
    ours, theirs = rl.ImageFolder(root, tf, is_valid_file=odd), torchvision.datasets.ImageFolder(root, tf, is_valid_file=odd)
    assert ours.samples == theirs.samples and 0 < len(ours) < len(rl.ImageFolder(root))
    assert any(p.endswith("notes.txt") for p, _ in ours.samples)  # extensions are not checked then
    assert ours.extensions is None and len(seen) == 2 * len(set(seen))  # every file asked once by each
    with pytest.raises(ValueError, match="is_valid_file"):  # torchvision raises FileNotFoundError here
        rl.ImageFolder(root, tf, is_valid_file=lambda p: False)
    assert len(rl.ImageFolder(root, tf, is_valid_file=lambda p: False, allow_empty=True)) == 0
    with pytest.raises(ZeroDivisionError):  # the predicate's own error, as torchvision
        rl.ImageFolder(root, tf, is_valid_file=lambda p: 1 / 0)


def test_broken_links_and_missing_folders_as_torchvisions(image_folder, tmp_path):
    import os
    import shutil
    root = tmp_path / "folder"
    shutil.copytree(image_folder, root)
    first = sorted(os.listdir(root))[0]
    os.symlink(tmp_path / "nowhere.jpg", root / first / "img_05b.jpg")  # broken: listed by os.walk
    tf = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor()])
    ours, theirs = rl.ImageFolder(root, tf), torchvision.datasets.ImageFolder(root, tf)
    assert ours.samples == theirs.samples  # the same indices for every other file
    broken = [i for i, (p, _) in enumerate(ours.samples) if p.endswith("img_05b.jpg")]
    assert len(broken) == 1
    loader = rl.DataLoader(ours, batch_size=4, on_error="skip")
    assert sum(len(y) for _, y in loader) == len(ours) - 1
    assert [s[0] for s in loader.skipped] == broken
    (root / "empty").mkdir()
    for make in (rl.ImageFolder, torchvision.datasets.ImageFolder):
        with pytest.raises(FileNotFoundError):
            make(root)  # a class without an image
        with pytest.raises(FileNotFoundError):
            make(tmp_path / "missing")
    with pytest.raises(ValueError):  # also a ConfigError
        rl.ImageFolder(root)


def test_subset_random_split_concat_and_torchs_own_loader_take_it(image_folder):
    tf = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor()])
    ds = rl.ImageFolder(image_folder, tf)
    sub = Subset(ds, range(0, 40, 3))
    assert len(sub) == 14 and torch.equal(sub[2][0], ds[6][0])
    a, b = random_split(ds, [30, 10], generator=torch.Generator().manual_seed(0))
    assert len(a) == 30 and len(b) == 10
    assert len(ConcatDataset([ds, ds])) == 80
    got = torch_batches(ds)
    assert len(got) == 5 and got[0][0].shape == (8, 3, 32, 32) and got[0][1].dtype == torch.int64
    ours = list(rl.DataLoader(sub, batch_size=8, num_workers=2))  # a Subset runs as a torch dataset
    assert sum(len(y) for _, y in ours) == 14


V1_TRAIN = T.Compose([T.RandomResizedCrop(32), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
V1_VAL = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])
V2_TRAIN = v2.Compose([v2.ToImage(), v2.RandomResizedCrop(32, antialias=True), v2.RandomHorizontalFlip(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


@pytest.mark.parametrize("tf, shape, dtype", [
    (V1_TRAIN, (3, 32, 32), torch.float32),
    (V1_VAL, (3, 32, 32), torch.float32),
    (V2_TRAIN, (3, 32, 32), torch.float32),
    (T.Compose([T.Resize((24, 40)), T.PILToTensor()]), (3, 24, 40), torch.uint8),
    (v2.Compose([v2.ToImage(), v2.CenterCrop(30), v2.ToDtype(torch.float32, scale=False)]), (3, 30, 30), torch.float32),
    (T.Compose([T.RandomResizedCrop((20, 36), scale=(0.5, 0.9), ratio=(1.0, 2.0)), T.PILToTensor(),
                T.ConvertImageDtype(torch.float32)]), (3, 20, 36), torch.float32),
], ids=["v1-train", "v1-val", "v2-train", "resize-hw-uint8", "v2-unscaled", "rrc-scale-ratio"])
def test_a_recognised_transform_runs_natively_with_torchvisions_layout(image_folder, tf, shape, dtype):
    ds = rl.ImageFolder(image_folder, tf)
    assert ds.native, ds.fallback
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(rl.DataLoader(ds, batch_size=8, num_workers=2, seed=1))
    assert not [w for w in caught if "native pipeline" in str(w.message)]  # native: no fallback warning
    theirs = torch_batches(torchvision.datasets.ImageFolder(image_folder, tf))
    assert len(batches) == len(theirs) == 5
    for (x, y), (tx, ty) in zip(batches, theirs):
        assert x.shape == tx.shape == (8,) + shape and x.dtype == tx.dtype == dtype
        assert torch.equal(y, ty)


@pytest.mark.parametrize("ops, name", [
    ([T.Resize(40), T.CenterCrop(32)], "Resize+CenterCrop"),
    ([T.Resize((30, 50))], "Resize(h, w)"),
    ([T.CenterCrop(100)], "CenterCrop"),
    ([T.RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0))], "RandomResizedCrop (its whole-image fallback)"),
    ([T.Resize(40), T.CenterCrop(32), T.RandomHorizontalFlip(p=1.0)], "flip"),
])
def test_native_pixels_are_close_to_torchvisions_per_op(image_folder, ops, name):
    # Deterministic settings of each op, so both sides compute the same geometry; the
    # resampling differs (libyuv's against PIL's antialiased bilinear), by a few grey levels.
    for tail, peak in ((T.PILToTensor(), 255.0), (T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]), None)):
        tf = T.Compose(ops + [tail])
        ds = rl.ImageFolder(image_folder, tf)
        assert ds.native
        ours = torch.cat([x for x, _ in rl.DataLoader(ds, batch_size=8)])
        theirs = torch.cat([x for x, _ in torch_batches(torchvision.datasets.ImageFolder(image_folder, tf))])
        assert len(ours) == len(ds)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        if peak is None:  # back to 0..255 through the normalisation
            s, m = torch.tensor(STD).view(1, 3, 1, 1), torch.tensor(MEAN).view(1, 3, 1, 1)
            ours, theirs, peak = (ours * s + m) * 255, (theirs * s + m) * 255, 255.0
        score = psnr(ours.numpy(), theirs.numpy(), peak)
        assert score > 30, f"{name}: {score:.1f} dB"


PHOTO_OPS = [
    ([T.Resize(256), T.CenterCrop(224)], "Resize+CenterCrop"),
    ([T.Resize((224, 320))], "Resize(h, w)"),
    ([T.CenterCrop(224)], "CenterCrop"),
    ([T.RandomResizedCrop(224, scale=(1.0, 1.0), ratio=(1.0, 1.0))], "RandomResizedCrop (whole image)"),
    ([T.Resize(256), T.CenterCrop(224), T.RandomHorizontalFlip(p=1.0)], "flip"),
    ([T.Resize(40), T.CenterCrop(32)], "Resize+CenterCrop to 32 px"),
]
# The least PSNR (dB, uint8, over the 8 photos) per decoder: "turbojpeg" decodes whole and
# resamples as torchvision does, up to rounding; "fast" decodes JPEGs at 1/2, 1/4 or 1/8 scale
# in the DCT and resamples with libyuv, a few grey levels off (docs/images.md has the figures).
PHOTO_FLOOR = {"turbojpeg": 40.0, "fast": 28.0}


@pytest.mark.parametrize("decoder", sorted(PHOTO_FLOOR))
@pytest.mark.parametrize("ops, name", PHOTO_OPS, ids=[n for _, n in PHOTO_OPS])
def test_real_photos_come_out_close_to_torchvisions_per_op(photo_folder, decoder, ops, name):
    tf = T.Compose(ops + [T.PILToTensor()])
    ds = rl.ImageFolder(photo_folder, tf, decoder=decoder)
    assert ds.native
    ours = torch.cat([x for x, _ in rl.DataLoader(ds, batch_size=4)])
    theirs = torch.cat([x for x, _ in torch_batches(torchvision.datasets.ImageFolder(photo_folder, tf))])
    assert ours.shape == theirs.shape and len(ours) == 8
    score = psnr(ours.numpy(), theirs.numpy(), 255.0)
    assert score > PHOTO_FLOOR[decoder], f"{name}, decoder={decoder}: {score:.1f} dB"


def test_an_unrecognised_op_falls_back_to_torchvisions_way_with_one_warning(image_folder):
    tf = T.Compose([T.Resize(40), T.CenterCrop(32), T.Grayscale(3), T.ToTensor()])
    ds = rl.ImageFolder(image_folder, tf)
    assert not ds.native and "Grayscale" in ds.fallback
    with pytest.warns(RuntimeWarning, match="Grayscale") as caught:
        loader = rl.DataLoader(ds, batch_size=8, num_workers=2)
    assert len([w for w in caught if "Grayscale" in str(w.message)]) == 1
    ours = list(loader)
    theirs = torch_batches(torchvision.datasets.ImageFolder(image_folder, tf))
    for (x, y), (tx, ty) in zip(ours, theirs):  # torchvision's own code ran: equal, not close
        assert torch.equal(x, tx) and torch.equal(y, ty)


@pytest.mark.parametrize("kw, named", [
    (dict(transform=T.Compose([T.Resize(40, interpolation=T.InterpolationMode.NEAREST), T.CenterCrop(32),
                               T.ToTensor()])), "NEAREST"),
    (dict(transform=T.Compose([T.ToTensor(), T.Resize(40), T.CenterCrop(32)])), "after the conversion"),
    (dict(transform=T.Compose([T.Resize(40), T.ToTensor()])), "size depends on the image"),
    (dict(transform=V1_VAL, target_transform=lambda t: t + 100), "target_transform"),
])
def test_what_forces_the_fallback_is_named(image_folder, kw, named):
    ds = rl.ImageFolder(image_folder, **kw)
    assert not ds.native and named in ds.fallback


def test_the_keyword_form_stays_and_a_positional_size_is_explained(image_folder):
    ds = rl.ImageFolder(image_folder, size=32, random_crop=True, flip=True)
    assert ds.native and "RandomResizedCrop" in ds.native_transform
    x, y = next(iter(rl.DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 32, 32, 3) and x.dtype == torch.uint8
    with pytest.raises(rl.ConfigError, match="size=224"):
        rl.ImageFolder(image_folder, 224)
    with pytest.raises(rl.ConfigError, match="not both"):
        rl.ImageFolder(image_folder, V1_VAL, size=32)
