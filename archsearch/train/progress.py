"""The trainer's progress reports: plain data, for whoever renders them (the CLI's bar, a log, a notebook).

:func:`~archsearch.train.train` calls a :class:`ProgressCallback` with a :class:`TrainProgress` after
training batches (every ``progress_every``-th one and the last of each epoch, ``kind="batch"``) and once
at the end of every epoch, after its evaluation and checkpoint (``kind="epoch"``, with the epoch's
:class:`~archsearch.train.EpochRecord`). Nothing here renders or imports torch, so a front end can
type against it cheaply::

    def show(p: TrainProgress) -> None:
        if p.kind == "batch":
            print(f"epoch {p.epoch}/{p.epochs} batch {p.batch}/{p.batches} loss {p.loss:.3f} "
                  f"acc {p.accuracy:.1%} {p.images_per_s:.0f} img/s ETA {p.eta_s:.0f} s", file=sys.stderr)

    train(model, data, recipe, on_progress=show)

Reports are made on rank 0 only (under DDP the batch figures are that rank's; the epoch's are
all-reduced). A callback that raises stops training; the last checkpoint written (the previous epoch's,
or the last ``checkpoint_every`` step's) is where a later run resumes. Reading the running loss copies one
number from the device, so on a GPU a report every batch costs one synchronisation per step: pass
``progress_every`` of 10 or more there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Protocol

__all__ = ["ProgressCallback", "TrainProgress"]


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    """Where a training run is.

    Attributes:
        kind: ``"batch"`` (during an epoch) or ``"epoch"`` (the epoch is finished, evaluated and saved).
        epoch: The current epoch, from 1.
        epochs: Epochs of the run.
        batch: Batches done in this epoch (``batches`` at the end of it).
        batches: Batches per epoch.
        step: Optimiser steps done in the whole run (resumed ones included).
        steps: Optimiser steps of the whole run.
        loss: Mean training loss over this epoch's batches so far (the loss the recipe optimises: with
            Mixup/CutMix or a teacher, against the soft targets). Under DDP: rank 0's batches during the
            epoch, every rank's at its end.
        accuracy: Training top-1 over this epoch's images so far, against the dataset's labels (with
            Mixup/CutMix the inputs are mixed, so it reads lower than on clean images).
        images_per_s: Training images per second over this epoch so far (all ranks).
        eta_s: Seconds of training left: the steps left at the mean time of the steps this call has
            trained so far (evaluations excluded; the first steps include compilation and worker start-up).
        lr: The learning rate of the first parameter group (the schedule's value).
        record: The epoch's :class:`~archsearch.train.EpochRecord` when ``kind == "epoch"``, else None.
    """

    kind: Literal["batch", "epoch"]
    epoch: int
    epochs: int
    batch: int
    batches: int
    step: int
    steps: int
    loss: float
    accuracy: float
    images_per_s: float
    eta_s: float
    lr: float
    record: Any = None

    @property
    def fraction(self) -> float:
        """Share of the run's steps done, in [0, 1]."""
        return self.step / self.steps if self.steps else 1.0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "record"}
        out["record"] = self.record.to_dict() if self.record is not None else None
        return out


class ProgressCallback(Protocol):
    """Receives the trainer's :class:`TrainProgress` reports (see the module docstring for when)."""

    def __call__(self, progress: TrainProgress) -> None: ...
