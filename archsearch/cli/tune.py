"""``archsearch tune``: a program's free constants fitted to the user's data by a few short trainings (an
Optuna study over the constants; :mod:`archsearch.study.tune`), the best written as ``OUT/profile.json``
for ``solve --profile``; and the tune side of ``archsearch worker``."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

from archsearch.cli._output import EXIT_OK, err, print_json, print_table
from archsearch.errors import BudgetError
from archsearch.space.budget import Budget, format_count

__all__ = ["cmd_tune", "register_tune", "is_tune", "run_tune_worker"]


def register_tune(sub: Any) -> None:
    p = sub.add_parser("tune", help="fit a program's free constants (DeepMAD's rho0, stage weight, penalty) to your data by short trainings")
    p.add_argument("--space", required=True, help="search space whose program is tuned (deepmad-* or nvit)")
    p.add_argument("--budget", action="append", required=True,
                   help="a budget to tune at, e.g. macs=4M,params=200K; repeat it to tune over several budgets at once")
    p.add_argument("--dataset", default="digits", help="digits (default, offline), fashion-mnist, cifar10, cifar100 or imagefolder:PATH")
    p.add_argument("--recipe", default="quick", help="training recipe of every trial's designs: quick (default), fmnist, "
                   "standard, deit, resnet-a3 (docs/training.md)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (the pruner's rungs: 1, 3, 9, ...)")
    p.add_argument("--max-batches", type=int, default=None, help="at most N training batches per epoch (short trainings)")
    p.add_argument("--trials", type=int, default=20, help="trials of the study in all, over every worker (default 20)")
    p.add_argument("--max-nodes", type=int, default=200, help="branch-and-bound nodes of each trial's solves (default 200)")
    p.add_argument("--storage", help="Optuna storage URL (default: $ARCHSEARCH_STORAGE, else sqlite:///OUT/study.db); "
                                     "other machines join with `archsearch worker --study NAME --storage URL`")
    p.add_argument("--study", help="study name (default tune-SPACE)")
    p.add_argument("--out", help="directory of the study, checkpoints and profile.json (default runs/tune-SPACE)")
    p.add_argument("--seed", type=int, default=0, help="seed of the trainings and of the sampler (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.add_argument("--max-trials", type=int, default=None, help="stop after N trials of this process (the study resumes)")
    p.add_argument("--enqueue-only", action="store_true", help="create the study and leave the trials to `archsearch worker`")
    p.add_argument("--data-dir", help="dataset download cache (default $ARCHSEARCH_DATA or ~/.cache/archsearch/data)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")
    p.set_defaults(func=cmd_tune)


class _Lines:
    """A tune's progress on stderr: one line a finished trial, and while a design trains a line at each epoch's
    end and at most one per 10 s between (:class:`~archsearch.cli._progress.TrainLines`); nothing with ``--quiet``."""

    def __init__(self, args: argparse.Namespace) -> None:
        from archsearch.cli._progress import TrainLines

        self.on = not getattr(args, "quiet", False)
        self.t0 = time.perf_counter()
        self.train = TrainLines() if self.on else None

    def say(self, text: str) -> None:
        if self.on:
            err(f"[{time.perf_counter() - self.t0:6.0f}s] {text}")

    def trial(self, t: dict[str, Any]) -> None:
        value = "—" if t["value"] is None else f"{100 * t['value']:.2f} %"
        consts = ", ".join(f"{k}={_fmt(v)}" for k, v in (t["constants"] or {}).items())
        self.say(f"trial {t['number']} {t['state']}: mean top-1 {value} ({consts})")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cmd_tune(args: argparse.Namespace) -> int:
    from archsearch.space import get_space
    from archsearch.study.storage import mask_url
    from archsearch.study.tune import plan_tune, run_tune, tune_profile

    space = get_space(args.space)
    budgets = []
    for text in args.budget:
        b = Budget.parse(text)
        if b.is_empty():
            raise BudgetError(f"--budget {text!r}: give at least one of macs, params, memory, latency")
        budgets.append(b)
    out = Path(args.out or Path("runs") / (args.study or f"tune-{space.name}"))
    settings, url, study = plan_tune(space=space, budgets=budgets, run_dir=out, dataset=args.dataset, recipe=args.recipe,
                                     epochs=args.epochs, seed=args.seed, max_batches=args.max_batches, trials=args.trials,
                                     max_nodes=args.max_nodes, sampler_seed=args.seed, storage=args.storage,
                                     study=args.study)
    lines = _Lines(args)
    lines.say(f"tuning {space.name} at {', '.join(settings.budgets)}: {settings.trials} trials of {settings.recipe} "
              f"({settings.epochs} epochs{'' if settings.max_batches is None else f' of {settings.max_batches} batches'}) "
              f"in study {study!r} at {mask_url(url)}")
    summary = None
    if not args.enqueue_only:
        try:
            summary = run_tune(study=study, storage=url, device=args.device, max_trials=args.max_trials,
                               data_dir=args.data_dir, on_trial=lines.trial, on_progress=lines.train)
        except KeyboardInterrupt:
            err("interrupted: finished trials are in the study, the interrupted trial's constants run again first and its "
                "training resumes from its checkpoint; re-run the same command to resume")
            return 130
    profile = None
    from archsearch.study.tune import best_trial_of

    best = best_trial_of(study=study, storage=url)
    if best is not None:
        profile = tune_profile(study=study, storage=url, out=out)
    if args.format == "json":
        print_json({"study": study, "storage": mask_url(url), "out": str(out), "profile": str(profile) if profile else None,
                    "settings": settings.to_dict(), "best": best, "summary": summary.to_dict() if summary else None})
        return EXIT_OK
    if best is None:
        err(f"no trial has completed yet; workers: archsearch worker --study {shlex.quote(study)}"
            + ("" if args.storage_from_env else f" --storage {shlex.quote(mask_url(url))}"))
        return EXIT_OK
    _print_best(best, space)
    if summary is not None:
        err(f"trials: {summary.completed} completed, {summary.pruned} pruned, {summary.failed} failed by this process; "
            f"designs: {summary.trained} trained, {summary.reused} reused")
    err(f"wrote {profile}; solve with it: archsearch solve --space {space.name} --profile {shlex.quote(str(profile))}")
    return EXIT_OK


def _print_best(best: dict[str, Any], space: Any) -> None:
    from archsearch.solvers.constants import free_constants

    defaults = {c.name: c.default_for(space) for c in free_constants(space)}
    paper = best.get("paper")
    versus = ""
    if paper is not None:
        versus = (f"; the paper's: {100 * paper['value']:.2f} %" if paper["value"] is not None
                  else f"; the paper's constants' trial: {paper['state']}")
    print_table(f"best constants (trial {best['number']}: mean top-1 {100 * best['value']:.2f} %{versus})",
                ["constant", "tuned", "paper"],
                [(k, _fmt(v), _fmt(defaults.get(k))) for k, v in best["constants"].items()])
    print_table("its evidence: the top design at each budget, trained", ["budget", "macs", "params", "score", "top-1 %", "trained"],
                [(d["budget"], format_count(d.get("macs")), format_count(d.get("params")), _fmt(d.get("score")),
                  "—" if d.get("top1") is None else f"{100 * d['top1']:.2f}", "reused" if d.get("reused") else "yes")
                 for d in best["designs"]])


def is_tune(study: str, storage: str) -> bool:
    """Whether the study named ``study`` in ``storage`` is a tune (for ``archsearch worker``)."""
    import optuna

    from archsearch.study.queue import open_storage
    from archsearch.study.tune import is_tune_study

    try:
        loaded = optuna.load_study(study_name=study, storage=open_storage(storage, create=False))
    except KeyError:
        return False
    return is_tune_study(loaded)


def run_tune_worker(args: argparse.Namespace) -> int:
    """``archsearch worker`` on a tune study: runs its trials until it holds them all."""
    from archsearch.study.tune import run_tune

    lines = _Lines(args)
    try:
        summary = run_tune(study=args.study, storage=args.storage, device=args.device, max_trials=args.max_trials,
                           data_dir=args.data_dir, on_trial=lines.trial, on_progress=lines.train)
    except KeyboardInterrupt:
        err("interrupted: the trial's constants run again first when a worker resumes the tune")
        return 130
    if args.format == "json":
        print_json(summary.to_dict())
    else:
        err(f"tune worker: {summary.completed} completed, {summary.pruned} pruned, {summary.failed} failed; designs "
            f"{summary.trained} trained, {summary.reused} reused")
    return EXIT_OK
