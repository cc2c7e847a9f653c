"""Datasets: splits, determinism, the device-side batch transform, bad names and paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from archsearch.errors import ArchsearchError, UnknownNameError
from archsearch.train import BatchTransform, DatasetError, get_dataset, list_datasets
from archsearch.train.datasets import FASHION_MNIST_DIR


def test_digits_split_is_stratified_and_seeded() -> None:
    a, b, c = get_dataset("digits", seed=0), get_dataset("digits", seed=0), get_dataset("digits", seed=1)
    assert (len(a.train), len(a.test)) == (1437, 360)
    assert a.info.num_classes == 10 and a.info.channels == 1 and a.info.resolution == 8 and a.info.max_resolution == 32
    assert a.train.images.dtype == torch.uint8 and a.train.images.shape == (1437, 1, 8, 8)
    assert int(a.train.images.max()) == 255
    assert torch.equal(a.test.labels, b.test.labels) and torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.test.labels, c.test.labels)
    counts = torch.bincount(a.test.labels, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # 20% of ~180 per class
    train_set = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in train_set for x in a.test.images[:50])


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_reads_the_debian_files() -> None:
    data = get_dataset("fashion-mnist")
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert data.train.images.shape[1:] == (1, 28, 28) and data.info.num_classes == 10
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    assert 0.2 < data.info.mean[0] < 0.4  # Fashion-MNIST's mean pixel is about 0.286


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="digits.*imagefolder:PATH"):
        get_dataset("mnist-3d")
    assert {"digits", "fashion-mnist", "cifar10", "cifar100", "imagefolder:PATH"} <= set(list_datasets())


def test_failed_download_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torchvision.datasets

    class Offline:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(DatasetError, match=r"--dataset cifar10: not in .*download failed \(<urlopen error"):
        get_dataset("cifar10", root=tmp_path)


def test_imagefolder(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (12 + i, 20, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = get_dataset(f"imagefolder:{tmp_path}", resolution=16, workers=0)
    assert data.info.num_classes == 2 and (len(data.train), len(data.test)) == (16, 4)
    images, labels = next(data.train.batches(range(len(data.train)), 16))
    assert images.shape == (16, 3, 16, 16) and images.dtype == torch.uint8 and set(labels.tolist()) == {0, 1}
    with pytest.raises(DatasetError, match="no such directory"):
        get_dataset(f"imagefolder:{tmp_path / 'missing'}")
    with pytest.raises(ArchsearchError):
        get_dataset("imagefolder:")


def test_batch_transform_resizes_repeats_grey_and_augments_reproducibly() -> None:
    data = get_dataset("digits")
    images = data.train.images[:32]
    tf = BatchTransform(data.info, channels=3, resolution=32, device=torch.device("cpu"))
    plain = tf(images, train=False)
    assert plain.shape == (32, 3, 32, 32) and plain.dtype == torch.float32
    assert torch.equal(plain[:, 0], plain[:, 1]) and torch.equal(plain[:, 1], plain[:, 2])
    small = BatchTransform(data.info, channels=1, resolution=8, device=torch.device("cpu"))(data.train.images, train=False)
    assert small.mean().abs() < 1e-4 and (small.std() - 1).abs() < 1e-3  # normalised with the train statistics
    aug1 = tf(images, train=True, generator=torch.Generator().manual_seed(3))
    aug2 = tf(images, train=True, generator=torch.Generator().manual_seed(3))
    aug3 = tf(images, train=True, generator=torch.Generator().manual_seed(4))
    assert torch.equal(aug1, aug2) and not torch.equal(aug1, aug3) and not torch.equal(aug1, plain)
    assert torch.equal(tf(images, train=True, generator=None), plain)


def test_random_crop_shifts_images_within_the_padding() -> None:
    data = get_dataset("digits")
    tf = BatchTransform(data.info, channels=1, resolution=8, device=torch.device("cpu"))
    x = tf(data.train.images[:64], train=False)
    y = tf._augment(x, torch.Generator().manual_seed(0))
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(64):  # every augmented image is one of the 9 one-pixel shifts of its original
        assert any(torch.equal(y[i], pad[i, :, dy:dy + 8, dx:dx + 8]) for dy in range(3) for dx in range(3))


def test_timm_sources_go_through_create_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import timm.data
    from PIL import Image

    from archsearch.train import check_dataset

    calls: list[tuple[str, str, dict]] = []

    class Source:  # a map-style source as timm returns it: (PIL image, label) and its classes
        classes = ["a", "b", "c"]

        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> tuple[Image.Image, int]:
            return Image.new("RGB", (10, 12), (i, 0, 0)), i % 3

    def create_dataset(name: str, root: str, split: str, **kwargs: object) -> Source:
        calls.append((name, split, kwargs))
        if split == "validation":
            raise ValueError("no split 'validation'")
        return Source(9 if split == "train" else 3)

    monkeypatch.setattr(timm.data, "create_dataset", create_dataset)
    data = get_dataset("timm:torch/cifar10", root=tmp_path, resolution=16, workers=0)
    assert data.info.num_classes == 3 and (len(data.train), len(data.test)) == (9, 3) and data.info.channels == 3
    assert [(n, s) for n, s, _ in calls] == [("torch/cifar10", "train"), ("torch/cifar10", "validation"),
                                             ("torch/cifar10", "test")]
    assert calls[0][2] == {"download": True}  # torchvision's sources download into the cache directory
    images, labels = next(data.train.batches(range(9), 9))
    assert images.shape == (9, 3, 16, 16) and labels.tolist() == [0, 1, 2] * 3
    img, label = data.test.image(2)
    assert img.size == (10, 12) and label == 2

    def missing(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'datasets'", name="datasets")

    monkeypatch.setattr(timm.data, "create_dataset", missing)
    with pytest.raises(DatasetError, match=r"--dataset timm:hfds/beans: needs the 'datasets' package \(pip install datasets\)"):
        get_dataset("timm:hfds/beans", root=tmp_path)
    with pytest.raises(DatasetError, match=r"timm:NAME: expected NAME as one of \['torch/NAME', 'hfds/NAME'\].*streaming"):
        check_dataset("timm:wds/shards")
    with pytest.raises(DatasetError, match=r"timm:NAME: expected NAME as one of"):
        check_dataset("timm:")
