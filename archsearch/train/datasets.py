"""Image classification datasets for validating candidates, registered by name.

Every split serves a recipe's two input pipelines (:mod:`archsearch.train.recipes`):

* ``batches(indices, n)``: ``uint8`` image batches in NCHW at the stored size (folders: decoded and
  resized to the spec's side), which the device-side :class:`BatchTransform` turns into the float inputs a
  spec wants (light augmentation, resize, grey <-> RGB, normalisation) with one seeded generator per
  epoch or per-image replay seeds (the teacher cache);
* ``image(i)``: one PIL image and its label, for ``timm.data.create_transform``'s per-image transforms
  (:mod:`archsearch.train.loaders`).

Image folders and the ``timm:`` sources are read by ``timm.data.create_dataset``. Written by hand: the
registry, the in-memory datasets (their files read once into tensors, which the batch pipeline needs;
timm's torchvision wrappers yield one PIL image at a time) and :class:`BatchTransform` (timm has no batched
augmentation, and the teacher cache replays its crops from per-image seeds).

Built-in names:

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, offline), split 80/20
  stratified with the seed;
* ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` files under ``/usr/share/datasets/fashion-mnist``
  when installed, else torchvision's download into the cache directory;
* ``cifar10`` and ``cifar100``: torchvision's download into the cache directory;
* ``imagefolder:PATH``: a folder of class sub-folders read by timm's ``create_dataset`` (its
  ``ImageDataset``: classes in natural sort order, unreadable images skipped); ``PATH/train`` and
  ``PATH/val`` (or ``validation``, ``test``) when present, else one folder split 80/20 stratified
  with the seed;
* ``timm:NAME``: any map-style source of ``timm.data.create_dataset``: ``timm:torch/NAME`` (torchvision's
  datasets, downloaded into the cache directory), ``timm:hfds/NAME`` (Hugging Face datasets, when the
  ``datasets`` package is installed), read from the ``train`` and ``validation`` (else ``test``) splits.
  Streaming sources (``wds/``, ``hfids/``, ``tfds/``) are refused: the trainer shards, shuffles and
  resumes by index.

Small datasets (digits, Fashion-MNIST, CIFAR) are held in memory as tensors.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from archsearch.errors import ArchsearchError, UnknownNameError, did_you_mean

__all__ = [
    "BatchTransform", "DatasetError", "DatasetInfo", "FolderSplit", "ImageData", "ReaderSplit", "Split", "TensorSplit",
    "check_dataset", "default_data_dir", "get_dataset", "list_datasets", "register_dataset", "replay_augmentation",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

if TYPE_CHECKING:
    import torch

# torch is imported where a dataset is loaded or transformed, not with this module: the registry (names,
# lookups and their errors) stays torch-free so that the CLI checks `--dataset` in milliseconds


class DatasetError(ArchsearchError):
    """A dataset cannot be found, read or downloaded, or does not fit a spec."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, and how its images are prepared.

    Attributes:
        name: Registry name (``imagefolder:PATH`` for folders).
        num_classes: Number of labels.
        channels: Channels of the stored images (1 grey, 3 RGB).
        resolution: Side of the stored images (folders: the spec's resolution, set when loaded).
        max_resolution: Largest spec resolution accepted (upscaling beyond 4x the stored side
            measures the interpolation, not the architecture).
        pad: Random-crop padding of the training augmentation (0: no crop).
        flip: Random horizontal flips in the training augmentation.
        mean: Per-channel mean of the stored images in [0, 1].
        std: Per-channel standard deviation.
    """

    name: str
    num_classes: int
    channels: int
    resolution: int
    max_resolution: int
    pad: int
    flip: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]


class Split(Protocol):
    """A train or test split: ``len``, ``uint8`` NCHW batches of given indices, and single PIL images."""

    def __len__(self) -> int: ...

    def batches(self, indices: Sequence[int], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def image(self, index: int) -> tuple[Any, int]: ...


class TensorSplit:
    """A split held in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images.contiguous(), labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, indices: Sequence[int], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        idx = torch.as_tensor(indices, dtype=torch.long)
        for i in range(0, len(idx), batch_size):
            sel = idx[i:i + batch_size]
            yield self.images[sel], self.labels[sel]

    def image(self, index: int) -> tuple[Any, int]:
        """Image ``index`` as a PIL image (``L`` or ``RGB``) and its label."""
        from PIL import Image

        pixels = self.images[index].numpy()
        img = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
        return img, int(self.labels[index])


def _seed_worker(worker_id: int) -> None:
    # Each loader worker derives its seeds from the loader's generator (torch seeds its own RNG).
    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


class ReaderSplit:
    """A split read image by image from a map-style dataset (timm's ``ImageDataset``, a torchvision
    dataset) that returns ``(PIL image, label)``, restricted to ``indices`` of it.

    ``batches`` decodes the images in a ``DataLoader`` with seeded workers, converts them to RGB and
    resizes them to ``size`` x ``size`` (augmentation happens later, on the batch); ``image`` returns
    one decoded image for per-image transforms.
    """

    def __init__(self, dataset: Any, indices: Sequence[int] | None = None, *, size: int, workers: int, seed: int) -> None:
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        self.size, self.workers, self.seed = size, workers, seed

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``(file, label)`` of every image, when the source is a file tree (the teacher cache's fingerprint)."""
        reader = getattr(self.dataset, "reader", None)
        all_samples = getattr(reader, "samples", None) or getattr(self.dataset, "samples", None)
        if all_samples is None:
            raise AttributeError("samples")
        return [(str(all_samples[i][0]), int(all_samples[i][1])) for i in self.indices]

    def image(self, index: int) -> tuple[Any, int]:
        img, label = self.dataset[self.indices[index]]
        return img, int(label)

    def _load(self, i: int) -> tuple[torch.Tensor, int]:
        from torchvision.transforms.functional import pil_to_tensor, resize

        img, label = self.image(i)
        return pil_to_tensor(resize(img.convert("RGB"), [self.size, self.size], antialias=True)), label

    def batches(self, indices: Sequence[int], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torch
        from torch.utils.data import DataLoader

        gen = torch.Generator().manual_seed(self.seed)
        loader = DataLoader(_Indexed(self, list(indices)), batch_size=batch_size, shuffle=False, num_workers=self.workers,
                            worker_init_fn=_seed_worker, generator=gen, persistent_workers=False)
        for images, labels in loader:
            yield images, labels.long()


FolderSplit = ReaderSplit  # the name of the first format (a torchvision ImageFolder split)


class _Indexed:
    """A reader split's images at ``indices`` as a map-style dataset (what ``DataLoader`` needs; no torch
    base class, so this module imports without torch)."""

    def __init__(self, split: ReaderSplit, indices: list[int]) -> None:
        self.split, self.indices = split, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.split._load(self.indices[i])


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A dataset ready for training: its info, the two splits and the loader processes it may use
    (per-image transforms and decoding; 0: in the training process)."""

    info: DatasetInfo
    train: Split
    test: Split
    workers: int = 0


Loader = Callable[..., ImageData]
_DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(*, root, seed, resolution, workers) -> ImageData`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        _DATASETS[name] = fn
        return fn

    return deco


def list_datasets() -> list[str]:
    """Registered names, plus the ``imagefolder:PATH`` and ``timm:NAME`` forms."""
    return sorted(_DATASETS) + ["imagefolder:PATH", "timm:NAME"]


def default_data_dir() -> Path:
    """Download cache: ``$ARCHSEARCH_DATA`` or ``~/.cache/archsearch/data``."""
    return Path(os.environ.get("ARCHSEARCH_DATA") or Path.home() / ".cache" / "archsearch" / "data")


def get_dataset(name: str, *, seed: int = 0, root: str | Path | None = None, resolution: int | None = None,
                workers: int = 2) -> ImageData:
    """Loads a dataset by name.

    Args:
        name: A registered name, ``imagefolder:PATH`` or ``timm:NAME``.
        seed: Seed of the train/test split where the dataset has none of its own.
        root: Download cache directory (default :func:`default_data_dir`).
        resolution: The spec's resolution (the batch pipeline decodes folders at this size; others ignore it).
        workers: Loader processes for decoding and per-image transforms (folders and ``timm:`` sources;
            the in-memory datasets use none).

    Raises:
        UnknownNameError: No such dataset.
        DatasetError: The files cannot be found, read or downloaded.
    """
    check_dataset(name)
    key, _, arg = name.partition(":")
    root = Path(root) if root is not None else default_data_dir()
    if key == "imagefolder":
        return _imagefolder(Path(arg), seed=seed, resolution=resolution or 224, workers=workers)
    if key == "timm":
        return _timm_source(arg, root=root, seed=seed, resolution=resolution or 224, workers=workers)
    data = _DATASETS[key](root=root, seed=seed, resolution=resolution, workers=workers)
    # the timm pipeline's per-image transforms run in these processes (the batch pipeline uses none here)
    return data if data.workers == workers else dataclasses.replace(data, workers=workers)


def check_dataset(name: str) -> None:
    """Checks a dataset name without loading anything (nor importing torch): a registered name,
    ``imagefolder:PATH`` with an existing folder, or ``timm:PREFIX/NAME`` with a map-style prefix.

    Raises:
        UnknownNameError: No such dataset (the message suggests the closest names).
        DatasetError: ``imagefolder:`` without a path, or with one that is not a directory; ``timm:`` without
            a name or with a streaming source.
    """
    key, _, arg = name.partition(":")
    if key == "imagefolder":
        if not arg:
            raise DatasetError("--dataset imagefolder:PATH: expected a folder path after 'imagefolder:', got none")
        if not Path(arg).is_dir():
            raise DatasetError(f"--dataset imagefolder:{arg}: no such directory")
        return
    if key == "timm":
        prefix = arg.partition("/")[0].lower()
        if prefix not in _TIMM_MAP_STYLE:
            hint = (" (a streaming source: the trainer needs random access to shard, shuffle and resume by index; "
                    "export it to an image folder)" if prefix in _TIMM_STREAMING else "")
            raise DatasetError(f"--dataset timm:NAME: expected NAME as one of {[p + '/NAME' for p in _TIMM_MAP_STYLE]} "
                               f"(timm.data.create_dataset's map-style sources), got {arg!r}{hint}")
        return
    if key not in _DATASETS or arg:
        raise UnknownNameError(f"--dataset: unknown dataset {name!r}{did_you_mean(name, list_datasets())}; known: {list_datasets()}")


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.double().div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(round(v, 4) for v in x.mean(1).tolist()), tuple(round(v, 4) for v in x.std(1).tolist())


def _in_memory(name: str, num_classes: int, pad: int, flip: bool, train: tuple[Any, Any], test: tuple[Any, Any]) -> ImageData:
    """An :class:`ImageData` from uint8 arrays (N, H, W) or (N, H, W, C) and labels."""

    import torch

    def to_nchw(a: Any) -> torch.Tensor:
        t = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.uint8)
        return t[:, None] if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()

    xtr, xte = to_nchw(train[0]), to_nchw(test[0])
    mean, std = _stats(xtr)
    side = xtr.shape[-1]
    info = DatasetInfo(name, num_classes, xtr.shape[1], side, 4 * side, pad, flip, mean, std)
    return ImageData(info, TensorSplit(xtr, torch.as_tensor(np.asarray(train[1]))),
                     TensorSplit(xte, torch.as_tensor(np.asarray(test[1]))))


@register_dataset("digits")
def _digits(*, seed: int, **_: Any) -> ImageData:
    """scikit-learn's 8x8 digits (values 0..16, scaled to 0..255), 80/20 stratified split."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:  # pragma: no cover - a declared dependency
        raise DatasetError("--dataset digits: needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    xtr, xte, ytr, yte = train_test_split(images, d.target, test_size=0.2, stratify=d.target, random_state=seed)
    return _in_memory("digits", 10, 1, False, (xtr, ytr), (xte, yte))


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzipped or not."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()  # type: ignore[operator]
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def _torchvision(cls_name: str, name: str, root: Path) -> tuple[Any, Any]:
    try:
        import torchvision.datasets as tvd
    except ImportError:
        raise DatasetError(f"--dataset {name}: needs torchvision (pip install torchvision)") from None
    cls = getattr(tvd, cls_name)
    folder = root / name
    try:
        return cls(str(folder), train=True, download=True), cls(str(folder), train=False, download=True)
    except Exception as exc:  # network and archive errors of all kinds
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"--dataset {name}: not in {folder} and the download failed ({msg}); "
                           f"place the files there or set ARCHSEARCH_DATA") from None


@register_dataset("fashion-mnist")
def _fashion_mnist(*, root: Path, **_: Any) -> ImageData:
    """Fashion-MNIST (Xiao et al., 2017): 60,000 + 10,000 grey 28x28 images, 10 classes."""
    files = {k: FASHION_MNIST_DIR / f"{k}-ubyte.gz" for k in
             ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    if all(f.is_file() for f in files.values()):
        arrays = [_read_idx(f) for f in files.values()]
        return _in_memory("fashion-mnist", 10, 2, True, (arrays[0], arrays[1]), (arrays[2], arrays[3]))
    train, test = _torchvision("FashionMNIST", "fashion-mnist", root)
    return _in_memory("fashion-mnist", 10, 2, True, (train.data.numpy(), train.targets.numpy()),
                      (test.data.numpy(), test.targets.numpy()))


@register_dataset("cifar10")
def _cifar10(*, root: Path, **_: Any) -> ImageData:
    """CIFAR-10 (Krizhevsky, 2009): 50,000 + 10,000 RGB 32x32 images, 10 classes."""
    train, test = _torchvision("CIFAR10", "cifar10", root)
    return _in_memory("cifar10", 10, 4, True, (train.data, train.targets), (test.data, test.targets))


@register_dataset("cifar100")
def _cifar100(*, root: Path, **_: Any) -> ImageData:
    """CIFAR-100 (Krizhevsky, 2009): 50,000 + 10,000 RGB 32x32 images, 100 classes."""
    train, test = _torchvision("CIFAR100", "cifar100", root)
    return _in_memory("cifar100", 100, 4, True, (train.data, train.targets), (test.data, test.targets))


_TIMM_MAP_STYLE = ("torch", "hfds")
_TIMM_STREAMING = ("wds", "hfids", "tfds")
_EVAL_SPLITS = ("val", "validation", "test")


def _num_classes(dataset: Any) -> int:
    reader = getattr(dataset, "reader", None)
    for source in (reader, dataset):
        for attr in ("class_to_idx", "classes"):
            value = getattr(source, attr, None)
            if value:
                return len(value)
        n = getattr(source, "num_classes", None)
        if isinstance(n, int) and n > 0:
            return n
    raise DatasetError(f"dataset: cannot tell the number of classes of a {type(dataset).__name__}")


def _create(name: str, root: Path, split: str, what: str, **kwargs: Any) -> Any:
    """``timm.data.create_dataset`` with its failures turned into one-line :class:`DatasetError` s."""
    try:
        from timm.data import create_dataset
    except ImportError:  # pragma: no cover - a declared dependency
        raise DatasetError(f"--dataset {what}: needs timm (pip install timm)") from None
    try:
        return create_dataset(name, root=str(root), split=split, **kwargs)
    except ImportError as exc:
        package = getattr(exc, "name", None) or str(exc)
        raise DatasetError(f"--dataset {what}: needs the {package!r} package (pip install {package})") from None
    except (AssertionError, FileNotFoundError, RuntimeError, ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"--dataset {what}: {msg}") from None


def _stratified(labels: Sequence[int], seed: int) -> tuple[list[int], list[int]]:
    from sklearn.model_selection import train_test_split

    try:
        tr, te = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DatasetError(f"dataset: cannot split 80/20 by class ({str(exc).splitlines()[0]}); give train/ and val/ "
                           "sub-folders") from None
    return sorted(int(i) for i in tr), sorted(int(i) for i in te)


def _folder_info(name: str, num_classes: int, resolution: int) -> DatasetInfo:
    # decoded RGB at the spec's side, ImageNet statistics (what timm's pretrained configs assume)
    return DatasetInfo(name, num_classes, 3, resolution, 4096, max(1, resolution // 8), True, _IMAGENET_MEAN, _IMAGENET_STD)


def _imagefolder(path: Path, *, seed: int, resolution: int, workers: int) -> ImageData:
    if not path.is_dir():
        raise DatasetError(f"--dataset imagefolder:{path}: no such directory")
    what = f"imagefolder:{path}"
    test_dir = next((path / d for d in _EVAL_SPLITS if (path / d).is_dir()), None)
    if (path / "train").is_dir() and test_dir is not None:
        train = _create("", path, "train", what)
        test = _create("", path, test_dir.name, what)
        if train.reader.class_to_idx != test.reader.class_to_idx:
            raise DatasetError(f"--dataset {what}: train and {test_dir.name} have different classes")
        train_idx = test_idx = None
    else:
        train = test = _create("", path, "train", what, search_split=False)
        train_idx, test_idx = _stratified([y for _, y in train.reader.samples], seed)
    info = _folder_info(what, _num_classes(train), resolution)
    return ImageData(info, ReaderSplit(train, train_idx, size=resolution, workers=workers, seed=seed),
                     ReaderSplit(test, test_idx, size=resolution, workers=workers, seed=seed), workers=workers)


def _timm_source(name: str, *, root: Path, seed: int, resolution: int, workers: int) -> ImageData:
    """A map-style ``timm.data.create_dataset`` source: its ``train`` split and the first evaluation
    split that exists."""
    what = f"timm:{name}"
    prefix = name.partition("/")[0].lower()
    kwargs: dict[str, Any] = {"download": True} if prefix == "torch" else {}
    folder = root / name.replace("/", "-")
    train = _create(name, folder, "train", what, **kwargs)
    test, errors = None, []
    for split in ("validation", "test"):
        try:
            test = _create(name, folder, split, what, **kwargs)
            break
        except DatasetError as exc:
            errors.append(str(exc))
    if test is None:
        raise DatasetError(f"--dataset {what}: no validation or test split ({errors[-1]})")
    info = _folder_info(what, _num_classes(train), resolution)
    return ImageData(info, ReaderSplit(train, size=resolution, workers=workers, seed=seed),
                     ReaderSplit(test, size=resolution, workers=workers, seed=seed), workers=workers)


class BatchTransform:
    """Turns a uint8 batch into model inputs on the device.

    Training batches get the dataset's light augmentation (a random crop of the zero-padded image and a
    horizontal flip, each drawn per image from ``generator``); then every batch is resized to the
    spec's side, converted to the spec's channels (grey repeated to RGB, RGB averaged to grey) and
    normalised with the dataset's statistics.
    """

    def __init__(self, info: DatasetInfo, *, channels: int, resolution: int, device: torch.device,
                 channels_last: bool = False) -> None:
        if channels not in (1, 3) and channels != info.channels:
            raise DatasetError(f"spec: {channels} input channels do not fit {info.name} ({info.channels} channels)")
        import torch

        self.info, self.channels, self.resolution = info, channels, resolution
        self.device, self.channels_last = device, channels_last
        self.mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor, *, train: bool, generator: torch.Generator | None = None,
                 seeds: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """The model inputs of a uint8 batch.

        Args:
            images: uint8 (N, C, H, W) at the stored size.
            train: Apply the training augmentation (when ``generator`` or ``seeds`` is given).
            generator: Draws the crop offsets and flips of the whole batch (the ordinary path).
            seeds: Per-image int32 augmentation seeds instead: image ``i``'s crop and flip are a
                function of ``seeds[i]`` alone (:func:`replay_augmentation`), so a teacher and a
                student see the same augmented image whatever batch it falls in.
        """
        import torch
        import torch.nn.functional as F

        x = images.to(self.device, non_blocking=True).float().div_(255)
        x = (x - self.mean) / self.std
        if train and seeds is not None:
            oy, ox, flip = replay_augmentation(seeds, pad=self.info.pad, flip=self.info.flip)
            x = self._apply(x, torch.as_tensor(oy, device=x.device), torch.as_tensor(ox, device=x.device),
                            torch.as_tensor(flip, device=x.device))
        elif train and generator is not None:
            x = self._augment(x, generator)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.resolution)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        return x

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        import torch

        n = x.shape[0]
        p = self.info.pad
        oy = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=gen) if p else None
        ox = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=gen) if p else None
        flip = torch.rand(n, device=x.device, generator=gen) < 0.5 if self.info.flip else None
        return self._apply(x, oy, ox, flip)

    def _apply(self, x: torch.Tensor, oy: torch.Tensor | None, ox: torch.Tensor | None,
               flip: torch.Tensor | None) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        n, _, h, w = x.shape
        p = self.info.pad
        if p and oy is not None and ox is not None:
            # zero padding after normalisation = padding with the mean colour
            xp = F.pad(x, (p, p, p, p))
            iy = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
            ix = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
            x = xp[torch.arange(n, device=x.device)[:, None, None], :, iy, ix].permute(0, 3, 1, 2)
        if self.info.flip and flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


def _mix32(x: np.ndarray) -> np.ndarray:
    """A 32-bit integer finaliser (C. Wellons' "lowbias32": xor-shift / multiply rounds), on uint32."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def replay_augmentation(seeds: torch.Tensor | np.ndarray, *, pad: int, flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crop offsets and flips that per-image seeds stand for (version 1 of the replay).

    Image ``i`` is cropped at rows ``oy[i]:oy[i] + H`` and columns ``ox[i]:ox[i] + W`` of its
    ``pad``-padded copy and flipped when ``flip[i]``; each is drawn from its own round of a 32-bit
    hash of the seed, so the result depends on the seed alone: no generator state, no batch
    composition, the same on every device. A teacher cache stores the seeds and the student replays them.

    Args:
        seeds: int32 (or any integer) seeds, shape (N,).
        pad: Crop padding (0: offsets are 0).
        flip: Whether flips are drawn (False: never flipped).

    Returns:
        ``oy``, ``ox`` (int64, in [0, 2 * pad]) and ``flip`` (bool), each of shape (N,).
    """
    s = np.asarray(seeds.cpu() if hasattr(seeds, "cpu") else seeds).astype(np.int64).astype(np.uint32)
    with np.errstate(over="ignore"):
        h1 = _mix32(s ^ np.uint32(0x9E3779B9))
        h2 = _mix32(h1)
        h3 = _mix32(h2)
    span = np.uint32(2 * pad + 1)
    return (h1 % span).astype(np.int64), (h2 % span).astype(np.int64), (h3 >> np.uint32(31)).astype(bool) & flip
