"""How training and test batches reach the trainer: the recipe's two input pipelines.

Both feeds take an epoch's shard of training indices (from a ``DistributedSampler`` or timm's
``RepeatAugSampler``) and a first step, so a run resumes in the middle of an epoch, and both make every
random draw a function of the run's seed, the epoch and the position alone:

* :class:`BatchFeed` (``pipeline="batch"``) draws the dataset's crop and flip for the whole batch on the
  training device from one generator per epoch and rank, whose state a mid-epoch checkpoint stores; with
  a teacher cache it replays the cached per-image seeds instead. Hand-written because timm has no
  batched augmentation; see :mod:`archsearch.train.recipes`.
* :class:`TimmFeed` (``pipeline="timm"``) runs ``timm.data.create_transform``'s per-image transforms in
  ``DataLoader`` workers. timm's transforms draw from the global ``random``, NumPy and torch generators
  of whatever process runs them, so each image is transformed under generators seeded from its own
  (run, epoch, rank, position) seed (and the caller's generators restored after): the augmentation is
  the same whatever the number of workers, and a resumed epoch continues exactly. What is written here
  is that seeding and the index plumbing; the transforms are timm's.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from archsearch.train.datasets import BatchTransform, ImageData, Split

__all__ = ["BatchFeed", "TimmFeed", "epoch_shard"]


def epoch_shard(n: int, *, epoch: int, seed: int, rank: int, world: int, repeats: int = 0) -> list[int]:
    """This rank's training indices of one epoch, in order.

    ``repeats == 0``: ``torch.utils.data.DistributedSampler`` (shuffled with ``seed + epoch``, padded to a
    multiple of ``world``); otherwise timm's ``RepeatAugSampler`` (every image ``repeats`` times, on
    different ranks; its usual rounding to multiples of 256 images is skipped on datasets too small for it).
    """
    if repeats:
        from timm.data.distributed_sampler import RepeatAugSampler

        sampler: Any = RepeatAugSampler(range(n), num_replicas=world, rank=rank, shuffle=True, num_repeats=repeats,
                                        selected_round=256 if n >= 256 * world else 0)
        # RepeatAugSampler seeds its shuffle with the epoch alone; the run's seed is folded in here
        sampler.set_epoch(epoch + seed * 1_000_003)
    else:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
    return [int(i) for i in sampler]


class BatchFeed:
    """Batches of the batch pipeline: ``uint8`` batches from the split, augmented on the device."""

    def __init__(self, data: ImageData, transform: BatchTransform, *, batch_size: int, augment: bool, seed: int,
                 rank: int) -> None:
        self.data, self.transform, self.batch_size = data, transform, batch_size
        self.augment, self.seed, self.rank = augment, seed, rank
        self.generator: torch.Generator | None = None

    def start_epoch(self, epoch: int) -> None:
        dev = self.transform.device
        self.generator = torch.Generator(device=dev).manual_seed(self.seed * 100_003 + epoch * 1_009 + self.rank)

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state() if self.generator is not None else None}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None and self.generator is not None:
            self.generator.set_state(state["generator"])

    def batches(self, indices: Sequence[int], start: int, targets: Any = None,
                epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """``(inputs, labels, soft targets or None)`` of the steps from ``start`` on."""
        bs = self.batch_size
        rest = list(indices[start * bs:])
        for step, (images, labels) in enumerate(self.data.train.batches(rest, bs), start=start):
            dev = self.transform.device
            if targets is None:
                x = self.transform(images, train=True, generator=self.generator if self.augment else None)
                yield x, labels.to(dev, non_blocking=True), None
            else:
                batch_idx = torch.as_tensor(indices[step * bs:(step + 1) * bs])
                seeds, soft = targets(epoch, batch_idx)
                x = self.transform(images, train=True, seeds=seeds if self.augment else None)
                yield x, labels.to(dev, non_blocking=True), soft.to(dev, non_blocking=True)

    def eval_batches(self, rank: int, world: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dev = self.transform.device
        for images, labels in self.data.test.batches(range(rank, len(self.data.test), world), batch_size):
            yield self.transform(images, train=False), labels.to(dev)


def _global_rng() -> tuple[Any, Any, torch.Tensor]:
    return random.getstate(), np.random.get_state(), torch.default_generator.get_state()


def _set_global_rng(state: tuple[Any, Any, torch.Tensor]) -> None:
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.default_generator.set_state(state[2])


class _Seeded:
    """Runs a transform under the global generators (``random``, NumPy, torch's CPU default) seeded with
    one image's seed. In the training process (no loader workers) :class:`TimmFeed` saves the caller's
    generators before a batch and restores them after it, which keeps dropout and Mixup's draws
    independent of the augmentation (once a batch: saving them costs ~50 us, seeding ~10 us)."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, img: Any, seed: int) -> Any:
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        return self.transform(img)


class _View:
    """A split seen through a transform, indexed by ``(index, seed)`` keys (seed None: no seeding)."""

    def __init__(self, split: Split, transform: Any, mode: str) -> None:
        self.split, self.transform, self.mode = split, _Seeded(transform), mode

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[torch.Tensor, int]:
        index, seed = key
        img, label = self.split.image(index)
        if img.mode != self.mode:
            img = img.convert(self.mode)
        x = self.transform(img, seed) if seed is not None else self.transform.transform(img)
        return x, label

    def __len__(self) -> int:
        return len(self.split)


class _Keys:
    """A sampler whose keys are set before every pass (so one ``DataLoader`` with persistent workers
    serves every epoch: the sampler is iterated in the training process)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int | None]] = []

    def __iter__(self) -> Iterator[tuple[int, int | None]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _image_seeds(seed: int, epoch: int, rank: int, count: int) -> np.ndarray:
    gen = np.random.Generator(np.random.PCG64([int(seed) % 2**32, int(epoch), int(rank), 0x7A1]))
    return gen.integers(0, 2**31 - 1, size=count, dtype=np.int64)


class TimmFeed:
    """Batches of the timm pipeline: timm's per-image transforms in ``DataLoader`` workers.

    Args:
        data: The dataset (its splits' ``image(i)``).
        train_transform, eval_transform: From :func:`~archsearch.train.factories.create_transforms`.
        channels: The model's input channels (images are converted to ``L`` or ``RGB``).
        batch_size: Images per step.
        eval_batch_size: Images per evaluation batch (default ``batch_size``).
        seed, rank: Derive every image's augmentation seed.
        device: Where batches go (pinned memory and channels-last on CUDA).
        workers: Loader processes (0: in the training process).
    """

    def __init__(self, data: ImageData, train_transform: Any, eval_transform: Any, *, channels: int, batch_size: int,
                 seed: int, rank: int, device: torch.device, workers: int, channels_last: bool = False,
                 eval_batch_size: int | None = None) -> None:
        from torch.utils.data import DataLoader

        mode = "L" if channels == 1 else "RGB"
        self.data, self.batch_size, self.seed, self.rank, self.device = data, batch_size, seed, rank, device
        self.channels_last, self.epoch, self.workers = channels_last, 0, workers
        self.train_keys, self.eval_keys = _Keys(), _Keys()
        common: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda",
                                  "persistent_workers": workers > 0}
        train_view, eval_view = _View(data.train, train_transform, mode), _View(data.test, eval_transform, mode)
        self.train_loader = DataLoader(train_view, batch_size=batch_size,  # type: ignore[arg-type]
                                       sampler=self.train_keys, **common)
        self.eval_loader = DataLoader(eval_view, batch_size=eval_batch_size or batch_size,  # type: ignore[arg-type]
                                      sampler=self.eval_keys, **common)

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state(self) -> dict[str, Any]:
        return {}  # every draw follows from (seed, epoch, rank, position)

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def batches(self, indices: Sequence[int], start: int, targets: Any = None,
                epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        seeds = _image_seeds(self.seed, self.epoch, self.rank, len(indices))
        first = start * self.batch_size
        self.train_keys.keys = [(int(i), int(s)) for i, s in zip(indices[first:], seeds[first:])]
        batches = iter(self.train_loader)
        while True:
            saved = _global_rng() if self.workers == 0 else None
            try:
                x, labels = next(batches)
            except StopIteration:
                return
            finally:
                if saved is not None:
                    _set_global_rng(saved)
            yield self._to_device(x), labels.long().to(self.device, non_blocking=True), None

    def eval_batches(self, rank: int, world: int, batch_size: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test split's slice ``rank::world`` (the batch size was fixed when the loader was made)."""
        self.eval_keys.keys = [(i, None) for i in range(rank, len(self.data.test), world)]
        for x, labels in self.eval_loader:
            yield self._to_device(x), labels.long().to(self.device, non_blocking=True)
