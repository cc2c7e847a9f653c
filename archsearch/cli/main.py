"""``archsearch``: the command line.

Exit codes: 0 success; 1 a verification found a difference; 2 bad input or an infeasible budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from archsearch import __version__
from archsearch.cli._args import Parser, check_names, check_numbers, check_paths
from archsearch.cli._checks import check_output, check_run_target, preflight
from archsearch.cli._output import (EXIT_DIFF, EXIT_OK, EXIT_USAGE, err, fmt, print_json, print_results, print_table,
                                    report_hint, stderr_console, top1_text)
from archsearch.cli._program import design_options, solver_for
from archsearch.cli._runs import pareto_rows, run_name, save_run, versions
from archsearch.errors import ArchsearchError, BudgetError, SpecError
from archsearch.space.budget import BUDGET_KEYS, Budget, format_count, parse_count, parse_latency

__all__ = ["main", "build_parser"]


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


def _write_designs_run(out: Path, cands: Sequence[Any], *, space: Any, budget: Budget, kind: str, name: str,
                       args: argparse.Namespace, wall: float, extra: dict[str, Any]) -> None:
    """A run directory for designs no solve produced (``baseline``, ``sample``), read like a solve's."""
    record = {"status": "feasible", "bound": None, "gap": None, "time_s": round(wall, 6),
              **_designs_json(cands, space, budget, kind)}
    rows = [{**row, "kind": kind} for row in pareto_rows(cands)]
    save_run(out, record, rows, name=name, args=args, wall=wall, provenance={"solver": kind, **extra})


def _print_designs(cands: Sequence[Any], title: str, caption: str) -> None:
    flops = any(c.extra.get("flops") is not None for c in cands)
    rows = [(i + 1, c.spec.name, c.extra.get("kind", ""), fmt(c.score), format_count(c.macs),
             *([format_count(c.extra.get("flops"))] if flops else []), format_count(c.params),
             fmt(c.rho), "yes" if c.extra.get("rules_ok") else "no", fmt(c.extra.get("multiplier")))
            for i, c in enumerate(cands)]
    columns = ["#", "name", "kind", "score", "macs", *(["flops (DeepMAD)"] if flops else []), "params", "rho", "rules",
               "multiplier"]
    print_table(title, columns, rows, caption=caption + ("; flops: the DeepMAD reference code's count" if flops else ""))


def _designs_json(cands: Sequence[Any], space: Any, budget: Budget, kind: str) -> dict[str, Any]:
    from archsearch.solvers.designs import candidates_record

    return {"space": space.name, "budget": budget.to_dict(), "kind": kind, "candidates": candidates_record(cands)}


def cmd_baseline(args: argparse.Namespace) -> int:
    from archsearch.solvers.designs import baseline
    from archsearch.space import get_space

    space = get_space(args.space)
    budget = Budget.parse(args.budget) if args.budget else space.budget
    check_run_target(args.out, overwrite=args.overwrite, new={"space": space.name, "budget": budget.to_dict(), "kind": "baseline"})
    options = design_options(space, args)
    t0 = time.perf_counter()
    cand = baseline(space, budget, scale=args.scale, resolution=args.resolution, **options)
    wall = time.perf_counter() - t0
    name = args.name or run_name(space.name, budget) + f"-baseline-{args.scale}"
    if args.out:
        _write_designs_run(Path(args.out), [cand], space=space, budget=budget, kind="baseline", name=name, args=args,
                           wall=wall, extra={"scale": args.scale, "multiplier": cand.extra.get("multiplier")})
    if args.format == "json":
        print_json(_designs_json([cand], space, budget, "baseline"))
    else:
        what = (f"the published network of {space.name}'s budget" if args.scale == "published"
                else f"the {args.scale} scaling of {space.name}'s reference design")
        _print_designs([cand], f"{name}: {what}",
                       caption=("at its own cost; " if args.scale == "published" else
                                f"the largest multiplier whose design fits {budget.to_text()}; ") + "score: the objective "
                               f"{space.solver} maximises; rules: the space's rules (effectiveness bound included)")
        title, columns, rows = cand.spec.layout()
        print_table(f"baseline: {title}", columns, rows)
        if args.out:
            err(f"wrote {Path(args.out) / 'candidates.json'} and {Path(args.out) / 'pareto.csv'}")
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from archsearch.solvers.designs import sample
    from archsearch.space import get_space

    space = get_space(args.space)
    budget = Budget.parse(args.budget) if args.budget else space.budget
    check_run_target(args.out, overwrite=args.overwrite, new={"space": space.name, "budget": budget.to_dict(), "kind": "random"})
    options = design_options(space, args)
    t0 = time.perf_counter()
    cands = sample(space, budget, args.n, seed=args.seed, resolution=args.resolution, **options)
    wall = time.perf_counter() - t0
    name = args.name or run_name(space.name, budget) + f"-random-s{args.seed}"
    if args.out:
        _write_designs_run(Path(args.out), cands, space=space, budget=budget, kind="random", name=name, args=args,
                           wall=wall, extra={"n": args.n})
    if args.format == "json":
        print_json(_designs_json(cands, space, budget, "random"))
    else:
        _print_designs(cands, f"{name}: {len(cands)} random designs of {space.name}",
                       caption=f"drawn uniformly, widths scaled to fit {budget.to_text()} and depths cut until the "
                               f"space's rules hold (seed {args.seed})")
        if args.out:
            err(f"wrote {Path(args.out) / 'candidates.json'} and {Path(args.out) / 'pareto.csv'}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from archsearch.cost.latency import latency_model_path
    from archsearch.space import get_space

    space = get_space(args.space)
    if args.runs < args.runs_min:
        raise SpecError(f"--runs: expected an integer >= {args.runs_min}, got {args.runs}")
    from archsearch.train.latency import calibrate_space

    t0 = time.perf_counter()
    kwargs = dict(device=args.device, batch=args.batch, threads=args.threads, samples=args.samples, runs=args.runs, seed=args.seed,
                  models=args.models, fit=args.fit, rounds=args.rounds, statistic=args.statistic)
    if args.format != "json" and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True, console=stderr_console()) as bar:
            task = bar.add_task(f"timing {space.name} blocks", total=None)
            model = calibrate_space(space, progress=lambda done, total: bar.update(task, completed=done, total=total), **kwargs)
    else:
        model = calibrate_space(space, **kwargs)
    wall = time.perf_counter() - t0
    path = latency_model_path(space.name, args.device)
    if args.format == "json":
        print_json({"path": str(path), "wall_time_s": round(wall, 3), **model.to_dict()})
    else:
        rows = [(unit, *(f"{c:.4g}" for c in model.coefs[unit]), int(r["n"]), fmt(r["rms_rel"], "pct"), fmt(r["max_rel"], "pct"))
                for unit, r in model.residuals.items() if unit in model.coefs]
        print_table(f"{space.name} on {model.device_name} ({model.threads} threads, batch {model.batch}, {model.resolution} px)",
                    ["unit", "a ms", "b ms/1x1-MMAC", "c ms/kxk-MMAC", "d ms/dw-MMAC", "e ms/Mact", "f ms/Mweight", "n", "rms rel", "max rel"], rows,
                    caption=f"latency ({model.statistic} of {model.runs} runs) = scale x sum over units of (a + b 1x1 MACs + c kxk MACs "
                            f"+ d depthwise MACs + e activations + f weights)"
                            + (f", conv channels rounded up to {model.channel_block} in the MACs" if model.channel_block > 1 else "")
                            + (f", a kxk MAC counting (k²/9)^{-model.kernel_exponent:g}" if model.kernel_exponent else "")
                            + "; "
                            f"fit {args.fit} with {int(model.residuals.get('model', {}).get('n', 0))} whole models"
                            + (f", rms {model.residuals['model']['rms_rel']:.1%} on them" if 'rms_rel' in model.residuals.get('model', {}) else "")
                            + f", scale {model.scale:.3f} · {wall:.1f} s")
        err(f"wrote {path}")
    return EXIT_OK


def cmd_spaces(args: argparse.Namespace) -> int:
    from archsearch.space import get_space, list_spaces

    rows = [get_space(n).summary() for n in list_spaces()]
    if args.format == "json":
        print_json(rows)
    else:
        print_table("search spaces", ["name", "family", "resolution", "budget_counts", "default_budget", "description"],
                    [(r["name"], r["family"], r["resolution"], r["budget_counts"], r["default_budget"], r["description"]) for r in rows])
    return EXIT_OK


def _run_space(source: str, spec: Any) -> str | None:
    """The registered space of a run's ``candidates.json`` (so ``show`` scores its candidate as the solver
    did), or None for a bare spec or an unknown space."""
    from archsearch.space import list_spaces

    path = Path(source)
    if not path.is_file():
        return None
    from archsearch._jsonio import read_json

    try:
        data = read_json(path, what="spec")
    except ArchsearchError:
        return None
    name = data.get("space") if isinstance(data, dict) and "candidates" in data else None
    if isinstance(name, str) and name in list_spaces():
        from archsearch.space import get_space

        return name if get_space(name).family == spec.family else None
    return None


def cmd_show(args: argparse.Namespace) -> int:
    from archsearch import cost
    from archsearch.space import load_spec

    spec = load_spec(args.spec)
    info: dict[str, Any] = {"family": spec.family, "name": getattr(spec, "name", "")}
    info.update(cost.costs(spec))
    if not args.space:
        args.space = _run_space(args.spec, spec)
    if args.space:
        from archsearch.solvers.designs import score_spec
        from archsearch.space import get_space

        space = get_space(args.space)
        cand = score_spec(space, spec, **design_options(space, args))
        info.update(space=space.name, score=cand.score, rho=cand.rho,
                    **{k: v for k, v in cand.extra.items() if k in ("entropy", "penalty", "rules_ok", "fits_budget", "flops")})
    elif spec.family == "cnn":
        from archsearch.objectives import deepmad_score

        sc = deepmad_score(spec)
        info.update(deepmad_entropy=sc.entropy, deepmad_penalty=sc.penalty, rho=sc.rho)
    code = EXIT_OK
    if args.verify:
        from archsearch.models import measured_costs

        measured = measured_costs(spec)
        info.update(measured)
        for key in ("params", "macs", "params_with_head", "macs_with_head"):
            if info[key] != measured[f"measured_{key}"]:
                code = EXIT_DIFF
        info["verified"] = code == EXIT_OK
    if args.format == "json":
        info["spec"] = spec.to_dict()
        print_json(info)
    else:
        title, columns, rows = spec.layout()
        print_table(title, columns, rows)
        keys = [k for k in ("params", "macs", "params_with_head", "macs_with_head", "activation_memory") if k in info]
        rows = [(k, format_count(info[k]), format_count(info.get(f"measured_{k}")) if args.verify else "") for k in keys]
        print_table("costs (backbone = all but the classifier)", ["quantity", "analytic", "measured" if args.verify else ""], rows)
        if "score" in info:
            score_rows = [(k, fmt(info[k])) for k in ("score", "entropy", "penalty", "rho") if info.get(k) is not None]
            if info.get("flops") is not None:
                score_rows.append(("flops (DeepMAD reference counting)", format_count(info["flops"])))
            score_rows += [("rules of the space", "kept" if info["rules_ok"] else "broken"),
                           ("space's default budget", "fits" if info["fits_budget"] else "exceeded")]
            print_table(f"objective of {info['space']} (what its solver maximises)", ["quantity", "value"], score_rows)
        if args.verify:
            err("verified: analytic costs equal the built module" if code == EXIT_OK else "MISMATCH: analytic and measured costs differ")
    return code


def cmd_pareto(args: argparse.Namespace) -> int:
    from archsearch.results import merge_runs
    from archsearch.results.runs import with_validation

    args.runs = _expand_runs(args.runs)
    frame = merge_runs(args.runs)
    frame = with_validation(frame, args.runs, storage=args.storage)
    validated = bool((frame["seeds"] > 0).any())
    if not validated:
        frame = frame.drop(columns=["top1", "top1_std", "seeds", "training"])
    if args.out:
        from archsearch._files import atomic_write_text

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, frame.to_csv(index=False))
    if args.format == "json":
        print_json(json.loads(frame.to_json(orient="records")))
    elif args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    else:
        rows = [(r.run, r.family, r.objective, r.name, fmt(r.score), format_count(r.macs), format_count(r.params),
                 *([top1_text(r) if r.seeds else "-"] if validated else []), "*" if r.pareto else "")
                for r in frame.itertuples()]
        print_table(f"{len(frame)} candidates from {frame['run'].nunique()} runs (whole-model costs)",
                    ["run", "family", "objective", "name", "score", "macs", "params",
                     *(["top1 % (seeds)"] if validated else []), "pareto"], rows,
                    caption="pareto: no candidate of the same objective scores higher at no more MACs and params"
                            + ("; top-1: mean ± std over seeds of the most complete training" if validated else ""))
    return EXIT_OK


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
    progress = sys.stderr.isatty() and args.format != "json"

    def announce(row: dict[str, Any]) -> None:
        if args.format != "json" and main_rank:
            err(f"{row['name']}: top1 {100 * row['top1']:.2f}% top5 {100 * row['top5']:.2f}% ({row['status']})")

    try:
        rows = validate_run(
            args.source, dataset=args.dataset, recipe=args.recipe, device=args.device, top_k=args.top_k,
            storage=args.storage, seed=args.seed, epochs=args.epochs, amp=args.amp, compile=args.compile,
            data_dir=args.data_dir, max_batches=args.max_batches, latency=not args.no_latency, progress=progress,
            latency_statistic=args.latency_statistic,
            on_result=announce, distill=args.distill, seeds=seeds, eval_every=args.eval_every,
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
        if args.format != "json" and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          transient=True, console=stderr_console()) as bar:
                task = bar.add_task(f"teacher {args.model} on {info.name}", total=None)
                header = build_cache(progress=lambda done, total: bar.update(task, completed=done, total=total), **kwargs)
        else:
            header = build_cache(**kwargs)
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


# -- search and worker: proposals around the optimum as a shared Optuna queue ------------------------
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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
    return run_worker(**options, on_start=progress.start, on_result=on_result, on_idle=progress.counts)


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
    show = sys.stderr.isatty() and args.format != "json" and main_rank
    with _TrialProgress(enabled=show, quiet=args.format == "json" or not main_rank) as progress:
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
    show = sys.stderr.isatty() and args.format != "json" and main_rank
    with _TrialProgress(enabled=show, quiet=args.format == "json" or not main_rank) as progress:
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


def _add_search_parsers(sub: Any) -> None:
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
    p.add_argument("--recipe", default="quick", help="training recipe: quick (default) or standard")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--max-batches", type=int, default=None, help="at most N training batches per epoch (smoke runs)")
    p.add_argument("--no-latency", action="store_true", help="skip the batch-1 latency measurement")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto", help="autocast on CUDA (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and of the neighbours' order (default 0)")
    p.add_argument("--resolution", type=int, default=None, help="input resolution of the designs (default: the space's; digits takes <= 32)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="a wall-clock cap in seconds per solve (default none: deepmad-* solves stop at --gap-tol or "
                        "their node budget, so the proposals are the same on any machine)")
    p.add_argument("--gap-tol", type=float, default=1e-3, help="stop a solve when its relative gap is <= this (default 1e-3)")
    _add_worker_options(p)
    p.set_defaults(func=cmd_search, rho=None, no_depth_penalty=False, entropy="code", no_priors=False)

    p = sub.add_parser("worker", help="take trials of a search study from its shared queue and train them (any number of machines)")
    p.add_argument("--study", required=True, help="study name (printed by `archsearch search`)")
    p.add_argument("--storage", help="Optuna storage URL of the study, e.g. postgresql+psycopg2://USER@HOST/DB (default: "
                                     "$ARCHSEARCH_STORAGE, which keeps a password off the command line; one of them is required)")
    _add_worker_options(p)
    p.set_defaults(func=cmd_worker)
# -- prune (NViT) ---------------------------------------------------------------------------------


_GROUP_NAMES = ("emb", "heads", "qk", "v", "mlp")


def _parse_groups(text: str) -> dict[str, int]:
    """``emb=16,heads=2,qk=8,v=8,mlp=16`` (any subset) -> the sizes given, checked without importing torch."""
    sizes: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        digits = value.strip()
        if key.strip() not in _GROUP_NAMES or not (digits.isascii() and digits.isdigit() and len(digits) <= 6) or int(digits) < 1:
            raise SpecError(f"--groups: expected KEY=N with KEY in {list(_GROUP_NAMES)} and N an integer in [1, 999999], "
                            f"got {part[:40]!r}")
        sizes[key.strip()] = int(value)
    return sizes


def cmd_prune(args: argparse.Namespace) -> int:
    if not args.model.startswith("timm:"):
        raise SpecError(f"--model: expected timm:NAME (a timm VisionTransformer), got {args.model[:60]!r}")
    from archsearch._jsonio import parse_json

    kwargs = parse_json(args.model_kwargs, source="--model-kwargs") if args.model_kwargs else {}
    if not isinstance(kwargs, dict):
        raise SpecError(f"--model-kwargs: expected a JSON object, got {args.model_kwargs[:60]!r}")
    groups = _parse_groups(args.groups or "")
    if args.threads is not None:  # torch only now: every argument above is checked in milliseconds
        import torch

        torch.set_num_threads(args.threads)
    from archsearch.train.prune import PruneConfig, prune_model

    from archsearch.train.prune import DEFAULT_GROUPS

    groups = tuple(groups.get(name, size) for name, size in zip(_GROUP_NAMES, DEFAULT_GROUPS))
    config = PruneConfig(criterion=args.criterion, groups=groups, every=args.every,
                         steps=args.steps, eta=args.eta, lr=args.prune_lr, batch_size=args.prune_batch_size)
    budget = Budget.parse(args.budget)
    quiet = args.format == "json"
    try:
        res = prune_model(model=args.model, dataset=args.dataset, budget=budget, out=args.out, model_kwargs=kwargs,
                          checkpoint=args.checkpoint, pretrained=args.pretrained, recipe=args.recipe, epochs=args.epochs,
                          config=config, seed=args.seed, device=args.device, data_dir=args.data_dir,
                          max_batches=args.max_batches, latency_space=args.latency_space,
                          progress=sys.stderr.isatty() and not quiet, log=(lambda m: None) if quiet else (lambda m: err(m)))
    except KeyboardInterrupt:
        err("interrupted: the finished phases are checkpointed in --out; re-run the same command to resume")
        return 130
    from archsearch.study import record_prune

    record_prune(args.out, res)
    if quiet:
        print_json(res)
        return EXIT_OK
    b, a = res["before"], res["after"]
    print_table(f"{res['model']} pruned ({res['criterion']}) to {budget.to_text()} on {res['dataset']}",
                ["", "top1 %", "params", "macs", "latency ms"],
                [("dense", f"{100 * b['top1']:.2f}", format_count(b["params"]), format_count(b["macs"]), f"{b['latency_ms']:.3f}"),
                 ("pruned, before fine-tuning", f"{100 * res['after_pruning']['top1']:.2f}", "", "", ""),
                 ("pruned", f"{100 * a['top1']:.2f}", format_count(a["params"]), format_count(a["macs"]), f"{a['latency_ms']:.3f}")],
                caption=f"EMB {res['embed_dim']['dense']} -> {res['embed_dim']['pruned']}; latency targets and dLat: GMACs proxy")
    print_table("per-block dims (dense -> pruned)", ["block", "heads", "qk/head", "v/head", "mlp"],
                [(r["block"], *(f"{r['dense_' + s]} -> {r[s]}" for s in ("heads", "qk", "v", "mlp"))) for r in res["blocks"]])
    err(f"wrote {Path(args.out) / 'pruned.json'}, pruned.pt, results.json, redistribution.png/.svg and the study trial")
    return EXIT_OK


def _add_prune_parser(sub: Any) -> None:
    p = sub.add_parser("prune", help="NViT global structural pruning of a trained timm ViT to a budget")
    p.add_argument("--model", required=True, help="timm:NAME of a timm VisionTransformer with a class token (deit_*, vit_*)")
    p.add_argument("--model-kwargs", help='JSON object of timm.create_model arguments, e.g. \'{"img_size": 32}\'')
    p.add_argument("--checkpoint", help="local weights of the dense model (torch.load weights_only=True); "
                                        "without weights the dense model is trained with the recipe first")
    p.add_argument("--pretrained", action="store_true", help="timm's published weights from the hub (needs network)")
    p.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, cifar10, cifar100, imagefolder:PATH")
    p.add_argument("--budget", required=True, help="targets counting the whole model: macs=..., params=..., latency=...ms")
    p.add_argument("--recipe", default="quick", help="recipe of the dense training (when needed) and the fine-tuning")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--criterion", choices=("hessian", "magnitude"), default="hessian")
    p.add_argument("--groups", help="group sizes, e.g. emb=16,heads=2,qk=8,v=8,mlp=16 (the default)")
    p.add_argument("--every", type=int, default=100, help="batches between pruning events (default 100)")
    p.add_argument("--steps", type=int, default=10, help="pruning events (default 10)")
    p.add_argument("--eta", type=float, default=5e-4, help="latency weight of I - eta*dLat(ms) (default 5e-4; 0: off)")
    p.add_argument("--latency-space", help="a ViT space calibrated on this device (archsearch calibrate --space nvit) "
                                           "whose latency model gives dLat and latency targets (default: the GMACs proxy)")
    p.add_argument("--prune-lr", type=float, default=1e-4, help="AdamW learning rate while pruning (default 1e-4)")
    p.add_argument("--prune-batch-size", type=int, default=64, help="batch size while pruning (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--data-dir", help="dataset download cache")
    p.add_argument("--max-batches", type=int, default=None, help="at most N training batches per epoch (smoke runs)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_prune)


def _expand_runs(paths: Sequence[str]) -> list[str]:
    """Run directories (or ``candidates.json`` files) from the command line: a directory that is no run
    stands for the runs below it (two levels, e.g. a study's ``BUDGET/KIND`` folders), and a file that
    is no run record is skipped with a note, so ``report STUDY/*`` works beside the study's own files."""
    runs: list[str] = []
    skipped: list[str] = []
    for text in paths:
        p = Path(text)
        if p.is_dir() and not (p / "candidates.json").is_file():
            below = sorted({c.parent for pattern in ("*/candidates.json", "*/*/candidates.json") for c in p.glob(pattern)})
            if not below:
                raise SpecError(f"run: {text} is neither a run directory nor a folder of runs (no candidates.json in it "
                                f"or two levels below)")
            runs.extend(str(b) for b in below)
        elif p.is_file() and p.name != "candidates.json" and p.suffix != ".json":
            skipped.append(text)
        else:
            runs.append(text)
    if skipped and runs:
        from archsearch.results import load_run

        for run in runs:  # a bad run is the one line of an error, never after a note
            load_run(run)
        err(f"note: skipped {len(skipped)} file(s) that are not runs: {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}")
    elif skipped:
        raise SpecError(f"run: {skipped[0]} is not a run directory or candidates.json")
    return list(dict.fromkeys(runs))


def cmd_report(args: argparse.Namespace) -> int:
    from archsearch.report import write_report

    t0 = time.perf_counter()
    args.runs = _expand_runs(args.runs)
    path = write_report(args.runs, out=args.out, title=args.title, storage=args.storage)
    size = path.stat().st_size
    if args.format == "json":
        print_json({"path": str(path), "bytes": size, "runs": list(args.runs), "wall_time_s": round(time.perf_counter() - t0, 3)})
    else:
        err(f"wrote {path} ({size / 1024:.0f} KiB, self-contained: open it in a browser)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="archsearch", description="Optimization-driven architecture search for efficient vision models.")
    parser.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    p.add_argument("--time-limit", type=float, default=None,
                   help="a wall-clock cap in seconds per solve (default: none for deepmad-* spaces, which stop at "
                        "--gap-tol or --max-nodes and so give the same answer on any machine; 30 for the others, "
                        "whose exact solves take well under a second); a solve it stops says that its answer "
                        "depends on the machine's speed")
    p.add_argument("--gap-tol", type=float, default=1e-3, help="stop when (bound - score)/|bound| <= this (default 1e-3)")
    p.add_argument("--max-nodes", type=int, default=None,
                   help="branch-and-bound nodes before returning the best design and its certified gap (deepmad-* "
                        "spaces; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="recorded in the run's provenance (the solver is deterministic)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (results and errors still print)")
    p.set_defaults(func=cmd_solve)

    for cmd in ("baseline", "sample"):
        if cmd == "baseline":
            p = sub.add_parser("baseline", help="the space's classic network scaled to the budget (uniform, width or depth)")
            p.add_argument("--scale", choices=("uniform", "width", "depth", "published"), default="uniform",
                           help="uniform: one multiplier on every width (default); width: stage widths only; depth: depths; "
                                "published: the published network of the space's budget at its own cost (deepmad-r18/r34/r50: "
                                "ResNet-18/34/50)")
        else:
            p = sub.add_parser("sample", help="random designs of a space within the budget and its rules, each scored")
            p.add_argument("-n", type=int, default=10, help="designs to draw (default 10)")
            p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0); the same seed gives the same designs")
        p.add_argument("--space", default="deepmad-r50", help="search space (see `archsearch spaces`); default deepmad-r50")
        p.add_argument("--budget", help="e.g. macs=4.13G,params=25.55M; default: the space's budget")
        p.add_argument("--resolution", type=int, default=None, help="input resolution (default: the space's)")
        p.add_argument("--rho", type=float, default=None, help="effectiveness bound rho0 of the score and rules (default: the space's)")
        p.add_argument("--no-depth-penalty", action="store_true", help="score S without DeepMAD's depth penalty")
        p.add_argument("--entropy", choices=("code", "paper"), default="code", help="block entropy variant of the score")
        p.add_argument("--name", help="run name (default: derived from space, budget and kind)")
        p.add_argument("--out", help="run directory: writes candidates.json and pareto.csv")
        p.add_argument("--overwrite", action="store_true", help="replace another run in --out (a different one is refused otherwise)")
        p.add_argument("--format", choices=("table", "json"), default="table")
        p.set_defaults(func=cmd_baseline if cmd == "baseline" else cmd_sample, no_priors=False)

    p = sub.add_parser("calibrate", help="time a space's building blocks on this device and fit its latency predictor")
    p.add_argument("--space", required=True, help="search space to calibrate (deepmad-*, nvit, revit*, stvit*, mci, tinyvit* spaces)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch", type=int, default=1, help="batch size of the timings (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--samples", type=int, default=48, help="blocks to time (default 48; stems and heads: 1/8 each)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per block and model (default 30, at least 30)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved passes over all blocks and models the runs are spread "
                                                         "over (default 3)")
    p.add_argument("--statistic", choices=("median", "p25", "min"), default="median",
                   help="what is kept of each block's runs (default median; min, then p25, are the reproducible ones "
                        "on a shared machine, and min gives the most accurate predictor there)")
    p.add_argument("--models", type=int, default=24, help="whole random models to time (default 24)")
    p.add_argument("--fit", choices=("joint", "blocks"), default="joint",
                   help="joint: coefficients fitted to block and whole-model timings at once (default); "
                        "blocks: to blocks alone, whole models give a scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_calibrate, runs_min=30)

    p = sub.add_parser("pareto", help="merge the candidates of several runs (any families) into one Pareto table")
    p.add_argument("runs", nargs="+", help="run directories written by `solve --out` (or their candidates.json)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--out", help="also write the table to this CSV file")
    p.add_argument("--storage", help="Optuna storage URL of the validation studies, opened read-only (default: $ARCHSEARCH_STORAGE, "
                                     "else each run's study.db)")
    p.set_defaults(func=cmd_pareto)

    p = sub.add_parser("spaces", help="list the search spaces")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("show", help="print a spec's stages and exact costs; --verify builds it and measures them")
    p.add_argument("spec", help="spec JSON file (or a candidates.json: its best candidate)")
    p.add_argument("--space", help="also print the score, penalty and rho this space's solver maximises for the spec")
    p.add_argument("--rho", type=float, default=None, help="with --space: effectiveness bound rho0 (default: the space's)")
    p.add_argument("--no-depth-penalty", action="store_true", help="with --space: score S without DeepMAD's depth penalty")
    p.add_argument("--entropy", choices=("code", "paper"), default="code", help="with --space: block entropy variant")
    p.add_argument("--verify", action="store_true", help="build the module and compare measured params/MACs (exit 1 on a difference)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_show, no_priors=False)

    p = sub.add_parser("validate", help="train and measure candidates on CPU or GPU; results go to the run's Optuna study")
    p.add_argument("source", help="run directory written by `solve --out`, or a candidates.json (results go to its directory)")
    p.add_argument("--dataset", default="digits", help="digits (default, offline), fashion-mnist, cifar10, cifar100 or imagefolder:PATH")
    p.add_argument("--recipe", default="quick", help="training recipe: quick (default) or standard")
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
    p.set_defaults(func=cmd_validate)

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
    p.set_defaults(func=cmd_teacher)

    p = sub.add_parser("results", help="table of a run's validated candidates, Pareto-optimal ones marked")
    p.add_argument("run", help="run directory (or its candidates.json)")
    p.add_argument("--storage", help="Optuna storage URL (default: $ARCHSEARCH_STORAGE, which keeps a password off the command "
                                     "line, else sqlite:///RUN_DIR/study.db)")
    p.add_argument("--per-seed", action="store_true", help="one row per candidate and seed instead of the mean over seeds")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=cmd_results)

    _add_search_parsers(sub)
    _add_prune_parser(sub)
    p = sub.add_parser("report", help="write one self-contained HTML report (plots, Pareto table, architectures, validation) of runs")
    p.add_argument("runs", nargs="+", help="run directories written by `solve --out` (or their candidates.json)")
    p.add_argument("-o", "--out", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--title", help="page title (default: the run names)")
    p.add_argument("--storage", help="Optuna storage URL of the validation study, opened read-only (default: $ARCHSEARCH_STORAGE, "
                                     "else sqlite:///RUN_DIR/study.db)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: print the written path and size as JSON")
    p.set_defaults(func=cmd_report)
    return parser


def _validate(args: argparse.Namespace) -> None:
    """Arguments checked before any work or heavy import: every number in its range, every registered
    name (space, dataset, recipe) and the budget's grammar (:mod:`archsearch.cli._args`)."""
    check_numbers(args)
    check_paths(args)
    check_names(args)


def _masked(text: Any) -> str:
    from archsearch.study.storage import mask_text

    return mask_text(str(text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _validate(args)
        preflight(args)  # every output path and the storage URL, before any work
        return args.func(args)
    except ArchsearchError as exc:
        err(f"error: {_masked(exc)}")
        return EXIT_USAGE
    except OSError as exc:
        if exc.filename is None or not exc.strerror:
            raise
        # the system refused a file (a full disk, a mount gone read-only) after the checks passed: one line
        err(f"error: {exc.filename}: {exc.strerror}" + (f" (-> {exc.filename2})" if exc.filename2 else ""))
        return EXIT_USAGE
    except Exception as exc:
        from archsearch.study.storage import is_storage_error

        if not is_storage_error(exc):
            raise
        # a database failing after it was opened (a server gone, a file damaged meanwhile): one line, no traceback
        err(f"error: storage: {_masked(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
