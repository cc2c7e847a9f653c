"""``archsearch search`` and ``archsearch worker``: candidates proposed around the optimum (the solver's
top-k, a budget sweep, neighbours) as trials of a shared Optuna queue, and the workers, on any number of
machines, that train them."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from archsearch.cli._checks import check_output
from archsearch.cli._output import (
    EXIT_OK,
    err,
    print_json,
    print_results,
    stderr_console,
)
from archsearch.cli._program import solver_for
from archsearch.cli._progress import train_progress
from archsearch.cli._runs import run_name, versions
from archsearch.errors import BudgetError, SpecError
from archsearch.space.budget import Budget, format_count

__all__ = ["cmd_search", "cmd_worker", "register_search", "register_worker"]


def register_search(sub: Any) -> None:
    p = sub.add_parser("search", help="train candidates proposed around the optimum, as trials of an Optuna study")
    p.add_argument("--space", required=True, help="search space (see `archsearch spaces`)")
    p.add_argument("--budget", help="e.g. macs=20M,params=500K (default: the space's budget)")
    p.add_argument("--trials", type=int, default=8, help="proposals to train (default 8): top-k, budget sweep, then neighbours")
    p.add_argument("--top-k", type=int, default=3, help="proposals from the solver's ranking at the full budget (default 3)")
    p.add_argument("--sweep-points", type=int, default=2, help="smaller budgets solved, 50%% and 75%% first (default 2, at most 4)")
    p.add_argument("--storage", help="Optuna storage URL, e.g. postgresql+psycopg2://USER@HOST/DB (default: $ARCHSEARCH_STORAGE, "
                                     "which keeps a password off the command line, else sqlite:///RUN_DIR/study.db)")
    p.add_argument("--study", help="study name (default: derived from space and budget)")
    p.add_argument("--out", help="run directory (default runs/STUDY)")
    p.add_argument("--overwrite", action="store_true", help="replace the candidates.json of another run or search in --out")
    p.add_argument("--enqueue-only", action="store_true", help="enqueue the proposals and leave the training to `archsearch worker`")
    p.add_argument("--dataset", default="digits", help="digits (default, offline), fashion-mnist, cifar10, cifar100 or imagefolder:PATH")
    p.add_argument("--recipe", default="quick", help="training recipe: quick (default), fmnist, standard, deit, resnet-a3 "
                   "or tinyvit-distill (docs/training.md)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--max-batches", type=int, default=None, help="at most N training batches per epoch (smoke runs)")
    p.add_argument("--no-latency", action="store_true", help="skip the batch-1 latency measurement")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto", help="autocast on CUDA (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and of the neighbours' order (default 0)")
    p.add_argument("--resolution", type=int, default=None, help="input resolution of the designs (default: the space's; digits takes <= 32)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="a wall-clock cap in seconds per solve (default none: deepmad-* solves stop at --gap-tol or "
                        "their node budget, so the proposals are the same on any machine)")
    p.add_argument("--gap-tol", type=float, default=None,
                   help="stop a solve when its relative gap is <= this (default 1e-2 for deepmad-* spaces, 1e-3 for the others)")
    _add_worker_options(p)
    p.set_defaults(func=cmd_search, rho=None, no_depth_penalty=False, entropy="code", no_priors=False)


def register_worker(sub: Any) -> None:
    p = sub.add_parser("worker", help="take trials of a search or tune study from its shared storage and train them (any number of machines)")
    p.add_argument("--study", required=True, help="study name (printed by `archsearch search` or `archsearch tune`)")
    p.add_argument("--storage", help="Optuna storage URL of the study, e.g. postgresql+psycopg2://USER@HOST/DB (default: "
                                     "$ARCHSEARCH_STORAGE, which keeps a password off the command line; one of them is required)")
    _add_worker_options(p)
    p.set_defaults(func=cmd_worker)


def _add_worker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between heartbeats of a running trial (default 10)")
    p.add_argument("--grace-period", type=int, default=60, help="seconds without a heartbeat before a trial is retried elsewhere (default 60)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks at an empty queue (default 2)")
    p.add_argument("--no-wait", action="store_true", help="stop when nothing waits, even while other workers' trials run")
    p.add_argument("--max-trials", type=int, default=None, help="stop after N trials")
    p.add_argument("--checkpoint-dir", help="epoch checkpoints (default RUN_DIR/checkpoints when writable here)")
    p.add_argument("--data-dir", help="dataset download cache (default $ARCHSEARCH_DATA or ~/.cache/archsearch/data)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise SpecError(f"--threads: expected an integer >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


class _TrialProgress:
    """Per-trial progress of a search or worker: a rich bar on a terminal, one line per trial otherwise."""

    def __init__(self, *, enabled: bool, quiet: bool) -> None:
        self.quiet, self.bar, self.task = quiet, None, None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=stderr_console())

    def __enter__(self) -> "_TrialProgress":
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task("trials", total=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, highlight=False, markup=False)
        elif not self.quiet:
            err(text)

    def counts(self, counts: dict[str, int]) -> None:
        if self.bar is not None:
            waiting = f" · {counts['running']} running elsewhere" if counts["running"] else ""
            self.bar.update(self.task, completed=counts["done"], total=counts["total"], description=f"trials{waiting}")

    def start(self, attrs: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=f"training {attrs['name']} (trial {attrs['trial']}, {attrs.get('origin', '')})")

    def result(self, row: dict[str, Any]) -> None:
        if row["status"] == "failed":
            self.say(f"trial {row['trial']} {row['name']}: FAILED {row.get('error', '')}")
        else:
            self.say(f"trial {row['trial']} {row['name']} ({row.get('origin', '')}): top1 {100 * row['top1']:.2f}% "
                     f"macs {format_count(row.get('macs'))} params {format_count(row.get('params'))} "
                     f"{row['train_time_s']:.1f} s" + (" (duplicate, not recorded)" if row["status"] == "duplicate" else ""))


def _worker_loop(args: argparse.Namespace, *, study: str, storage: str, progress: _TrialProgress) -> Any:
    from archsearch.study import SearchQueue, open_storage, run_worker

    options = dict(study=study, storage=storage, device=args.device, max_trials=args.max_trials, wait=not args.no_wait,
                   poll_s=args.poll, heartbeat_interval=args.heartbeat, grace_period=args.grace_period,
                   checkpoint_dir=args.checkpoint_dir, data_dir=args.data_dir)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reads and writes the study
        return run_worker(**options)
    queue = SearchQueue(name=study, storage=open_storage(storage, heartbeat_interval=args.heartbeat, grace_period=args.grace_period,
                                                         create=False))

    def on_result(row: dict[str, Any]) -> None:
        progress.result(row)
        progress.counts(queue.counts())

    progress.counts(queue.counts())
    _, lines = train_progress(args)  # off a terminal: a line at each epoch's end, at most one per 10 s between
    return run_worker(**options, on_start=progress.start, on_result=on_result, on_idle=progress.counts, on_progress=lines)


def cmd_search(args: argparse.Namespace) -> int:
    from archsearch.space import get_space
    from archsearch.study import plan_search
    from archsearch.study.storage import STORAGE_ENV, mask_command, mask_url

    space = get_space(args.space)
    budget = Budget.parse(args.budget) if args.budget else space.budget
    if budget.is_empty():
        raise BudgetError("--budget: give at least one of macs, params, memory, latency")
    if args.trials < 1:
        raise SpecError(f"--trials: expected an integer >= 1, got {args.trials}")
    name = args.study or run_name(space.name, budget)
    run_dir = Path(args.out or Path("runs") / name)
    if not args.out:
        check_output("--out", str(run_dir), "run")  # the default run directory, checked as a given one is
    solver, options = solver_for(space, args)
    _set_threads(args.threads)
    main_rank = os.environ.get("RANK", "0") == "0"
    show = sys.stderr.isatty() and args.format != "json" and main_rank and not args.quiet
    with _TrialProgress(enabled=show, quiet=args.quiet or not main_rank) as progress:
        plan = plan_search(
            space=space, budget=budget, solve=lambda b, k: solver.solve(space, b, top_k=k, resolution=args.resolution, **options),
            trials=args.trials, run_dir=run_dir, name=name, storage=args.storage, study=args.study, top_k=args.top_k,
            sweep_points=args.sweep_points, dataset=args.dataset, recipe=args.recipe, epochs=args.epochs, seed=args.seed,
            max_batches=args.max_batches, latency=not args.no_latency, amp=args.amp, heartbeat_interval=args.heartbeat,
            grace_period=args.grace_period, on_solve=progress.say, overwrite=args.overwrite,
            provenance={"command": mask_command(args.argv), "versions": versions(), "seed": args.seed,
                        "solver": solver.name},
        )
        origins = {o: sum(p["origin"] == o for p in plan.proposals) for o in ("top-k", "sweep", "neighbour")}
        progress.say(f"{'resumed' if plan.resumed else 'proposed'} {len(plan.proposals)} trials "
                     f"({', '.join(f'{n} {o}' for o, n in origins.items())}); {plan.enqueued} enqueued in study "
                     f"{plan.study!r} at {mask_url(plan.storage)}")
        summary = None
        if not args.enqueue_only:
            try:
                summary = _worker_loop(args, study=plan.study, storage=plan.storage, progress=progress)
            except KeyboardInterrupt:
                err("interrupted: finished trials are in the study, the current one is back in the queue and its last "
                    "epoch is checkpointed; re-run the same command (or start `archsearch worker`) to resume")
                return 130
    if not main_rank:
        return EXIT_OK
    # hints never carry a password: a URL from ARCHSEARCH_STORAGE is left to the variable, another is masked
    storage_flag = f" --storage {shlex.quote(mask_url(args.storage))}" if args.storage and not args.storage_from_env else ""
    from archsearch.study import SearchQueue, open_storage

    counts = SearchQueue(name=plan.study, storage=open_storage(plan.storage, heartbeat_interval=args.heartbeat,
                                                               grace_period=args.grace_period)).counts()
    if args.format == "json":
        print_json({"run_dir": str(plan.run_dir), "study": plan.study, "storage": mask_url(plan.storage), "resumed": plan.resumed,
                    "enqueued": plan.enqueued, "proposals": [{k: p[k] for k in ("key", "name", "origin", "solve_macs", "solve_params", "score")}
                                                             for p in plan.proposals],
                    "counts": counts, "worker": summary.to_dict() if summary else None})
        return EXIT_OK
    if counts["done"]:
        from archsearch.results import validated_frame
        from archsearch.study import load_results

        print_results(validated_frame(load_results(plan.run_dir, storage=args.storage)),
                      f"search {plan.study}: {counts['done']} of {counts['total']} trials done", status=False,
                      caption="pareto: no candidate has a higher top-1 at no more MACs, params and latency")
    err(f"trials: {counts['done']} done, {counts['running']} running, {counts['waiting']} waiting, {counts['failed']} failed")
    if args.enqueue_only or counts["waiting"] or counts["running"]:
        worker_storage = "" if args.storage_from_env else f" --storage {shlex.quote(mask_url(plan.storage))}"
        err(f"workers: archsearch worker --study {shlex.quote(plan.study)}{worker_storage}"
            + (f" (the password is masked: set {STORAGE_ENV} instead)" if mask_url(plan.storage) != plan.storage else ""))
    err(f"results: archsearch results {plan.run_dir}{storage_flag}")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    main_rank = os.environ.get("RANK", "0") == "0"
    from archsearch.cli.tune import is_tune, run_tune_worker

    if main_rank and is_tune(args.study, args.storage):  # a tune study: its trials solve and train, no queue
        return run_tune_worker(args)
    show = sys.stderr.isatty() and args.format != "json" and main_rank and not args.quiet
    with _TrialProgress(enabled=show, quiet=args.quiet or not main_rank) as progress:
        try:
            summary = _worker_loop(args, study=args.study, storage=args.storage, progress=progress)
        except KeyboardInterrupt:
            err("interrupted: the current trial is back in the queue (its last epoch is checkpointed)")
            return 130
    if not main_rank:
        return EXIT_OK
    if args.format == "json":
        print_json(summary.to_dict())
    else:
        err(f"worker {summary.worker}: {summary.completed} completed, {summary.failed} failed, {summary.duplicates} duplicates")
    return EXIT_OK
