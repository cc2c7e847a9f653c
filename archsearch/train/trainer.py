"""The trainer: one loop on CPU and CUDA, single process or DDP, resumable at any checkpointed step.

The components are timm's, built from the recipe by :mod:`archsearch.train.factories` (optimiser,
per-update schedule, Mixup/CutMix, loss, EMA, transforms); batches come from
:mod:`archsearch.train.loaders`. What this module writes by hand is what timm's ``train.py`` keeps in a
script rather than a library: the loop itself, its checkpoints and resumption, DDP set-up, evaluation
and the measurements (the run's records in :mod:`archsearch.train.records`, the device, DDP, RNG and
checkpoint plumbing in :mod:`archsearch.train.runtime`).

* Device ``auto|cpu|cuda``; on CUDA: autocast in bf16 or fp16 (fp16 with a ``GradScaler``),
  channels-last tensors, optional ``torch.compile``. On CPU the same calls run with autocast and
  the scaler disabled.
* DDP under ``torchrun``: when ``WORLD_SIZE`` > 1 the process group is initialised from the
  environment (gloo on CPU, nccl on CUDA), each rank trains on its shard (``DistributedSampler``, or
  timm's ``RepeatAugSampler`` with repeated augmentation) and evaluates a slice of the test split;
  sums are all-reduced. Rank 0 writes checkpoints.
* Checkpoints are written atomically after every epoch and, with ``checkpoint_every``, every so many
  steps within one: model, optimiser, scheduler, scaler, EMA, the sampler's position (epoch and step)
  and, per rank, the feed's generator, the RNG states and the epoch's running sums; all tensors or plain
  types, so ``torch.load(weights_only=True)`` reads them. A resumed run continues with the same draws
  and ends with the same weights as an uninterrupted one.
* Progress goes to a :class:`~archsearch.train.progress.ProgressCallback` (per batch and per epoch)
  and per-epoch :class:`EpochRecord` callbacks; measurements: top-1/top-5 (and the EMA's), images/s,
  peak memory, batch-1 latency.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from archsearch.errors import SpecError
from archsearch.train import factories
from archsearch.train.datasets import BatchTransform, ImageData
from archsearch.train.loaders import BatchFeed, TimmFeed, epoch_shard
from archsearch.train.progress import ProgressCallback, TrainProgress
from archsearch.train.recipes import Recipe
from archsearch.train.records import EpochRecord, TrainResult
from archsearch.train.runtime import (
    CHECKPOINT_FORMAT,
    _amp_dtype,
    _average_buffers,
    _gather,
    _load_checkpoint,
    _rng_state,
    _save_atomic,
    _set_rng_state,
    init_distributed,
    measure_latency,
    peak_memory_bytes,
    resolve_device,
)
from archsearch.train.timing import check_statistic

__all__ = ["EpochRecord", "TargetProvider", "TrainResult", "init_distributed", "measure_latency", "peak_memory_bytes",
           "resolve_device", "soft_cross_entropy", "train"]

DeviceName = Literal["auto", "cpu", "cuda"]
AmpMode = Literal["auto", "bf16", "fp16", "off"]
_NAN = float("nan")


class TargetProvider(Protocol):
    """Per-batch training targets in place of the dataset's labels (distillation).

    Called with the epoch (from 0) and the training-split indices of a batch; returns the images'
    int32 augmentation seeds, shape (N,), which the trainer replays through
    :class:`~archsearch.train.datasets.BatchTransform` instead of its own draws, and soft targets
    (N, classes) whose rows sum to 1. Both on the CPU or the training device.
    """

    def __call__(self, epoch: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_c targets[c] * log_softmax(logits)[c]`` in float32 (timm's
    ``SoftTargetCrossEntropy``, the loss the trainer uses against soft targets)."""
    from timm.loss import SoftTargetCrossEntropy

    return SoftTargetCrossEntropy()(logits.float(), targets.float())


class _RichBar:
    """The rich progress bar of ``progress=True``, drawn from the trainer's progress reports (kept until
    the CLI renders reports itself)."""

    def __init__(self, epochs: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=True)
        self.epochs, self.task, self.epoch = epochs, None, 0

    def __enter__(self) -> "_RichBar":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, p: TrainProgress) -> None:
        if p.epoch != self.epoch or self.task is None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {p.epoch}/{self.epochs}", total=p.batches, info="")
            self.epoch = p.epoch
        self.bar.update(self.task, completed=p.batch, info=f"loss {p.loss:.3f} acc {p.accuracy:.1%}")


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


@torch.no_grad()
def _score(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], autocast: Any, *, num_classes: int,
           device: torch.device, world: int) -> tuple[float, float, float]:
    """Test loss, top-1 and top-k (k = min(5, classes)) over this rank's batches; sums all-reduced."""
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    k = min(5, num_classes)
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, topk, count
    for x, y in batches:
        with autocast:
            logits = model(x)
        logits = logits.float()
        hit = logits.topk(k, dim=1).indices == y[:, None]
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), hit[:, 0].sum().double(),
                             hit.any(1).sum().double(), torch.tensor(float(len(y)), device=device, dtype=torch.float64)])
    if world > 1:
        reduced = sums.cpu() if dist.get_backend() == "gloo" else sums
        dist.all_reduce(reduced)
        sums = reduced.to(device)
    loss, c1, ck, n = sums.tolist()
    model.train(was_training)
    return loss / max(n, 1), c1 / max(n, 1), ck / max(n, 1)


def _evaluate(model: nn.Module, data: ImageData, transform: BatchTransform, autocast: Any, *, rank: int, world: int,
              batch_size: int) -> tuple[float, float, float]:
    """Test loss, top-1 and top-k of ``model`` on ``data``'s test split through the batch pipeline's
    transform (for callers outside the trainer: pruning)."""
    batches = ((transform(images, train=False), labels.to(transform.device))
               for images, labels in data.test.batches(range(rank, len(data.test), world), batch_size))
    return _score(model, batches, autocast, num_classes=data.info.num_classes, device=transform.device, world=world)


def _check_args(recipe: Recipe, targets: Any, *, eval_every: int, checkpoint_every: int | None, progress_every: int,
                latency_statistic: str, workers: int | None) -> None:
    check_statistic(latency_statistic, "latency_statistic")  # before anything trains
    for name, value, low in (("eval_every", eval_every, 1), ("progress_every", progress_every, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SpecError(f"{name}: expected an integer >= {low}, got {value!r}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or isinstance(checkpoint_every, bool)
                                         or checkpoint_every < 1):
        raise SpecError(f"checkpoint_every: expected None or an integer >= 1 (steps), got {checkpoint_every!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise SpecError(f"workers: expected None or an integer >= 0, got {workers!r}")
    if recipe.distill and targets is None:
        raise SpecError(f"recipe {recipe.name!r} trains against a teacher's soft labels: give a teacher cache "
                        "(validate --distill CACHE)")
    if targets is not None and recipe.pipeline != "batch":
        raise SpecError(f"--distill: recipe {recipe.name!r} uses the timm pipeline, whose per-image augmentation a "
                        "teacher cache cannot replay; distil with a batch-pipeline recipe (quick, fmnist, tinyvit-distill)")
    if targets is not None and recipe.mixes:
        raise SpecError(f"--distill: recipe {recipe.name!r} mixes images (Mixup/CutMix), which a teacher cache's soft "
                        "labels of unmixed images cannot follow")


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
    on_progress: ProgressCallback | None = None,
    progress_every: int = 1,
    latency: bool = True,
    max_batches: int | None = None,
    targets: TargetProvider | None = None,
    latency_statistic: str = "median",
    eval_every: int = 1,
    checkpoint_every: int | None = None,
    workers: int | None = None,
) -> TrainResult:
    """Trains ``model`` on ``data`` with ``recipe`` and evaluates it after every epoch.

    Args:
        model: A module with timm's ``pretrained_cfg["input_size"]`` = (C, H, W); its classifier must
            have ``data.info.num_classes`` outputs. Trained in place.
        data: The dataset.
        recipe: Hyper-parameters (mapped onto timm's components by :mod:`archsearch.train.factories`).
        seed: Seeds weights-independent randomness: shuffling, augmentation, Mixup, dropout.
        device: ``auto``, ``cpu`` or ``cuda``.
        amp: Autocast on CUDA: ``auto`` (bf16 where supported, else fp16), ``bf16``, ``fp16`` or ``off``.
        compile: Run the training step through ``torch.compile``.
        checkpoint: File written after every epoch (and every ``checkpoint_every`` steps) and resumed
            from when it holds ``key``'s state.
        key: Identifies the run in its checkpoint (a checkpoint of another key is ignored).
        callbacks: Called with each epoch's record after its checkpoint is written; an exception
            raised there stops training with the epoch saved.
        progress: Show a rich progress bar (rank 0), drawn from the same reports as ``on_progress``.
        on_progress: Receives :class:`~archsearch.train.progress.TrainProgress` reports on rank 0: after
            every ``progress_every``-th batch and the last of each epoch, and at every epoch's end.
        progress_every: Batches between two batch reports (each costs a device synchronisation).
        latency: Measure batch-1 latency at the end (rank 0).
        latency_statistic: What the latency keeps of its timed calls (see :func:`measure_latency`).
        max_batches: Train on at most this many batches per epoch (tests and smoke runs).
        targets: Soft targets per batch (e.g. a :class:`~archsearch.train.teacher.TeacherCache`): the loss
            becomes the soft-target cross-entropy against them (the recipe's label smoothing does not apply)
            and, when the recipe augments, every image's crop and flip are replayed from the seed the
            provider gives. Needs a batch-pipeline recipe without Mixup/CutMix. Evaluation scores the
            true labels.
        eval_every: Evaluate on the test split after every ``eval_every``-th epoch and always after
            the last one; the other epochs record NaN test figures. Training is unchanged (evaluation
            draws no random numbers and leaves BatchNorm statistics alone), so the final result is the
            same for every value.
        checkpoint_every: Also write the checkpoint every this many steps within an epoch (None: at
            epoch ends only). A run resumed from such a checkpoint needs the same number of processes.
        workers: Loader processes of the timm pipeline (default: the dataset's ``workers``).

    Returns:
        The :class:`TrainResult`.

    Raises:
        SpecError: Bad arguments, a distillation the recipe cannot follow, a mid-epoch checkpoint of
            another number of processes.
    """
    _check_args(recipe, targets, eval_every=eval_every, checkpoint_every=checkpoint_every, progress_every=progress_every,
                latency_statistic=latency_statistic, workers=workers)
    dev = resolve_device(str(device))
    rank, world = init_distributed(dev)
    amp_dtype = _amp_dtype(amp, dev)
    channels, side = model.pretrained_cfg["input_size"][0], model.pretrained_cfg["input_size"][-1]
    on_cuda = dev.type == "cuda"
    num_classes = data.info.num_classes
    ckpt_path = Path(checkpoint) if checkpoint is not None else None

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    model.to(dev)
    if on_cuda:
        model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(dev)

    n_train = len(data.train)
    per_rank = len(epoch_shard(n_train, epoch=0, seed=seed, rank=rank, world=world, repeats=recipe.aug_repeats))
    drop_last = per_rank >= recipe.batch_size
    steps_per_epoch = per_rank // recipe.batch_size if drop_last else math.ceil(per_rank / recipe.batch_size)
    if max_batches is not None:
        steps_per_epoch = min(steps_per_epoch, max_batches)
    if steps_per_epoch < 1:
        raise SpecError(f"dataset {data.info.name}: no training batch ({n_train} images over {world} processes)")
    total_steps = steps_per_epoch * recipe.epochs
    peak_lr = recipe.scaled_lr(recipe.batch_size * world)

    optimizer = factories.create_optimizer(model, recipe, lr=peak_lr)
    scheduler = factories.create_scheduler(optimizer, recipe, steps_per_epoch=steps_per_epoch)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)
    ema = factories.create_ema(model, recipe)
    mixup = factories.create_mixup(recipe, num_classes) if targets is None else None
    criterion = factories.create_loss(recipe, soft_targets=targets is not None).to(dev)
    clip_params = None
    if recipe.clip_grad is not None:
        from timm.models import model_parameters
        from timm.utils import dispatch_clip_grad

        clip_params = list(model_parameters(model, exclude_head=recipe.clip_mode == "agc"))

    feed: BatchFeed | TimmFeed
    if recipe.pipeline == "batch":
        transform = BatchTransform(data.info, channels=channels, resolution=side, device=dev, channels_last=on_cuda)
        feed = BatchFeed(data, transform, batch_size=recipe.batch_size, augment=recipe.augment, seed=seed, rank=rank)
    else:
        mean, std = _stats_for(data, channels)
        train_tf, eval_tf = factories.create_transforms(recipe, model, mean=mean, std=std)
        feed = TimmFeed(data, train_tf, eval_tf, channels=channels, batch_size=recipe.batch_size, seed=seed, rank=rank,
                        device=dev, workers=data.workers if workers is None else workers, channels_last=on_cuda,
                        eval_batch_size=max(recipe.batch_size, 256))

    history: list[EpochRecord] = []
    start_epoch, start_step, train_time, train_images = 0, 0, 0.0, 0
    partial: dict[str, Any] | None = None
    state = _load_checkpoint(ckpt_path, key)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.module.load_state_dict(state["ema"])
        start_epoch, start_step = state["sampler"]["epoch"], state["sampler"]["step"]
        if start_step and (state["sampler"]["world"] != world or state["sampler"]["steps_per_epoch"] != steps_per_epoch):
            raise SpecError(f"checkpoint {ckpt_path}: saved inside epoch {start_epoch + 1} by {state['sampler']['world']} "
                            f"processes ({state['sampler']['steps_per_epoch']} steps an epoch); resume it with as many "
                            f"processes, or delete it to start afresh")
        ranks = state["ranks"]
        own = ranks[rank] if rank < len(ranks) else ranks[0]
        _set_rng_state(own["rng"])
        partial = own if start_step else None
        train_time, train_images = state["train_time_s"], state["train_images"]
        history = [EpochRecord(**h) for h in state["history"]]
    resumed_from = start_epoch
    global_step = start_epoch * steps_per_epoch + start_step
    scheduler.step_update(num_updates=global_step)

    step_model: nn.Module = model
    if world > 1:
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if on_cuda else None)
    if compile:
        step_model = torch.compile(step_model)  # type: ignore[assignment]
    autocast = torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    reporters: list[ProgressCallback] = []
    bar: Any = _NullContext()
    if rank == 0 and progress:
        bar = _RichBar(recipe.epochs)
        reporters.append(bar)
    if rank == 0 and on_progress is not None:
        reporters.append(on_progress)
    run = {"steps": 0, "time_s": 0.0}  # training steps and their seconds in this call (for the ETA)

    def report(kind: str, epoch: int, batch: int, sums: tuple[float, float, float, float], elapsed: float, running: float,
               record: Any = None) -> None:
        """``sums``: loss sum, steps, images, correct so far this epoch; ``running``: seconds of the open timing segment."""
        loss_sum, steps, seen, correct = sums
        step_time = (run["time_s"] + running) / run["steps"] if run["steps"] else 0.0
        group = optimizer.param_groups[0]
        progress_ = TrainProgress(
            kind=kind, epoch=epoch + 1, epochs=recipe.epochs, batch=batch, batches=steps_per_epoch, step=global_step,
            steps=total_steps, loss=loss_sum / max(steps, 1), accuracy=correct / max(seen, 1),
            images_per_s=seen / max(elapsed, 1e-9), eta_s=(total_steps - global_step) * step_time,
            lr=group["lr"] / group.get("lr_scale", 1.0), record=record)
        for reporter in reporters:
            reporter(progress_)

    def save(epoch: int, step: int, acc: dict[str, Any] | None) -> None:
        if ckpt_path is None:
            return
        own = {"rng": _rng_state(), "feed": feed.state() if acc is not None else {},
               "acc": None if acc is None else {**acc, "loss": acc["loss"].cpu(), "correct": acc["correct"].cpu()}}
        ranks = _gather(own, world)
        if rank == 0:
            _save_atomic({
                "format": CHECKPOINT_FORMAT, "key": key, "recipe": recipe.to_dict(), "epoch": epoch,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "ema": ema.module.state_dict() if ema is not None else None,
                "sampler": {"epoch": epoch, "step": step, "world": world, "steps_per_epoch": steps_per_epoch,
                            "seed": seed, "repeats": recipe.aug_repeats, "global_step": epoch * steps_per_epoch + step},
                "ranks": ranks, "train_time_s": train_time, "train_images": train_images,
                "history": [h.to_dict() for h in history],
            }, ckpt_path)
        if world > 1:
            dist.barrier()

    with bar:
        for epoch in range(start_epoch, recipe.epochs):
            indices = epoch_shard(n_train, epoch=epoch, seed=seed, rank=rank, world=world,
                                  repeats=recipe.aug_repeats)[:steps_per_epoch * recipe.batch_size]
            feed.start_epoch(epoch)
            first = start_step if epoch == start_epoch else 0
            acc: dict[str, Any] = {"loss": torch.zeros((), device=dev), "correct": torch.zeros((), device=dev, dtype=torch.long),
                                   "steps": 0, "seen": 0, "time_s": 0.0, "cpu_s": 0.0}
            if first and partial is not None:
                feed.load_state(partial["feed"])
                saved = partial["acc"]
                acc = {**saved, "loss": saved["loss"].to(dev), "correct": saved["correct"].to(dev)}
            model.train()
            step = first
            if on_cuda:
                torch.cuda.synchronize(dev)
            t0, c0 = time.perf_counter(), time.process_time()
            for x, labels, soft in feed.batches(indices, first, targets, epoch):
                if step == steps_per_epoch:
                    break
                if soft is not None:
                    y = soft
                elif mixup is not None:
                    if len(x) % 2:  # timm's Mixup pairs images: an odd last batch loses one
                        x, labels = x[:-1], labels[:-1]
                    x, y = mixup(x, labels)
                else:
                    y = labels
                with autocast:
                    out = step_model(x)
                    loss = criterion(out, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if clip_params is not None:
                    scaler.unscale_(optimizer)
                    dispatch_clip_grad(clip_params, value=recipe.clip_grad, mode=recipe.clip_mode)
                scaler.step(optimizer)
                scaler.update()
                global_step += 1
                step += 1
                scheduler.step_update(num_updates=global_step)
                if ema is not None:
                    ema.update(model, step=global_step)
                acc["loss"] += loss.detach().float()
                acc["correct"] += (out.detach().argmax(1) == labels).sum()
                acc["steps"] += 1
                acc["seen"] += len(labels)
                run["steps"] += 1
                if reporters and (step % progress_every == 0 or step == steps_per_epoch):
                    sums = (acc["loss"].item(), acc["steps"], acc["seen"] * world, acc["correct"].item() * world)
                    running = time.perf_counter() - t0
                    report("batch", epoch, step, sums, acc["time_s"] + running, running)
                if checkpoint_every and step % checkpoint_every == 0 and step < steps_per_epoch:
                    if on_cuda:
                        torch.cuda.synchronize(dev)
                    run["time_s"] += time.perf_counter() - t0
                    acc["time_s"] += time.perf_counter() - t0
                    acc["cpu_s"] += time.process_time() - c0
                    save(epoch, step, acc)
                    t0, c0 = time.perf_counter(), time.process_time()
            if on_cuda:
                torch.cuda.synchronize(dev)
            run["time_s"] += time.perf_counter() - t0
            acc["time_s"] += time.perf_counter() - t0
            acc["cpu_s"] += time.process_time() - c0
            # on the device: nccl reduces CUDA tensors only
            totals = torch.tensor([acc["loss"].item(), float(acc["steps"]), float(acc["seen"]), float(acc["correct"].item())],
                                  dtype=torch.float64, device=dev)
            if world > 1:
                dist.all_reduce(totals)
                _average_buffers(model, world)
                if ema is not None:
                    _average_buffers(ema.module, world)
            totals = totals.cpu()
            epoch_time = acc["time_s"]
            train_time += epoch_time
            train_images += int(totals[2])
            test_loss = top1 = top5 = ema1 = ema5 = _NAN
            if (epoch + 1) % eval_every == 0 or epoch + 1 == recipe.epochs:
                test_loss, top1, top5 = _score(model, feed.eval_batches(rank, world, max(recipe.batch_size, 256)), autocast,
                                               num_classes=num_classes, device=dev, world=world)
                if ema is not None:
                    _, ema1, ema5 = _score(ema.module, feed.eval_batches(rank, world, max(recipe.batch_size, 256)), autocast,
                                           num_classes=num_classes, device=dev, world=world)
            group = optimizer.param_groups[0]
            record = EpochRecord(epoch + 1, float(totals[0] / max(totals[1], 1)), test_loss, top1, top5,
                                 float(group["lr"] / group.get("lr_scale", 1.0)), epoch_time,
                                 train_top1=float(totals[3] / max(totals[2], 1)), ema_top1=ema1, ema_top5=ema5,
                                 images_per_s=float(totals[2]) / epoch_time if epoch_time > 0 else 0.0,
                                 cpu_time_s=acc["cpu_s"])
            history.append(record)
            save(epoch + 1, 0, None)
            for callback in callbacks:
                callback(record)
            if reporters:
                report("epoch", epoch, steps_per_epoch, (float(totals[0]), float(totals[1]), float(totals[2]),
                                                         float(totals[3])), epoch_time, 0.0, record)
            start_step, partial = 0, None

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
        latency_statistic=latency_statistic, ema_top1=None if ema is None else last.ema_top1,
        ema_top5=None if ema is None else last.ema_top5, lr=peak_lr, steps=total_steps,
        train_cpu_s=sum(h.cpu_time_s for h in history),
    )


def _stats_for(data: ImageData, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The dataset's normalisation statistics for a model of ``channels`` inputs (grey repeated to RGB,
    RGB averaged to grey, as the images are converted)."""
    mean, std = tuple(data.info.mean), tuple(data.info.std)
    if len(mean) == channels:
        return mean, std
    if len(mean) == 1:
        return mean * channels, std * channels
    return (sum(mean) / len(mean),), (sum(std) / len(std),)
