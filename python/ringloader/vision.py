"""Image datasets with torchvision's signatures, decoded in C++ in the workers.

    train = rl.ImageFolder("/data/train", transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(mean, std)]))      # recognised: runs natively
    train = rl.ImageFolder("/data/train", size=224, random_crop=True, flip=True)  # the keyword form

A transform made only of ops the native pipeline has (`native_transform` says which) runs in
C++ with torchvision's output layout and dtype. Any other transform (or a `loader=`, or a
`target_transform=`) runs as torchvision runs it, in the workers, on a PIL image, with one
warning naming what forced it. Indexing a dataset (`ds[i]`, `Subset`, torch's own DataLoader)
always gives exactly what torchvision's ImageFolder gives: the file through `loader`, then
`transform` and `target_transform`.
"""
from __future__ import annotations

import os
import warnings

from . import _ringloader as _core
from ._errors import ConfigError, FolderNotFoundError

__all__ = ["ImageFolder", "FileList", "Shards", "native_transform"]

# The keyword form's preset has one home, datasets::ImageNetPreset: its mean/std and resize().
_IMAGENET_MEAN = _core.IMAGENET_MEAN
_IMAGENET_STD = _core.IMAGENET_STD


class NotNative(Exception):
    """The transform has something the native pipeline does not do; args[0] names it."""


def _ops(transform):
    """The transform's ops in order, Compose flattened (v1 and v2)."""
    inner = getattr(transform, "transforms", None)
    if inner is not None and type(transform).__name__ == "Compose":
        out = []
        for t in inner:
            out += _ops(t)
        return out
    return [transform]


def _hw(size, op):
    """(h, w) of a torchvision size argument: an int, or a sequence of one or two ints."""
    if isinstance(size, int):
        return size, size
    size = list(size)
    if len(size) == 1:
        return size[0], size[0]
    if len(size) == 2:
        return size[0], size[1]
    raise NotNative(f"{op}(size={size})")


def _bilinear(t, name):
    mode = getattr(t, "interpolation", None)
    if mode is not None and getattr(mode, "value", mode) not in ("bilinear", 2):
        raise NotNative(f"{name}(interpolation={getattr(mode, 'name', mode)})")
    if getattr(t, "antialias", True) is False:
        raise NotNative(f"{name}(antialias=False)")


def native_transform(transform):
    """The native pipeline for a torchvision transform: (steps, output, mean, std), or
    NotNative naming the first op it cannot run. Recognised (v1 `transforms` and v2): Compose,
    Resize (bilinear, antialiased), CenterCrop, RandomResizedCrop (any scale and ratio),
    RandomHorizontalFlip, ToTensor, PILToTensor, ToImage, ToDtype / ConvertImageDtype (to
    float32), Normalize, ToPureTensor. The result must end as a tensor of a fixed size."""
    steps = []
    state = "pil"  # "pil" | "uint8" (CHW tensor) | "float" (CHW tensor: (x / 255 - m) / s)
    m, s = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    fixed = False
    for t in _ops(transform):
        name = type(t).__name__
        if name in ("Resize", "CenterCrop", "RandomResizedCrop") and state == "float":
            raise NotNative(f"{name} after the conversion to float (it would resample floats)")
        if name == "Resize":
            _bilinear(t, name)
            if getattr(t, "max_size", None) is not None:
                raise NotNative("Resize(max_size=...)")
            size = t.size
            if isinstance(size, int) or (size is not None and len(list(size)) == 1):
                steps.append(("resize", size if isinstance(size, int) else list(size)[0]))
                fixed = False
            else:
                h, w = _hw(size, name)
                steps.append(("resize", h, w))
                fixed = True
        elif name == "CenterCrop":
            h, w = _hw(t.size, name)
            steps.append(("center_crop", h, w))
            fixed = True
        elif name == "RandomResizedCrop":
            _bilinear(t, name)
            h, w = _hw(t.size, name)
            steps.append(("random_resized_crop", h, w, float(t.scale[0]), float(t.scale[1]),
                          float(t.ratio[0]), float(t.ratio[1])))
            fixed = True
        elif name == "RandomHorizontalFlip":
            steps.append(("flip", float(t.p)))
        elif name == "ToTensor":
            if state != "pil":
                raise NotNative("ToTensor of a tensor")
            state = "float"
        elif name in ("PILToTensor", "ToImage"):
            if state != "pil":
                raise NotNative(f"{name} of a tensor")
            state = "uint8"
        elif name in ("ToDtype", "ConvertImageDtype"):
            import torch
            dtype = t.dtype
            if isinstance(dtype, dict):
                dtype = dtype.get(next((k for k in dtype if getattr(k, "__name__", "") == "Image"), None),
                                  dtype.get("others"))
            scale = True if name == "ConvertImageDtype" else bool(getattr(t, "scale", False))
            if state == "pil":
                raise NotNative(f"{name} of a PIL image")
            if dtype == torch.uint8 and state == "uint8":
                continue
            if dtype != torch.float32:
                raise NotNative(f"{name}({dtype})")
            if state == "uint8":
                state = "float"
                if not scale:  # 0..255 as floats: (x / 255 - 0) / (1 / 255)
                    s = [1.0 / 255.0] * 3
        elif name == "Normalize":
            if state != "float":
                raise NotNative("Normalize of a non-float image")
            mean, std = list(t.mean), list(t.std)
            mean = mean * 3 if len(mean) == 1 else mean
            std = std * 3 if len(std) == 1 else std
            if len(mean) != 3 or len(std) != 3:
                raise NotNative(f"Normalize over {len(mean)} channels")
            m = [m[c] + mean[c] * s[c] for c in range(3)]
            s = [s[c] * std[c] for c in range(3)]
        elif name == "ToPureTensor":
            continue
        else:
            raise NotNative(name)
    if state == "pil":
        raise NotNative("a transform that returns a PIL image (no ToTensor / PILToTensor / ToImage)")
    if not fixed:
        raise NotNative("an output whose size depends on the image (no fixed-size crop or Resize((h, w)) last)")
    output = "float" if state == "float" else "uint8_chw"
    return steps, output, tuple(m), tuple(s)


def _keyword_spec(size, random_crop, flip, output):
    """The keyword form: Resize(size * 8/7) + CenterCrop(size), or RandomResizedCrop(size); a
    flip; uint8 HWC or normalised float32 CHW."""
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ConfigError(f"size must be a positive integer, got size={size!r}")
    steps = ([("random_resized_crop", size, size, 0.08, 1.0, 3 / 4, 4 / 3)] if random_crop
             else [("resize", _core.preset_resize(size)), ("center_crop", size, size)])
    if flip:
        steps.append(("flip", 0.5))
    if output not in ("uint8", "float"):
        raise ConfigError(f"output='{output}' is not one of 'uint8', 'float'")
    if output == "float":
        return steps, "float", _IMAGENET_MEAN, _IMAGENET_STD
    return steps, "uint8", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def _default_loader(path):
    """torchvision's default_loader (PIL, or accimage when chosen), without torchvision: PIL."""
    try:
        from torchvision.datasets.folder import default_loader
    except ImportError:
        from PIL import Image
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    return default_loader(path)


_KEYWORDS = ("size", "random_crop", "flip", "output")


class _ImageDataset:
    """The native image datasets' Python face: torchvision's attributes and __getitem__."""

    _native: _core.NativeDataset
    transform = None
    target_transform = None
    loader = None
    fallback = None  # why the transform runs in Python (None: it runs natively)

    def _setup(self, factory, path, transform, target_transform, loader, kw, max_pixels, reader_threads, decoder,
               extra=(), keyword_default=False):
        given = {k: v for k, v in kw.items() if v is not None}
        if given and transform is not None:
            raise ConfigError(f"give a transform or the keyword form ({', '.join(given)}), not both")
        self.transform, self.target_transform = transform, target_transform
        self.loader = loader if loader is not None else _default_loader
        self._kw = dict(size=224, random_crop=False, flip=False, output="uint8")
        self._kw.update(given)
        if transform is not None:
            try:
                spec = native_transform(transform)
            except NotNative as e:
                spec, self.fallback = None, f"the transform's {e.args[0]}"
        elif given or keyword_default:
            spec = _keyword_spec(**self._kw)
        else:
            spec = None
            self.fallback = "no transform (torchvision's ImageFolder then gives PIL images)"
        if loader is not None:
            spec, self.fallback = None, "loader="
        elif target_transform is not None:
            spec, self.fallback = None, "target_transform="
        # Without a native transform the files are still listed natively (the same scan and
        # order as torchvision's); the pipeline then is the keyword default, never run.
        steps, output, mean, std = spec if spec is not None else _keyword_spec(224, False, False, "uint8")
        self._native = factory(os.fsencode(path), steps, output, mean, std, max_pixels, reader_threads, decoder, *extra)

    def __len__(self) -> int:
        return len(self._native)

    def __getitem__(self, index):
        """(image, target) exactly as torchvision's ImageFolder: the file through `loader`,
        then `transform` and `target_transform` (the keyword form: its torchvision equivalent)."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)}")
        path, target = self._native.path(index), self._native.label(index)
        sample = self.loader(path)
        transform = self.transform if self.transform is not None or self.fallback else self._keyword_transform()
        if transform is not None:
            sample = transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    def _keyword_transform(self):
        """The keyword form as torchvision ops, made once."""
        cached = self.__dict__.get("_kw_transform")
        if cached is None:
            cached = self.__dict__["_kw_transform"] = self._make_keyword_transform()
        return cached

    def _make_keyword_transform(self):
        from torchvision.transforms import v2
        import torch
        k = self._kw
        ops = ([v2.RandomResizedCrop(k["size"])] if k["random_crop"]
               else [v2.Resize(_core.preset_resize(k["size"])), v2.CenterCrop(k["size"])])
        if k["flip"]:
            ops.append(v2.RandomHorizontalFlip())
        ops.append(v2.PILToTensor())
        if k["output"] == "float":
            ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)]
        else:
            ops.append(v2.Lambda(lambda x: x.permute(1, 2, 0)))  # HWC, as the keyword form's batches
        return v2.Compose(ops)

    @property
    def native(self) -> bool:
        """Whether rl.DataLoader decodes and transforms this dataset in C++."""
        return self.fallback is None

    @property
    def samples(self):
        """[(path, class_index)], as torchvision's."""
        n = self._native
        return [(n.path(i), n.label(i)) for i in range(len(n))]

    @property
    def imgs(self):
        return self.samples

    @property
    def targets(self):
        n = self._native
        return [n.label(i) for i in range(len(n))]

    @property
    def native_transform(self) -> str:
        """What the native pipeline runs, e.g. "RandomResizedCrop(224) -> ... -> float32 CHW normalised"."""
        return self._native.transform

    def __reduce__(self):  # the fork server receives it pickled: rebuilt from its arguments
        return (_rebuild, (type(self), self._init))


def _rebuild(cls, kwargs):
    return cls(**kwargs)


class _Classified(_ImageDataset):
    """torchvision's class attributes."""

    @property
    def classes(self):
        return list(self._native.classes)

    @property
    def class_to_idx(self):
        return {c: i for i, c in enumerate(self._native.classes)}


def _abspath(root):
    return os.fsdecode(os.path.abspath(os.fspath(root)))


class ImageFolder(_Classified):
    """torchvision.datasets.ImageFolder, decoded in C++ in the workers: root/<class>/**/<image>.

    ImageFolder(root, transform=None, target_transform=None, loader=None, is_valid_file=None,
    allow_empty=False) as torchvision's; a transform native_transform() recognises runs natively.
    The keyword form instead of a transform: size (Resize(size * 8/7) + CenterCrop(size), or with
    random_crop RandomResizedCrop(size)), flip (RandomHorizontalFlip(0.5)), output ("uint8":
    N x H x W x 3, or "float": normalised float32 N x 3 x H x W). A bad file raises (or is
    skipped, on_error="skip") naming it. decoder: "fast" (JPEGs decode only the rows and columns
    the crop keeps; resampled by libyuv), "fast-noroi", "turbojpeg" or "stb"."""

    def __init__(self, root, transform=None, target_transform=None, loader=None, is_valid_file=None,
                 allow_empty=False, *, size=None, random_crop=None, flip=None, output=None, max_pixels=64 << 20,
                 reader_threads=16, decoder="fast"):
        if is_valid_file is not None and not callable(is_valid_file):
            raise ConfigError(f"is_valid_file must be callable (path -> bool), got {is_valid_file!r}")
        self.root = _abspath(root)
        self._init = dict(root=self.root, transform=transform, target_transform=target_transform, loader=loader,
                          is_valid_file=is_valid_file, allow_empty=allow_empty, size=size, random_crop=random_crop, flip=flip, output=output,
                          max_pixels=max_pixels, reader_threads=reader_threads, decoder=decoder)
        if isinstance(transform, int) and not isinstance(transform, bool):
            raise ConfigError(f"ImageFolder's second argument is torchvision's transform; for the keyword form "
                              f"write size={transform}")
        try:
            self._setup(_core.image_folder, self.root, transform, target_transform, loader,
                        dict(size=size, random_crop=random_crop, flip=flip, output=output), max_pixels, reader_threads,
                        decoder, extra=(bool(allow_empty), is_valid_file))
        except ConfigError as e:
            text = str(e)
            if "No such file" in text or "no class folder" in text or "no image in class folder" in text:
                raise FolderNotFoundError(text) from None  # torchvision's FileNotFoundError
            if "is not a folder" in text:
                raise NotADirectoryError(text) from None  # torchvision's (os.scandir's)
            raise
        self.extensions = None if is_valid_file is not None else (  # torchvision's: one or the other
            ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class FileList(_ImageDataset):
    """Images listed in a TSV/CSV file of path<TAB>label lines (paths relative to the file);
    transforms as ImageFolder."""

    def __init__(self, path, transform=None, target_transform=None, loader=None, *, size=None, random_crop=None,
                 flip=None, output=None, max_pixels=64 << 20, reader_threads=16, decoder="fast"):
        self.root = _abspath(path)
        self._init = dict(path=self.root, transform=transform, target_transform=target_transform, loader=loader,
                          size=size, random_crop=random_crop, flip=flip, output=output, max_pixels=max_pixels,
                          reader_threads=reader_threads, decoder=decoder)
        self._setup(_core.file_list, self.root, transform, target_transform, loader,
                    dict(size=size, random_crop=random_crop, flip=flip, output=output), max_pixels, reader_threads,
                    decoder)


class Shards(_Classified):
    """A dataset packed by ringloader-pack (or WebDataset-style tars: KEY.jpg + KEY.cls): path is
    the packed folder, a folder of .tar files, or one .tar. Transforms as ImageFolder. A damaged
    or mismatched shard, index or manifest raises at open naming the shard and byte offset.
    reader_threads: 0 reads in the decoding thread; on slow storage a few threads fetch the next
    samples' bytes ahead. Indexing (ds[i]) reads the member through a file, as the workers do."""

    def __init__(self, path, transform=None, target_transform=None, *, size=None, random_crop=None, flip=None,
                 output=None, max_pixels=64 << 20, reader_threads=0, decoder="fast"):
        self.root = _abspath(path)
        self._init = dict(path=self.root, transform=transform, target_transform=target_transform, size=size,
                          random_crop=random_crop, flip=flip, output=output, max_pixels=max_pixels,
                          reader_threads=reader_threads, decoder=decoder)
        self._setup(_core.shards, self.root, transform, target_transform, None,
                    dict(size=size, random_crop=random_crop, flip=flip, output=output), max_pixels, reader_threads,
                    decoder, keyword_default=True)
        self.loader = self._read_member
        if self.fallback is not None:
            raise ConfigError(f"rl.Shards runs only natively recognised transforms; this one has {self.fallback}")

    @property
    def shard_sizes(self):
        """Samples per shard, in order (for BlockShuffleSampler)."""
        return list(self._native.shard_sizes)

    @staticmethod
    def _read_member(where):
        """The image at "SHARD.tar@OFFSET (name)", read through its tar header, as PIL would open the file."""
        import io
        from PIL import Image
        tar, _, rest = where.rpartition("@")
        offset = int(rest.split(" ", 1)[0])
        with open(tar, "rb") as f:
            f.seek(offset - 512)
            header = f.read(512)
            size = int(header[124:136].strip(b"\0 ") or b"0", 8)
            data = f.read(size)
        if len(data) != size:
            raise OSError(f"{where}: the shard ends before this sample's {size} bytes")
        return Image.open(io.BytesIO(data)).convert("RGB")


def _warn_fallback(ds):
    warnings.warn(f"{type(ds).__name__}: {ds.fallback} is not in ringloader's native pipeline, so the workers "
                  "run it in Python as torchvision does (decode with PIL, then the transform); "
                  "rl.vision.native_transform lists what runs natively", RuntimeWarning, stacklevel=3)
