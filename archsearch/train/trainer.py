"""The trainer: one code path on CPU and CUDA, single process or DDP, resumable epoch by epoch.

* Device ``auto|cpu|cuda``; on CUDA: autocast in bf16 or fp16 (fp16 with a ``GradScaler``),
  channels-last tensors, optional ``torch.compile``. On CPU the same calls run with autocast and
  the scaler disabled.
* DDP under ``torchrun``: when ``WORLD_SIZE`` > 1 the process group is initialised from the
  environment (gloo on CPU, nccl on CUDA), each rank trains on a ``DistributedSampler`` shard and
  evaluates a slice of the test split; sums are all-reduced. Rank 0 writes checkpoints.
* After each epoch a checkpoint (model, optimizer, scheduler, scaler, epoch, history and RNG states,
  all tensors or plain types so ``torch.load(weights_only=True)`` reads it) is written atomically;
  :func:`train` resumes from it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from archsearch.errors import SpecError
from archsearch.train.datasets import BatchTransform, ImageData
from archsearch.train.recipes import Recipe, lr_factor
from archsearch.train.timing import check_statistic, time_forwards

__all__ = ["EpochRecord", "TargetProvider", "TrainResult", "init_distributed", "measure_latency", "peak_memory_bytes",
           "resolve_device", "soft_cross_entropy", "train"]

DeviceName = Literal["auto", "cpu", "cuda"]
AmpMode = Literal["auto", "bf16", "fp16", "off"]
CHECKPOINT_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """Metrics of one finished epoch (``epoch`` counts from 1); the test figures are NaN on an epoch that
    was not evaluated (:func:`train`'s ``eval_every``)."""

    epoch: int
    train_loss: float
    test_loss: float
    top1: float
    top5: float
    lr: float
    time_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run measured.

    Attributes:
        top1: Final test top-1 accuracy in [0, 1].
        top5: Final test top-5 accuracy (top-k with k = min(5, classes)).
        test_loss: Final test cross-entropy (without label smoothing).
        history: One :class:`EpochRecord` per epoch.
        train_time_s: Seconds spent in the training steps of all epochs, resumed ones included.
        images_per_s: Training images per second (all ranks).
        peak_memory_bytes: CUDA ``max_memory_allocated``, or on CPU the process's RSS high-water mark.
        latency_ms: Batch-1 forward time in eval mode, the ``latency_statistic`` of its timed calls
            (None when not measured).
        device: The device trained on (``cpu``, ``cuda:0`` ...).
        amp: Autocast dtype used (``off``, ``bf16``, ``fp16``).
        world_size: DDP processes.
        resumed_from: Epochs already done in the checkpoint this run resumed from (0: fresh).
        params: Parameters of the trained model.
        latency_statistic: What ``latency_ms`` keeps of its timed calls (``median``, ``p25``, ``min``).
    """

    top1: float
    top5: float
    test_loss: float
    history: tuple[EpochRecord, ...]
    train_time_s: float
    images_per_s: float
    peak_memory_bytes: int
    latency_ms: float | None
    device: str
    amp: str
    world_size: int
    resumed_from: int
    params: int
    latency_statistic: str = "median"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["history"] = [h.to_dict() for h in self.history]
        return out

    def metrics(self) -> dict[str, Any]:
        """The figures a study records for a trained candidate (``validate`` and ``worker`` alike)."""
        return {
            "top1": self.top1, "top5": self.top5, "test_loss": self.test_loss, "latency_ms": self.latency_ms,
            "latency_statistic": self.latency_statistic, "train_time_s": self.train_time_s, "images_per_s": self.images_per_s,
            "peak_memory_bytes": self.peak_memory_bytes, "epochs": len(self.history), "device": self.device,
            "amp": self.amp, "world_size": self.world_size, "resumed_from": self.resumed_from,
            "history": [h.to_dict() for h in self.history], "trained_params": self.params,
        }


class TargetProvider(Protocol):
    """Per-batch training targets in place of the dataset's labels (distillation).

    Called with the epoch (from 0) and the training-split indices of a batch; returns the images'
    int32 augmentation seeds, shape (N,), which the trainer replays through
    :class:`~archsearch.train.datasets.BatchTransform` instead of its own draws, and soft targets
    (N, classes) whose rows sum to 1. Both on the CPU or the training device.
    """

    def __call__(self, epoch: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_c targets[c] * log_softmax(logits)[c]`` (in float32)."""
    return -(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error.

    Raises:
        SpecError: Unknown name, or CUDA asked for and not available.
    """
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise SpecError(f"--device: expected auto, cpu or cuda, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"--device {device}: no CUDA device is available (torch.cuda.is_available() is False); "
                        "use --device cpu or auto")
    if device == "cuda" and _world()[1] > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return torch.device(device)


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise SpecError(f"amp: expected auto, bf16, fp16 or off, got {amp!r}")
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Initialises the process group from torchrun's environment when WORLD_SIZE > 1."""
    rank, world = _world()
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: ``max_memory_allocated``; CPU: the process's resident-set high-water mark (Linux: KiB)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def measure_latency(model: nn.Module, input_size: Sequence[int], *, device: torch.device,
                    amp_dtype: torch.dtype | None = None, runs: int = 30, warmup: int = 10,
                    statistic: str = "median") -> float:
    """Batch-1 forward time in milliseconds (eval mode, no grad): the ``statistic`` (default the median)
    of ``max(30, runs)`` timed calls, after ``warmup`` untimed calls
    (:func:`archsearch.train.timing.time_forwards`: ``torch.utils.benchmark.Timer``, which synchronises
    CUDA, at the process's thread count). On CUDA the input is channels-last."""
    x = torch.randn(1, *input_size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return time_forwards([(model, x)], runs=max(30, runs), warmup=warmup, rounds=1, statistic=statistic,
                         autocast=amp_dtype)[0]


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = _param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(recipe.momentum, 0.999))


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill during the save leaves the previous checkpoint intact


def _load_checkpoint(path: Path | None, key: str) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("key") != key:
        return None  # another run's checkpoint: start afresh rather than mix
    return state


class _Progress:
    """A rich progress bar over the batches of each epoch (a no-op when disabled)."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=True)
        self.epochs, self.task = epochs, None

    def __enter__(self) -> "_Progress":
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def epoch(self, epoch: int, total: int) -> None:
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {epoch}/{self.epochs}", total=total, info="")

    def advance(self, loss: float | None = None) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, advance=1, info="" if loss is None else f"loss {loss:.3f}")


def train(
    model: nn.Module,
    data: ImageData,
    recipe: Recipe,
    *,
    seed: int = 0,
    device: DeviceName | str = "auto",
    amp: AmpMode = "auto",
    compile: bool = False,
    checkpoint: str | Path | None = None,
    key: str = "",
    callbacks: Sequence[Callable[[EpochRecord], None]] = (),
    progress: bool = False,
    latency: bool = True,
    max_batches: int | None = None,
    targets: TargetProvider | None = None,
    latency_statistic: str = "median",
    eval_every: int = 1,
) -> TrainResult:
    """Trains ``model`` on ``data`` with ``recipe`` and evaluates it after every epoch.

    Args:
        model: A module with timm's ``pretrained_cfg["input_size"]`` = (C, H, W); its classifier must
            have ``data.info.num_classes`` outputs. Trained in place.
        data: The dataset.
        recipe: Hyper-parameters.
        seed: Seeds weights-independent randomness: shuffling and augmentation (per epoch), dropout.
        device: ``auto``, ``cpu`` or ``cuda``.
        amp: Autocast on CUDA: ``auto`` (bf16 where supported, else fp16), ``bf16``, ``fp16`` or ``off``.
        compile: Run the training step through ``torch.compile``.
        checkpoint: File written after every epoch and resumed from when it holds ``key``'s state.
        key: Identifies the run in its checkpoint (a checkpoint of another key is ignored).
        callbacks: Called with each epoch's record after its checkpoint is written; an exception
            raised there stops training with the epoch saved.
        progress: Show a rich progress bar (rank 0).
        latency: Measure batch-1 latency at the end (rank 0).
        latency_statistic: What the latency keeps of its timed calls (see :func:`measure_latency`).
        max_batches: Train on at most this many batches per epoch (tests and smoke runs).
        targets: Soft targets per batch (e.g. a :class:`~archsearch.train.teacher.TeacherCache`): the loss
            becomes :func:`soft_cross_entropy` against them (the recipe's label smoothing does not apply)
            and, when the recipe augments, every image's crop and flip are replayed from the seed the
            provider gives. Evaluation still scores the true labels.
        eval_every: Evaluate on the test split after every ``eval_every``-th epoch and always after
            the last one; the other epochs record NaN test figures. Training is unchanged (evaluation
            draws no random numbers and leaves BatchNorm statistics alone), so the final result is the
            same for every value: on a CPU, evaluating a 10,000-image test split after each short
            epoch is about a third of the run.

    Returns:
        The :class:`TrainResult`.
    """
    check_statistic(latency_statistic, "latency_statistic")  # before anything trains
    if not isinstance(eval_every, int) or isinstance(eval_every, bool) or eval_every < 1:
        raise SpecError(f"eval_every: expected an integer >= 1, got {eval_every!r}")
    dev = resolve_device(str(device))
    rank, world = init_distributed(dev)
    amp_dtype = _amp_dtype(amp, dev)
    channels, side = model.pretrained_cfg["input_size"][0], model.pretrained_cfg["input_size"][-1]
    on_cuda = dev.type == "cuda"
    transform = BatchTransform(data.info, channels=channels, resolution=side, device=dev, channels_last=on_cuda)
    ckpt_path = Path(checkpoint) if checkpoint is not None else None

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    model.to(dev)
    if on_cuda:
        model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(dev)
    optimizer = _optimizer(model, recipe)

    from torch.utils.data.distributed import DistributedSampler

    n_train = len(data.train)
    per_rank = math.ceil(n_train / world)
    drop_last = per_rank >= recipe.batch_size
    steps_per_epoch = per_rank // recipe.batch_size if drop_last else math.ceil(per_rank / recipe.batch_size)
    if max_batches is not None:
        steps_per_epoch = min(steps_per_epoch, max_batches)
    total = steps_per_epoch * recipe.epochs
    warmup = round(recipe.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        return lr_factor(step, total_steps=total, warmup_steps=warmup, warmup_start=recipe.warmup_start,
                         min_lr_ratio=recipe.min_lr_ratio)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)

    history: list[EpochRecord] = []
    start_epoch, train_time, train_images = 0, 0.0, 0
    state = _load_checkpoint(ckpt_path, key)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start_epoch, train_time, train_images = state["epoch"], state["train_time_s"], state["train_images"]
        history = [EpochRecord(**h) for h in state["history"]]
    resumed_from = start_epoch

    step_model: nn.Module = model
    if world > 1:
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if on_cuda else None)
    if compile:
        step_model = torch.compile(step_model)  # type: ignore[assignment]
    sampler = DistributedSampler(range(n_train), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    autocast = torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    with _Progress(progress and rank == 0, recipe.epochs) as bar:
        for epoch in range(start_epoch, recipe.epochs):
            sampler.set_epoch(epoch)
            gen = torch.Generator(device=dev).manual_seed(seed * 100_003 + epoch * 1_009 + rank)
            indices = list(sampler)[:steps_per_epoch * recipe.batch_size] if drop_last else list(sampler)
            bar.epoch(epoch + 1, steps_per_epoch)
            model.train()
            loss_sum = torch.zeros((), device=dev)
            steps, seen = 0, 0
            if on_cuda:
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for images, labels in data.train.batches(indices, recipe.batch_size):
                if steps == steps_per_epoch:
                    break
                if targets is None:
                    x = transform(images, train=True, generator=gen if recipe.augment else None)
                    y = labels.to(dev, non_blocking=True)
                    with autocast:
                        loss = criterion(step_model(x), y)
                else:
                    batch_idx = torch.as_tensor(indices[steps * recipe.batch_size:(steps + 1) * recipe.batch_size])
                    seeds, y = targets(epoch, batch_idx)
                    x = transform(images, train=True, seeds=seeds if recipe.augment else None)
                    y = y.to(dev, non_blocking=True)
                    with autocast:
                        loss = soft_cross_entropy(step_model(x), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                loss_sum += loss.detach().float()
                steps += 1
                seen += len(y)
                bar.advance(loss.item() if bar.bar is not None and steps % 10 == 0 else None)
            if on_cuda:
                torch.cuda.synchronize(dev)
            epoch_time = time.perf_counter() - t0
            # on the device: nccl reduces CUDA tensors only
            totals = torch.tensor([loss_sum.item(), float(steps), float(seen)], dtype=torch.float64, device=dev)
            if world > 1:
                dist.all_reduce(totals)
                _average_buffers(model, world)
            totals = totals.cpu()
            train_time += epoch_time
            train_images += int(totals[2])
            if (epoch + 1) % eval_every == 0 or epoch + 1 == recipe.epochs:
                test_loss, top1, top5 = _evaluate(model, data, transform, autocast, rank=rank, world=world,
                                                  batch_size=max(recipe.batch_size, 256))
            else:
                test_loss = top1 = top5 = math.nan
            record = EpochRecord(epoch + 1, float(totals[0] / max(totals[1], 1)), test_loss, top1, top5,
                                 float(scheduler.get_last_lr()[0]), epoch_time)
            history.append(record)
            if ckpt_path is not None and rank == 0:
                _save_atomic({
                    "format": CHECKPOINT_FORMAT, "key": key, "epoch": epoch + 1, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "rng": _rng_state(), "train_time_s": train_time,
                    "train_images": train_images, "history": [h.to_dict() for h in history],
                }, ckpt_path)
            if world > 1:
                dist.barrier()
            for callback in callbacks:
                callback(record)

    if not history:
        raise SpecError("recipe.epochs: nothing to train (0 epochs)")
    last = history[-1]
    lat = measure_latency(model, model.pretrained_cfg["input_size"], device=dev, amp_dtype=amp_dtype,
                          statistic=latency_statistic) if latency and rank == 0 else None
    return TrainResult(
        top1=last.top1, top5=last.top5, test_loss=last.test_loss, history=tuple(history), train_time_s=train_time,
        images_per_s=train_images / train_time if train_time > 0 else 0.0, peak_memory_bytes=peak_memory_bytes(dev),
        latency_ms=lat, device=str(dev), amp="off" if amp_dtype is None else str(amp_dtype).split(".")[-1].replace(
            "bfloat16", "bf16").replace("float16", "fp16"),
        world_size=world, resumed_from=resumed_from, params=sum(p.numel() for p in model.parameters()),
        latency_statistic=latency_statistic,
    )


@torch.no_grad()
def _average_buffers(model: nn.Module, world: int) -> None:
    """Averages floating buffers (BatchNorm running statistics) over the ranks.

    DDP broadcasts rank 0's buffers before each forward, so after the last step every rank holds
    statistics updated by its own last batch; averaging makes evaluation and checkpoints agree.
    """
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf.div_(world)


@torch.no_grad()
def _evaluate(model: nn.Module, data: ImageData, transform: BatchTransform, autocast: Any, *, rank: int, world: int,
              batch_size: int) -> tuple[float, float, float]:
    """Test loss, top-1 and top-k (k = min(5, classes)); each rank scores a slice, sums are all-reduced."""
    model.eval()
    dev = transform.device
    k = min(5, data.info.num_classes)
    sums = torch.zeros(4, dtype=torch.float64, device=dev)  # loss, top1, topk, count
    for images, labels in data.test.batches(range(rank, len(data.test), world), batch_size):
        x = transform(images, train=False)
        y = labels.to(dev)
        with autocast:
            logits = model(x)
        logits = logits.float()
        top = logits.topk(k, dim=1).indices
        hit = top == y[:, None]
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), hit[:, 0].sum().double(),
                             hit.any(1).sum().double(), torch.tensor(float(len(y)), device=dev, dtype=torch.float64)])
    if world > 1:
        reduced = sums.cpu() if dist.get_backend() == "gloo" else sums
        dist.all_reduce(reduced)
        sums = reduced.to(dev)
    loss, c1, ck, n = sums.tolist()
    model.train()
    return loss / max(n, 1), c1 / max(n, 1), ck / max(n, 1)
