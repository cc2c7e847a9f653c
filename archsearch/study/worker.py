"""A worker: takes proposals from a search study's queue, trains and measures them, records the results.

This is the library call behind ``archsearch worker`` (and the local worker of ``archsearch
search``). Any number of workers on any number of machines share one study; see
:mod:`archsearch.study.queue` for the claim/heartbeat/retry protocol. Under ``torchrun`` rank 0
claims and records, every rank trains the same trial (DDP), the trial is broadcast to the others.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from archsearch.errors import ArchsearchError, SpecError
from archsearch.study.queue import SearchQueue, open_storage

__all__ = ["WorkerSummary", "run_worker", "train_proposal"]


@dataclasses.dataclass
class WorkerSummary:
    """What one worker did."""

    worker: str
    completed: int = 0
    failed: int = 0
    duplicates: int = 0
    trials: list[int] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_proposal(attrs: dict[str, Any], settings: dict[str, Any], *, device: str, checkpoint: Path,
                   data_cache: dict[Any, Any], data_dir: str | Path | None = None, progress: bool = False,
                   callbacks: tuple[Callable[[Any], None], ...] = (),
                   on_progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Builds, trains and measures one proposal with the search's settings; returns its metrics.

    Args:
        attrs: The trial's user attributes (``spec``, ``key``, ...).
        settings: The study's training settings (``dataset``, ``recipe_params``, ``seed``, ...).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        checkpoint: Epoch checkpoint of this proposal (resumed from when it holds the same key).
        data_cache: Datasets already loaded by this worker, by (name, resolution).
        data_dir: Dataset download cache.
        progress: Show the trainer's progress bar.
        callbacks: Called with every :class:`~archsearch.train.EpochRecord`.
        on_progress: Called with the trainer's :class:`~archsearch.train.progress.TrainProgress` reports.
    """
    import torch

    from archsearch import cost
    from archsearch.models import build_model
    from archsearch.space import spec_from_dict
    from archsearch.train import DatasetError, Recipe, get_dataset, train
    from archsearch.train.factories import model_kwargs

    spec = spec_from_dict(attrs["spec"])
    resolution = getattr(spec, "resolution", None)
    cache_key = (settings["dataset"], resolution)
    if cache_key not in data_cache:
        data_cache[cache_key] = get_dataset(settings["dataset"], seed=settings["seed"], root=data_dir, resolution=resolution)
    data = data_cache[cache_key]
    if resolution is not None and resolution > data.info.max_resolution:
        raise DatasetError(f"spec {attrs.get('name')}: resolution {resolution} does not fit {data.info.name} "
                           f"(accepted up to {data.info.max_resolution} px); search with --resolution")
    trained = spec.replace(num_classes=data.info.num_classes) if hasattr(spec, "num_classes") else spec
    torch.manual_seed(settings["seed"])
    recipe = Recipe(**settings["recipe_params"])
    model = build_model(spec, num_classes=data.info.num_classes, **model_kwargs(recipe, spec.family))
    result = train(model, data, recipe, seed=settings["seed"], device=device,
                   amp=settings.get("amp", "auto"), checkpoint=checkpoint, key=attrs["key"], callbacks=callbacks,
                   progress=progress, latency=settings.get("latency", True), max_batches=settings.get("max_batches"),
                   on_progress=on_progress)
    return {"macs": cost.macs(trained, with_head=True), "params": cost.params(trained, with_head=True),  # as `validate` records
            **result.metrics(), "checkpoint": str(checkpoint)}


def _checkpoint_dir(settings: dict[str, Any], study: str, given: str | Path | None) -> Path:
    if given is not None:
        return Path(given)
    run_dir = Path(settings.get("run_dir") or "")
    if settings.get("run_dir") and run_dir.is_dir() and os.access(run_dir, os.W_OK):
        return run_dir / "checkpoints"  # the search's own machine, or a shared filesystem
    return Path.cwd() / f"archsearch-checkpoints-{study}"


def run_worker(
    *,
    study: str,
    storage: str,
    device: str = "auto",
    max_trials: int | None = None,
    wait: bool = True,
    poll_s: float = 2.0,
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    max_retry: int = 3,
    checkpoint_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_idle: Callable[[dict[str, int]], None] | None = None,
    on_progress: Callable[[str, Any], None] | None = None,
) -> WorkerSummary:
    """Trains proposals of a search study until none is left (or ``max_trials`` are done).

    Args:
        study: Study name (``archsearch search`` prints it).
        storage: Optuna storage URL of the study.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        max_trials: Stop after this many trials (default: no limit).
        wait: While other workers' trials run, keep polling (one of them may die and come back as
            a retry); ``False`` stops as soon as nothing waits.
        poll_s: Seconds between looks at an empty queue.
        heartbeat_interval: Seconds between heartbeats of the running trial.
        grace_period: Seconds without a heartbeat after which another worker's trial is stale.
        max_retry: Times a stale trial is retried.
        checkpoint_dir: Epoch checkpoints (default: ``RUN_DIR/checkpoints`` of the search when this
            machine can write it, else ``./archsearch-checkpoints-STUDY``).
        data_dir: Dataset download cache.
        progress: Show the trainer's progress bar.
        on_start: Called with a trial's attributes (and ``trial``) when this worker claims it.
        on_result: Called with the trial's attributes, metrics, ``trial`` and ``status`` (``done``,
            ``failed`` or ``duplicate``) when it ends.
        on_idle: Called with :meth:`SearchQueue.counts` whenever the queue is empty.
        on_progress: Called with a label (``trial N NAME``) and each training progress report (rank 0).

    Returns:
        What this worker did (rank 0; other ranks count nothing).

    Raises:
        SpecError: No such study, not a search study, bad options.
    """
    from archsearch.train import init_distributed, resolve_device

    if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
        raise SpecError(f"--max-trials: expected an integer >= 1, got {max_trials!r}")
    dev = resolve_device(device)
    rank, world = init_distributed(dev)
    summary = WorkerSummary(worker=f"{socket.gethostname()}:{os.getpid()}")
    queue = None
    settings: dict[str, Any] = {}
    if rank == 0:
        queue = SearchQueue(name=study, storage=open_storage(storage, heartbeat_interval=heartbeat_interval,
                                                             grace_period=grace_period, max_retry=max_retry,
                                                             create=False))  # a worker never creates a database
        settings = queue.settings
    ckpt_dir: Path | None = None
    data_cache: dict[Any, Any] = {}
    _warm_up(queue, settings, data_cache, data_dir)
    while True:
        trial = None
        payload: dict[str, Any] | None = None
        if queue is not None:
            trial = _next_trial(queue, summary, max_trials=max_trials, wait=wait, poll_s=poll_s, on_idle=on_idle)
            payload = None if trial is None else {"attrs": dict(trial.user_attrs), "settings": settings}
        if world > 1:
            import torch.distributed as dist

            box = [payload]
            dist.broadcast_object_list(box, src=0)
            payload = box[0]
        if payload is None:
            return summary
        attrs, settings = payload["attrs"], payload["settings"]
        if ckpt_dir is None:
            ckpt_dir = _checkpoint_dir(settings, study, checkpoint_dir)
        if trial is not None and on_start:
            on_start({**attrs, "trial": trial.number})

        def record_epoch(epoch: Any, trial: Any = trial) -> None:
            if trial is not None:
                trial.report(epoch.top1, epoch.epoch)

        try:
            metrics = train_proposal(attrs, settings, device=str(dev), checkpoint=ckpt_dir / f"{attrs['key']}.pt",
                                     data_cache=data_cache, data_dir=data_dir, progress=progress and rank == 0,
                                     callbacks=(record_epoch,),
                                     on_progress=None if on_progress is None or trial is None else
                                     (lambda p, label=f"trial {trial.number} {attrs.get('name', '')}": on_progress(label, p)))
        except KeyboardInterrupt:
            if queue is not None and trial is not None:
                queue.requeue(trial, "interrupted (Ctrl-C)")
            raise
        except (ArchsearchError, RuntimeError, ValueError) as exc:  # this proposal cannot train; the next may
            if queue is None or trial is None:
                continue
            queue.fail(trial, f"{type(exc).__name__}: {exc}")
            summary.failed += 1
            if on_result:
                on_result({**attrs, "trial": trial.number, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            continue
        if queue is None or trial is None:
            continue
        done = queue.finish(trial, metrics)
        summary.trials.append(trial.number)
        if done:
            summary.completed += 1
        else:
            summary.duplicates += 1
        if on_result:
            on_result({**attrs, **metrics, "trial": trial.number, "status": "done" if done else "duplicate"})


def _warm_up(queue: SearchQueue | None, settings: dict[str, Any], data_cache: dict[Any, Any],
             data_dir: str | Path | None) -> None:
    """Imports the builders and loads the dataset before the first claim, so that a claimed trial's
    time is its training, not this process's start-up (rank 0 only; other ranks load on demand)."""
    import archsearch.models  # noqa: F401  (timm)
    from archsearch.train import get_dataset
    from optuna.trial import TrialState

    if queue is None:
        return
    waiting = queue.trials(TrialState.WAITING)
    spec = waiting[0].user_attrs.get("spec") if waiting else None
    if isinstance(spec, dict):
        resolution = spec.get("resolution")
        try:
            data_cache[(settings["dataset"], resolution)] = get_dataset(settings["dataset"], seed=settings["seed"],
                                                                        root=data_dir, resolution=resolution)
        except ArchsearchError:  # reported by the trial that needs it
            pass


def _next_trial(queue: SearchQueue, summary: WorkerSummary, *, max_trials: int | None, wait: bool, poll_s: float,
                on_idle: Callable[[dict[str, int]], None] | None) -> Any:
    """The next claimed trial, or ``None`` when this worker should stop."""
    while max_trials is None or len(summary.trials) + summary.failed < max_trials:
        queue.fail_stale()
        trial = queue.claim(summary.worker)
        if trial is not None:
            return trial
        counts = queue.counts()
        if on_idle:
            on_idle(counts)
        if counts["waiting"] == 0 and (counts["running"] == 0 or not wait):
            return None
        time.sleep(poll_s)
    return None
