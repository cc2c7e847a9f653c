"""``archsearch teacher``: run a teacher once over the training set and cache its sparse soft labels
(TinyViT's fast distillation), for ``validate --distill``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from archsearch.cli._output import EXIT_OK, err, print_json, print_table, stderr_console
from archsearch.cli._progress import count_progress
from archsearch.errors import ArchsearchError, SpecError
from archsearch.space.budget import format_count

__all__ = ["cmd_teacher", "register_teacher"]


def register_teacher(sub: Any) -> None:
    p = sub.add_parser("teacher", help="run a teacher once over the training set and cache its sparse soft labels (TinyViT)")
    p.add_argument("--model", required=True, help="timm:NAME, a spec .json, or a checkpoint of a validated run (RUN/checkpoints/KEY.pt)")
    p.add_argument("--checkpoint", help="teacher weights (torch.load weights_only); required unless --model is a checkpoint")
    p.add_argument("--random-weights", action="store_true", help="allow a teacher without weights (tests and timings only)")
    p.add_argument("--dataset", default="digits", help="dataset of the students (default digits)")
    p.add_argument("--data-dir", help="dataset download cache (default $ARCHSEARCH_DATA or ~/.cache/archsearch/data)")
    p.add_argument("--epochs", type=int, default=8, help="epochs of augmented views to store (default 8, the quick recipe's)")
    p.add_argument("--topk", type=int, default=10, help="probabilities kept per image (default 10)")
    p.add_argument("--out", required=True, help="cache directory (resumed when it holds an unfinished cache of the same settings)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split and the augmentation seeds (validate with the same)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, default=256, help="images per teacher forward (default 256)")
    p.add_argument("--resolution", type=int, default=None, help="teacher input side (default: the model's)")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="off", help="teacher autocast on CUDA (default off)")
    p.add_argument("--no-augment", action="store_true", help="store unaugmented views (for recipes without augmentation)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")
    p.set_defaults(func=cmd_teacher)


def _teacher_spec(path: Path) -> Any:
    """The spec of a validated run's checkpoint (``RUN/checkpoints/KEY.pt``), from the run's study; else None."""
    from archsearch.study import ValidationStudy, default_storage, run_location

    run_dir = path.resolve().parent.parent
    if path.suffix != ".pt" or path.parent.name != "checkpoints" or not (run_dir / "study.db").is_file():
        return None
    try:
        _, record = run_location(run_dir)
    except ArchsearchError:
        return None
    study = ValidationStudy.read(name=str(record["name"]), storage=default_storage(run_dir))
    if study is None:
        return None
    for trial in study.study.get_trials(deepcopy=False):
        if trial.user_attrs.get("key") == path.stem and "spec" in trial.user_attrs:
            return trial.user_attrs["spec"]
    return None


def cmd_teacher(args: argparse.Namespace) -> int:
    # numbers and names were checked by _validate; a bad spec file fails here, before torch and the dataset
    if not args.model.startswith("timm:") and not Path(args.model).is_file():
        raise SpecError(f"--model: expected timm:NAME, a spec .json or a checkpoint file, got {args.model!r} (no such file)")
    if not args.model.startswith("timm:") and args.model.endswith(".json"):
        from archsearch.space import load_spec

        load_spec(args.model)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise SpecError(f"--checkpoint: file not found: {args.checkpoint}; expected teacher weights (a torch state dict)")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    from archsearch.train import DatasetError, build_cache, get_dataset, load_teacher

    source = Path(args.model)
    spec = _teacher_spec(source) if not args.model.startswith("timm:") and source.is_file() else None
    data = get_dataset(args.dataset, seed=args.seed, root=args.data_dir, resolution=args.resolution)
    info = data.info
    teacher, identity = load_teacher(args.model, num_classes=info.num_classes, checkpoint=args.checkpoint,
                                     random_weights=args.random_weights, resolution=args.resolution, spec=spec)
    if identity["resolution"] > info.max_resolution:
        raise DatasetError(f"--model {args.model}: resolution {identity['resolution']} does not fit {info.name} "
                           f"({info.resolution} px images; accepted up to {info.max_resolution} px); give --resolution")
    kwargs = dict(teacher=teacher, identity=identity, data=data, out=args.out, epochs=args.epochs, topk=args.topk,
                  seed=args.seed, augment=not args.no_augment, device=args.device, batch_size=args.batch_size, amp=args.amp)
    t0 = time.perf_counter()
    try:
        bar_on, lines = count_progress(args, f"teacher {args.model} on {info.name}", "images")
        if bar_on:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          transient=True, console=stderr_console()) as bar:
                task = bar.add_task(f"teacher {args.model} on {info.name}", total=None)
                header = build_cache(progress=lambda done, total: bar.update(task, completed=done, total=total), **kwargs)
        else:
            header = build_cache(**kwargs, **({} if lines is None else {"progress": lines}))
    except KeyboardInterrupt:
        err(f"interrupted: the cache in {args.out} holds every flushed batch; re-run the same command to resume")
        return 130
    wall = time.perf_counter() - t0
    records = header["epochs"] * header["dataset"]["train_size"]
    summary = {"cache": str(Path(args.out)), "id": header["id"], "teacher": args.model, "teacher_macs": identity["macs"],
               "teacher_params": identity["params"], "dataset": info.name, "train_size": header["dataset"]["train_size"],
               "epochs": header["epochs"], "topk": header["topk"], "record_bytes": header["record_bytes"],
               "bytes": records * header["record_bytes"], "teacher_time_s": round(header["teacher_time_s"], 3),
               "wall_time_s": round(wall, 3)}
    if args.format == "json":
        print_json(summary)
    else:
        print_table(f"teacher cache {summary['cache']} (id {summary['id']})", ["quantity", "value"],
                    [(k, format_count(v) if k in ("teacher_macs", "teacher_params") else str(v)) for k, v in summary.items()])
    return EXIT_OK
