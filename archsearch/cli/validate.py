"""``archsearch validate`` and ``archsearch results``: train and measure a run's candidates (results go to
the run's Optuna study), and the table of its validated candidates, Pareto-optimal ones marked."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from archsearch.cli._output import EXIT_OK, err, print_json, print_results, report_hint
from archsearch.cli._progress import train_progress
from archsearch.errors import SpecError

__all__ = ["cmd_results", "cmd_validate", "register_results", "register_validate"]


def register_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="train and measure candidates on CPU or GPU; results go to the run's Optuna study")
    p.add_argument("source", help="run directory written by `solve --out`, or a candidates.json (results go to its directory)")
    p.add_argument("--dataset", default="digits", help="digits (default, offline), fashion-mnist, cifar10, cifar100 or imagefolder:PATH")
    p.add_argument("--recipe", default="quick", help="training recipe: quick (default), fmnist, standard, deit, resnet-a3 "
                   "or tinyvit-distill (docs/training.md)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto (default): CUDA when available")
    p.add_argument("--top-k", type=int, default=5, help="validate the first N candidates (default 5)")
    p.add_argument("--storage", help="Optuna storage URL (default: $ARCHSEARCH_STORAGE, which keeps a password off the command "
                                     "line, else sqlite:///RUN_DIR/study.db)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split, weights, shuffling, augmentation (default 0)")
    p.add_argument("--seeds", help="train every candidate once per seed, e.g. 0,1,2 or 0-4 (replaces --seed); "
                                   "results show mean +- std over seeds")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate the test split every K epochs (default 1); "
                                                             "the last epoch is always evaluated, results are unchanged")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto", help="autocast on CUDA (default auto: bf16 where supported)")
    p.add_argument("--compile", action="store_true", help="train through torch.compile")
    p.add_argument("--data-dir", help="dataset download cache (default $ARCHSEARCH_DATA or ~/.cache/archsearch/data)")
    p.add_argument("--max-batches", type=int, default=None, help="at most N training batches per epoch (smoke runs)")
    p.add_argument("--no-latency", action="store_true", help="skip the batch-1 latency measurement")
    p.add_argument("--latency-statistic", choices=("median", "p25", "min"), default="median",
                   help="what the latency keeps of its >= 30 timed calls (default median; min is the reproducible one "
                        "on a shared machine)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's; 1 on a busy shared machine)")
    p.add_argument("--distill", help="teacher cache written by `archsearch teacher`: train against its soft labels")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")
    p.set_defaults(func=cmd_validate)


def register_results(sub: Any) -> None:
    p = sub.add_parser("results", help="table of a run's validated candidates, Pareto-optimal ones marked")
    p.add_argument("run", help="run directory (or its candidates.json)")
    p.add_argument("--storage", help="Optuna storage URL (default: $ARCHSEARCH_STORAGE, which keeps a password off the command "
                                     "line, else sqlite:///RUN_DIR/study.db)")
    p.add_argument("--per-seed", action="store_true", help="one row per candidate and seed instead of the mean over seeds")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=cmd_results)


def cmd_validate(args: argparse.Namespace) -> int:
    from archsearch.results import load_run, validated_frame

    # what is cheap to check is checked before torch is imported (numbers and names: _validate)
    if not load_run(args.source)["candidates"]:
        raise SpecError(f"run {args.source}: holds no candidates; expected a run whose solve found designs")
    seeds = _parse_seeds(args.seeds)
    if args.distill is not None and not Path(args.distill).is_dir():
        raise SpecError(f"--distill {args.distill}: no such directory; expected a cache written by `archsearch teacher`")
    from archsearch.study import run_location, validate_run

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 talks
    progress, lines = train_progress(args)  # a rich bar on a terminal, else plain lines; nothing with --quiet

    def announce(row: dict[str, Any]) -> None:
        if args.format != "json" and main_rank:
            err(f"{row['name']}: top1 {100 * row['top1']:.2f}% top5 {100 * row['top5']:.2f}% ({row['status']})")

    try:
        rows = validate_run(
            args.source, dataset=args.dataset, recipe=args.recipe, device=args.device, top_k=args.top_k,
            storage=args.storage, seed=args.seed, epochs=args.epochs, amp=args.amp, compile=args.compile,
            data_dir=args.data_dir, max_batches=args.max_batches, latency=not args.no_latency, progress=progress,
            latency_statistic=args.latency_statistic,
            on_result=announce, on_progress=lines, distill=args.distill, seeds=seeds, eval_every=args.eval_every,
        )
    except KeyboardInterrupt:
        err("interrupted: finished candidates are in the study and the current one's last epoch is checkpointed; "
            "re-run the same command to resume")
        return 130
    if not main_rank:
        return EXIT_OK
    frame = validated_frame(rows)
    if args.format == "json":
        print_json(json.loads(frame.to_json(orient="records")))
    else:
        print_results(frame, f"validated {len(rows)} candidates (recipe {args.recipe})", status=True,
                      caption="pareto: no candidate has a higher top-1 at no more MACs, params and latency")
    report_hint(run_location(args.source)[0])
    return EXIT_OK


def _parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` (or ``0-4``) -> [0, 1, 2]; None when not given."""
    if text is None:
        return None
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise SpecError(f"--seeds: expected comma-separated integers or ranges such as 0,1,2 or 0-4, got {text!r}") from None
        if not (0 <= a <= b < 2**32) or b - a >= 1000:
            raise SpecError(f"--seeds: expected integers in [0, 2**32) and ranges of at most 1000 seeds, got {text!r}")
        seeds.extend(range(a, b + 1))
    return list(dict.fromkeys(seeds))


def cmd_results(args: argparse.Namespace) -> int:
    from archsearch.results import validated_frame
    from archsearch.study import load_results

    frame = validated_frame(load_results(args.run, storage=args.storage), per_seed=args.per_seed)
    if args.format == "json":
        print_json(json.loads(frame.to_json(orient="records")))
    elif args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    else:
        print_results(frame, f"{len(frame)} validated candidates (recipes: {', '.join(sorted(set(frame['recipe'])))})",
                      caption="top-1: mean ± sample std over seeds (their number); pareto (per dataset, recipe, epochs, "
                              "max-batches): no candidate has a higher top-1 at no more MACs, params and latency")
    return EXIT_OK
