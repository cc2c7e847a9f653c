"""Validating a run's candidates: build, train, measure, and record each one as a study trial.

This is the library call behind ``archsearch validate``. Every candidate is checked against the
dataset before anything trains; a candidate whose key (spec, recipe, dataset, seed) already has a
completed trial is not trained again (the key: spec with its resolution, recipe with its epochs,
dataset, seed, ``max_batches`` and teacher cache, :func:`~archsearch.study.candidate_key`); ``seeds``
trains every candidate once per seed; an interrupted candidate resumes from its epoch checkpoint in
``RUN_DIR/checkpoints/KEY.pt``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from archsearch.errors import SpecError
from archsearch.space.records import ROW_KEYS, load_run
from archsearch.study.store import ValidationStudy, candidate_key, default_storage

__all__ = ["ROW_KEYS", "load_results", "run_location", "validate_run"]


def run_location(source: str | Path) -> tuple[Path, dict[str, Any]]:
    """The run directory of a run directory or ``candidates.json``, and the run's record."""
    data = load_run(source)
    path = Path(source)
    return (path if path.is_dir() else path.parent), data


def _trained_spec(spec: Any, num_classes: int) -> Any:
    names = {f.name for f in dataclasses.fields(spec)}
    return spec.replace(num_classes=num_classes) if "num_classes" in names else spec


def _row(attrs: dict[str, Any], status: str) -> dict[str, Any]:
    row = {k: attrs.get(k) for k in ROW_KEYS}
    row["status"] = status
    return row


def validate_run(
    source: str | Path,
    *,
    dataset: str = "digits",
    recipe: str = "quick",
    device: str = "auto",
    top_k: int | None = None,
    storage: str | None = None,
    seed: int = 0,
    epochs: int | None = None,
    amp: str = "auto",
    compile: bool = False,
    data_dir: str | Path | None = None,
    max_batches: int | None = None,
    latency: bool = True,
    latency_statistic: str = "median",
    progress: bool = False,
    callbacks: Sequence[Callable[[Any], None]] = (),
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[str, Any], None] | None = None,
    distill: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    eval_every: int = 1,
) -> list[dict[str, Any]]:
    """Trains and measures the first ``top_k`` candidates of a run and records them in its study.

    Args:
        source: A run directory written by ``archsearch solve --out`` or a ``candidates.json``
            (results go to its directory).
        dataset: Dataset name (see :func:`archsearch.train.list_datasets`).
        recipe: Recipe name (see :func:`archsearch.train.list_recipes`).
        device: ``auto``, ``cpu`` or ``cuda``.
        top_k: Candidates to validate (default all).
        storage: Optuna storage URL (default ``sqlite:///RUN_DIR/study.db``).
        seed: Seed of the data split, initial weights, shuffling and augmentation.
        seeds: Train every candidate once per seed (in place of ``seed``); candidates are the outer
            loop, so the first candidate's seeds finish first.
        epochs: Overrides the recipe's epochs (the warm-up keeps its share of the schedule).
        amp: Autocast mode on CUDA (``auto``, ``bf16``, ``fp16``, ``off``).
        compile: Train through ``torch.compile``.
        data_dir: Download cache of the datasets.
        max_batches: At most this many training batches per epoch (smoke runs; part of the cache key).
        eval_every: Evaluate the test split every this many epochs, and always after the last one.
        latency: Measure batch-1 latency after training.
        latency_statistic: What the latency keeps of its timed calls (``median``, ``p25`` or ``min``; see
            :mod:`archsearch.train.timing`).
        progress: Show progress bars.
        callbacks: Called with every :class:`~archsearch.train.EpochRecord` after its checkpoint.
        on_result: Called with each candidate's row as soon as it is known.
        on_progress: Called with a label (``NAME seed S (i/n)``) and each
            :class:`~archsearch.train.progress.TrainProgress` report of that candidate's training.
        distill: A teacher cache (``archsearch teacher --out``): every candidate trains against its soft
            labels with the cached augmentation replayed. Checked against the dataset, recipe and epochs
            before anything trains; its id enters the candidate key and the trial's attributes.

    Returns:
        One row per candidate and seed (keys :data:`ROW_KEYS`), ``status`` ``trained``, ``resumed`` or
        ``cached``. ``design`` is the candidate's identity across seeds (the hash of its spec, recipe,
        dataset, ``max_batches`` and teacher cache), ``kind`` what produced it (``designed``,
        ``baseline``, ``random``, ...).

    Raises:
        SpecError: Bad input (no such run, unknown dataset or recipe, a spec that does not fit the
            dataset, no GPU for ``cuda``). Nothing has trained when it is raised.
        CacheError: A teacher cache that does not fit the dataset, recipe or epochs (raised before training).
        StorageError: A storage that cannot be used (checked before anything is loaded or trained).
    """
    from archsearch.study.storage import check_storage

    run_dir, record = run_location(source)
    url = storage or default_storage(run_dir)
    flag = "--storage" if storage else "study"
    check_storage(url, create=True, connect=True, flag=flag)  # a bad file, URL or login fails before torch or data

    import torch

    from archsearch import cost
    from archsearch.models import build_model
    from archsearch.space import spec_from_dict
    from archsearch.train import DatasetError, TeacherCache, get_dataset, get_recipe, init_distributed, resolve_device, train
    from archsearch.train.factories import model_kwargs

    rec = get_recipe(recipe)
    if epochs is not None:
        if not isinstance(epochs, int) or epochs < 1:
            raise SpecError(f"--epochs: expected an integer >= 1, got {epochs!r}")
        rec = rec.for_epochs(epochs)
    if top_k is not None and top_k < 1:
        raise SpecError(f"--top-k: expected an integer >= 1, got {top_k}")
    from archsearch.train.timing import check_statistic

    check_statistic(latency_statistic, "--latency-statistic")
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise SpecError(f"--max-batches: expected an integer >= 1, got {max_batches!r}")
    if not isinstance(eval_every, int) or eval_every < 1:
        raise SpecError(f"--eval-every: expected an integer >= 1, got {eval_every!r}")
    seed_list = [seed] if seeds is None else list(dict.fromkeys(seeds))
    if not seed_list or any(not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**32 for s in seed_list):
        raise SpecError(f"--seeds: expected integers in [0, 2**32), got {seeds!r}")
    dev = resolve_device(device)
    candidates = record["candidates"][:top_k]
    if not candidates:
        raise SpecError(f"run: {source} holds no candidates")
    specs = [spec_from_dict(c["spec"]) for c in candidates]
    resolutions = [getattr(s, "resolution", None) for s in specs]
    data = get_dataset(dataset, seed=seed_list[0], root=data_dir, resolution=resolutions[0])
    info = data.info
    for spec, res in zip(specs, resolutions):
        with torch.device("meta"):  # no weights: only the input the built model expects
            channels = build_model(spec, num_classes=info.num_classes).pretrained_cfg["input_size"][0]
        if channels not in (1, 3, info.channels):
            raise DatasetError(f"spec {getattr(spec, 'name', '') or spec.family}: {channels} input channels do not fit "
                               f"{info.name} ({info.channels}-channel images; specs with 1 or 3 channels are adapted)")
        if res is not None and res > info.max_resolution:
            raise DatasetError(f"spec {getattr(spec, 'name', '') or spec.family}: resolution {res} does not fit {info.name} "
                               f"({info.resolution} px images; accepted up to {info.max_resolution} px, 4x the stored side); "
                               f"solve with --resolution {min(info.max_resolution, max(32, info.resolution))} or pick another dataset")

    cache = None
    if rec.distill and distill is None:
        raise SpecError(f"--recipe {rec.name}: trains against a teacher's soft labels; give --distill CACHE "
                        "(made by `archsearch teacher`)")
    if distill is not None and len(seed_list) > 1:
        raise SpecError(f"--seeds: a teacher cache (--distill) holds one seed's split and augmentation; give one seed, "
                        f"got {seed_list}")
    if distill is not None:
        cache = TeacherCache(distill)
        cache.check(data, epochs=rec.epochs, augment=rec.augment)

    rank, world = init_distributed(dev)
    if world > 1:  # rank 0 creates the study, the others open it: no two processes create one database
        import torch.distributed as dist

        study = ValidationStudy(name=str(record["name"]), storage=url, flag=flag) if rank == 0 else None
        dist.barrier()
        study = study or ValidationStudy(name=str(record["name"]), storage=url, create=False, flag=flag)
    else:
        study = ValidationStudy(name=str(record["name"]), storage=url, flag=flag)
    done = study.finished()  # read by every rank before rank 0 writes anything
    rows = []
    datasets = {seed_list[0]: data}
    for index, (cand, spec) in enumerate(zip(candidates, specs)):
        # the candidate's identity across seeds: its key with the seed left out
        design = candidate_key(cand["spec"], rec.to_dict(), info.name, -1, distill=cache.id if cache else None,
                               max_batches=max_batches)
        for seed in seed_list:
            if seed not in datasets:  # the split of some datasets depends on the seed
                datasets[seed] = get_dataset(dataset, seed=seed, root=data_dir, resolution=resolutions[0])
            data = datasets[seed]
            key = candidate_key(cand["spec"], rec.to_dict(), info.name, seed, distill=cache.id if cache else None,
                                max_batches=max_batches)
            if key in done:
                row = _row(done[key].user_attrs, "cached")
                rows.append(row)
                if on_result:
                    on_result(row)
                continue
            trained = _trained_spec(spec, info.num_classes)
            attrs = {
                "name": getattr(spec, "name", "") or f"{record['name']}-{index + 1}", "family": spec.family,
                "rank": index + 1, "spec": cand["spec"], "recipe": rec.name, "recipe_params": rec.to_dict(),
                "dataset": info.name, "seed": seed, "score": cand.get("score"),
                "macs": cost.macs(trained, with_head=True), "params": cost.params(trained, with_head=True),
                "solve_macs": cand.get("macs"), "solve_params": cand.get("params"),
                "distill": cache.id if cache else None, "max_batches": max_batches, "eval_every": eval_every,
                "resolution": getattr(spec, "resolution", None), "design": design,
                "kind": cand.get("kind") or record.get("kind") or "designed",
            }
            if cache is not None:
                attrs["distill_cache"] = {"path": str(Path(distill).resolve()), "id": cache.id, "topk": cache.topk,  # type: ignore[arg-type]
                                          "epochs": cache.epochs, "teacher": cache.header["teacher"].get("source"),
                                          "teacher_macs": cache.header["teacher"].get("macs")}
            trial = study.start(key, attrs) if rank == 0 else None
            history: list[dict[str, Any]] = []

            def record_epoch(epoch: Any, trial: Any = trial, history: list[dict[str, Any]] = history) -> None:
                history.append(epoch.to_dict())
                if trial is not None:
                    study.report(trial, epoch.epoch, epoch.top1, history)

            torch.manual_seed(seed)
            model = build_model(spec, num_classes=info.num_classes, **model_kwargs(rec, spec.family))
            label = f"{attrs['name']} seed {seed} ({index + 1}/{len(candidates)})"
            report = None if on_progress is None else (lambda p, label=label: on_progress(label, p))
            try:
                result = train(model, data, rec, seed=seed, device=str(dev), amp=amp, compile=compile,
                               checkpoint=run_dir / "checkpoints" / f"{key}.pt", key=key,
                               callbacks=[record_epoch, *callbacks], progress=progress, latency=latency,
                               max_batches=max_batches, targets=cache, latency_statistic=latency_statistic,
                               eval_every=eval_every, on_progress=report)
            except KeyboardInterrupt:
                raise  # the trial stays RUNNING; the next run resumes it from the checkpoint
            except Exception as exc:
                if trial is not None:
                    study.fail(trial, f"{type(exc).__name__}: {exc}")
                raise
            metrics = {**result.metrics(), "checkpoint": str(run_dir / "checkpoints" / f"{key}.pt")}
            if trial is not None:
                study.finish(trial, metrics)
            row = _row({**attrs, **metrics, "key": key}, "resumed" if result.resumed_from else "trained")
            rows.append(row)
            if on_result:
                on_result(row)
    return rows


def load_results(source: str | Path, *, storage: str | None = None) -> list[dict[str, Any]]:
    """The rows of a run's completed trials (keys :data:`ROW_KEYS`, ``status`` ``done``).

    Raises:
        SpecError: No such run, or no validated candidates in its study.
        StorageError: A storage that cannot be read (never taken for "no validated candidates").
    """
    from archsearch.study.storage import mask_url

    run_dir, record = run_location(source)
    url = storage or default_storage(run_dir)
    name = str(record["name"])
    # read-only: a missing study.db is not created, an empty or damaged one is an error, never "no candidates"
    study = None if storage is None and not (run_dir / "study.db").exists() else ValidationStudy.read(
        name=name, storage=url, flag="--storage" if storage else "study")
    if study is None:
        raise SpecError(f"results: no validated candidates for run {name!r} in {mask_url(url)}; run "
                        f"`archsearch validate {source}` first")
    rows = [_row(r, "done") for r in study.rows()]
    if not rows:
        raise SpecError(f"results: the study {name!r} in {mask_url(url)} has no completed trial yet")
    return rows
