"""What a training run reports: one :class:`EpochRecord` per epoch and the run's :class:`TrainResult`
(top-1/top-5 and the EMA's, losses, images/s, CPU and wall seconds, peak memory, latency), as plain data
that a study stores as trial attributes."""

from __future__ import annotations

import dataclasses
from typing import Any

_NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """Metrics of one finished epoch (``epoch`` counts from 1); the test figures are NaN on an epoch that
    was not evaluated (:func:`train`'s ``eval_every``), the EMA's NaN without EMA.

    Attributes:
        epoch: The epoch, from 1.
        train_loss: Mean training loss (the loss the recipe optimises).
        test_loss: Test cross-entropy (without label smoothing).
        top1, top5: Test accuracies (top-k with k = min(5, classes)).
        lr: The schedule's learning rate after the epoch's last step.
        time_s: Seconds of the epoch's training steps (evaluation excluded).
        train_top1: Training top-1 against the dataset's labels (of mixed images under Mixup/CutMix).
        ema_top1, ema_top5: Test accuracies of the EMA weights.
        images_per_s: Training images per second of the epoch (all ranks).
        cpu_time_s: CPU seconds this process spent in the epoch's training steps (``time.process_time``;
            loader workers not included).
    """

    epoch: int
    train_loss: float
    test_loss: float
    top1: float
    top5: float
    lr: float
    time_s: float
    train_top1: float = _NAN
    ema_top1: float = _NAN
    ema_top5: float = _NAN
    images_per_s: float = 0.0
    cpu_time_s: float = 0.0

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
        resumed_from: Epochs already done in the checkpoint this run resumed from (0: fresh; a checkpoint
            inside an epoch counts the epochs before it).
        params: Parameters of the trained model.
        latency_statistic: What ``latency_ms`` keeps of its timed calls (``median``, ``p25``, ``min``).
        ema_top1, ema_top5: Final test accuracies of the EMA weights (None without EMA).
        lr: The peak learning rate used (the recipe's, scaled to the global batch).
        steps: Optimiser updates of the run.
        train_cpu_s: CPU seconds of this process in the training steps of all epochs (rank 0's under DDP).
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
    ema_top1: float | None = None
    ema_top5: float | None = None
    lr: float | None = None
    steps: int = 0
    train_cpu_s: float = 0.0

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
            "ema_top1": self.ema_top1, "ema_top5": self.ema_top5, "lr": self.lr, "steps": self.steps,
            "train_cpu_s": self.train_cpu_s,
        }
