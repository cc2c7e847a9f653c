"""``archsearch solve``: design architectures under a budget by mathematical programming, once or over a
sweep of budgets, with the solver's progress on stderr and the answer as a table, JSON and a run directory."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from archsearch.cli._checks import check_run_target
from archsearch.cli._output import (
    EXIT_OK,
    EXIT_USAGE,
    err,
    fmt,
    print_json,
    print_table,
    report_hint,
    stderr_console,
)
from archsearch.cli._program import solver_for
from archsearch.cli._runs import pareto_rows, run_name, save_run
from archsearch.errors import BudgetError
from archsearch.space.budget import (
    BUDGET_KEYS,
    Budget,
    format_count,
    parse_count,
    parse_latency,
)

__all__ = ["cmd_solve", "register_solve"]


def register_solve(sub: Any) -> None:
    p = sub.add_parser("solve", help="design architectures under a budget by mathematical programming")
    p.add_argument("--space", default="deepmad-r50", help="search space (see `archsearch spaces`); default deepmad-r50")
    p.add_argument("--budget", help="e.g. macs=4.13G,params=25.55M[,memory=50M]; default: the space's budget")
    p.add_argument("--rho", type=float, default=None, help="effectiveness bound rho0 (default: the space's)")
    p.add_argument("--resolution", type=int, default=None, help="input resolution (default: the space's)")
    p.add_argument("--top-k", type=int, default=5, help="candidates to report (default 5)")
    p.add_argument("--out", help="run directory: writes candidates.json and pareto.csv")
    p.add_argument("--overwrite", action="store_true", help="replace another run in --out (a different one is refused otherwise)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--sweep", help="solve a series of budgets, e.g. macs=0.5G:4G:8 (the other --budget keys stay fixed)")
    p.add_argument("--name", help="run name (default: derived from space and budget)")
    p.add_argument("--no-depth-penalty", action="store_true", help="maximise S without DeepMAD's depth penalty")
    p.add_argument("--no-priors", action="store_true", help="NViT program: maximise the objective alone, without the redistribution priors")
    p.add_argument("--entropy", choices=("code", "paper"), default="code", help="block entropy with the reference code's 1/2 (default) or the paper's")
    p.add_argument("--profile", help="solve with the tuned constants of a profile.json written by `archsearch tune` "
                                     "(an explicit --rho wins over its rho0)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="a wall-clock cap in seconds per solve (default: none for deepmad-* spaces, which stop at "
                        "--gap-tol or --max-nodes and so give the same answer on any machine; 30 for the others, "
                        "whose exact solves take well under a second); a solve it stops says that its answer "
                        "depends on the machine's speed")
    p.add_argument("--gap-tol", type=float, default=None,
                   help="stop when (bound - score)/|bound| <= this (default 1e-2 for deepmad-* spaces, whose branch "
                        "and bound certifies 1 %% at R50 in ~2 s and 0.1 %% in ~15 s; 1e-3 for the others)")
    p.add_argument("--max-nodes", type=int, default=None,
                   help="branch-and-bound nodes before returning the best design and its certified gap (deepmad-* "
                        "spaces; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="recorded in the run's provenance (the solver is deterministic)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")
    p.set_defaults(func=cmd_solve)


def _parse_sweep(text: str) -> tuple[str, list[float]]:
    """``macs=0.5G:4G:8`` -> ("macs", 8 values evenly spaced from 0.5G to 4G)."""
    key, sep, rng = text.partition("=")
    key = key.strip().lower()
    parts = rng.split(":")
    if not sep or key not in BUDGET_KEYS or len(parts) != 3:
        raise BudgetError(f"--sweep: expected KEY=LO:HI:N with KEY in {list(BUDGET_KEYS)}, got {text!r}")
    if key == "latency":
        lo, hi = parse_latency(parts[0]), parse_latency(parts[1])
    else:
        lo, hi = float(parse_count(key, parts[0])), float(parse_count(key, parts[1]))
    try:
        count = int(parts[2])
    except ValueError:
        count = 0
    if count < 1 or count > 1000:
        raise BudgetError(f"--sweep: N must be an integer in [1, 1000], got {parts[2]!r}")
    if hi < lo:
        raise BudgetError(f"--sweep: LO must not exceed HI, got {parts[0]!r} > {parts[1]!r}")
    values = [lo + (hi - lo) * i / (count - 1) for i in range(count)] if count > 1 else [hi]
    return key, values


def _with(budget: Budget, key: str, value: float) -> Budget:
    attr = "latency_ms" if key == "latency" else key
    return budget.replace(**{attr: value if key == "latency" else int(round(value))})


def _solve_once(space: Any, budget: Budget, args: argparse.Namespace) -> Any:
    from archsearch.solvers.base import check_budget_keys

    solver, options = solver_for(space, args)
    check_budget_keys(type(solver), budget, space.name)
    return solver.solve(space, budget, top_k=args.top_k, resolution=args.resolution, **options)


def _infeasible_message(result: Any, budget: Budget) -> str:
    small = result.smallest
    return (f"budget {budget.to_text()} is infeasible for space {result.space}: the smallest feasible design has "
            f"macs={format_count(small.get('macs'))} ({small.get('macs')}) and params={format_count(small.get('params'))} "
            f"({small.get('params')})" + (f" and latency={small['latency_ms']:.3g}ms" if small.get("latency_ms") is not None else ""))


def _unsolved_message(result: Any, budget: Budget, args: argparse.Namespace) -> str:
    stopped = result.stats.extra.get("stopped")
    limit = {"time_limit": f"--time-limit {args.time_limit:g} s", "nodes": f"{result.stats.nodes} nodes (--max-nodes)"}.get(
        stopped, f"the solver's limits ({result.stats.nodes} nodes, {result.stats.solve_time_s:.2f} s)")
    return (f"no design of space {result.space} was found at {budget.to_text()} within {limit}; nothing was written; "
            f"raise --time-limit or --max-nodes, or loosen the budget")


def cmd_solve(args: argparse.Namespace) -> int:
    from archsearch.space import get_space

    space = get_space(args.space)
    budget = Budget.parse(args.budget) if args.budget else space.budget
    if budget.is_empty():
        raise BudgetError("--budget: give at least one of macs, params, memory, latency (latency needs a calibrated space)")
    name = args.name or run_name(space.name, budget)
    sweep = _parse_sweep(args.sweep) if args.sweep else None
    # a run directory holding a run of other settings is refused before the solve, not after it
    check_run_target(args.out, overwrite=args.overwrite,
                     new={"space": space.name, **({} if sweep else {"budget": budget.to_dict()}), "kind": None})
    t0 = time.perf_counter()
    front = []
    if sweep:
        key, values = sweep
        results = []
        for value in values:
            b = _with(budget, key, value)
            res = _status(lambda b=b: _solve_once(space, b, args), f"solving {space.name} at {b.to_text()}", args)
            results.append(res)
            best = res.best
            front.append({"budget": b.to_dict(), "status": res.status, "score": best.score if best else None,
                          "macs": best.macs if best else None, "params": best.params if best else None,
                          "bound": res.bound if abs(res.bound) < float("inf") else None,
                          "gap": res.gap if res.gap < float("inf") else None})
        feasible = [r for r in results if r.best is not None]
        result = feasible[-1] if feasible else results[-1]
    else:
        result = _status(lambda: _solve_once(space, budget, args), f"solving {space.name} at {budget.to_text()}", args)
    wall = time.perf_counter() - t0
    if result.status == "unsolved" and not any(r["score"] is not None for r in front):
        err("error: " + _unsolved_message(result, budget, args))
        return EXIT_USAGE
    if result.stats.extra.get("stopped") == "time_limit":
        err(f"note: --time-limit {args.time_limit:g} s stopped the search at gap {fmt(result.gap, 'pct')}: this answer "
            f"depends on the machine's speed and load; --max-nodes gives one that does not")
    if result.status == "infeasible" and not front:
        err("error: " + _infeasible_message(result, budget))
        return EXIT_USAGE
    obj = result.to_dict()
    for cand in obj["candidates"]:
        extra = cand.pop("extra", None) or {}
        for key in ("latency_ms", "flops"):
            if key in extra:
                cand[key] = extra[key]
    if front:
        obj["front"] = front
    if getattr(args, "profile_record", None):
        obj["profile"] = args.profile_record
    if args.out:
        _write_run(Path(args.out), obj, result, name=name, args=args, wall=wall)
    if args.format == "json":
        print_json(obj)
    else:
        _print_solve_table(result, name=name, front=front)
        if args.out:
            err(f"wrote {Path(args.out) / 'candidates.json'} and {Path(args.out) / 'pareto.csv'}")
    if args.out:
        report_hint(args.out)
    return EXIT_OK


class _SolveProgress:
    """Progress of a solve on stderr: a live rich line on a terminal (table output), else a plain line at
    most every ``every`` seconds (logs, CI, ``--format json``; a solve shorter than that prints nothing);
    nothing with ``--quiet``. Fed by the solver's ``progress`` callback; solvers without one get a spinner."""

    def __init__(self, message: str, args: argparse.Namespace, *, every: float = 10.0) -> None:
        self.message, self.every = message, every
        self.quiet = bool(getattr(args, "quiet", False))
        self.live = not self.quiet and args.format != "json" and sys.stderr.isatty()
        self.status: Any = None
        self.last = 0.0
        self.fed = False

    def __enter__(self) -> "_SolveProgress":
        if self.live:
            self.status = stderr_console().status(self.message)
            self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def text(self, info: dict[str, Any]) -> str:
        parts = [f"{self.message}: {info['phase']}", f"{info['nodes']} nodes"]
        if info.get("score") is not None:
            parts.append(f"best {info['score']:.1f}")
        if info.get("bound") is not None:
            parts.append(f"bound {info['bound']:.1f}")
        if info.get("gap") is not None:
            parts.append(f"gap {100 * info['gap']:.2f}%")
        parts.append(f"{info['elapsed_s']:.0f} s")
        return " · ".join(parts)

    def __call__(self, info: dict[str, Any]) -> None:
        now = info["elapsed_s"]
        if self.quiet:
            return
        if self.live:
            if now - self.last >= 0.2 or not self.fed:
                self.status.update(self.text(info))
                self.last, self.fed = now, True
        elif now >= self.last + self.every:
            err(self.text(info))
            self.last = now


def _status(fn: Any, message: str, args: argparse.Namespace) -> Any:
    with _SolveProgress(message, args) as progress:
        args.progress_fn = progress
        try:
            return fn()
        finally:
            args.progress_fn = None


def _write_run(out: Path, obj: dict[str, Any], result: Any, *, name: str, args: argparse.Namespace, wall: float) -> None:
    rows = obj.get("front") and [
        {"budget_" + k: v for k, v in row["budget"].items() if v is not None} | {k: v for k, v in row.items() if k != "budget"}
        for row in obj["front"]
    ] or pareto_rows(result.candidates)
    save_run(out, obj, rows, name=name, args=args, wall=wall,
             provenance={"solver": result.stats.backend, "nodes": result.stats.nodes})


def _print_solve_table(result: Any, *, name: str, front: list[dict[str, Any]]) -> None:
    stopped = result.stats.extra.get("stopped")
    caption = (f"status {result.status} · bound {fmt(result.bound)} · gap {fmt(result.gap, 'pct')} · "
               f"{result.stats.nodes} nodes · {result.stats.solve_time_s:.2f} s"
               + (f" · stopped by {stopped.replace('_', ' ')}" if stopped else ""))
    rows = []
    for i, c in enumerate(result.candidates):
        gap = (result.bound - c.score) / abs(result.bound) if abs(result.bound) < float("inf") else float("inf")
        rows.append((i + 1, c.spec.name, fmt(c.score), format_count(c.macs), format_count(c.params), fmt(c.rho), fmt(gap, "pct")))
    print_table(f"{name}: {len(result.candidates)} candidates", ["#", "name", "score", "macs", "params", "rho", "gap"], rows, caption=caption)
    if result.best is not None:
        title, columns, rows = result.best.spec.layout()
        print_table(f"best: {title}", columns, rows)
    if front:
        print_table("budget sweep", ["budget", "status", "score", "macs", "params", "gap"],
                    [(Budget.from_dict(r["budget"]).to_text(), r["status"], fmt(r["score"]), format_count(r["macs"]),
                      format_count(r["params"]), fmt(r["gap"], "pct")) for r in front])
