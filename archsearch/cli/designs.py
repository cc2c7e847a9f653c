"""``archsearch baseline`` and ``archsearch sample``: designs no solve produced — a space's classic network
scaled to the budget, and random designs within the budget and the space's rules — each scored by the
space's objective and written as a run that ``pareto``, ``report`` and ``validate`` read like a solve's."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

from archsearch.cli._checks import check_run_target
from archsearch.cli._output import EXIT_OK, err, fmt, print_json, print_table
from archsearch.cli._program import design_options
from archsearch.cli._runs import pareto_rows, run_name, save_run
from archsearch.space.budget import Budget, format_count

__all__ = ["cmd_baseline", "cmd_sample", "register_baseline", "register_sample"]


def register_baseline(sub: Any) -> None:
    p = sub.add_parser("baseline", help="the space's classic network scaled to the budget (uniform, width or depth)")
    p.add_argument("--scale", choices=("uniform", "width", "depth", "published"), default="uniform",
                   help="uniform: one multiplier on every width (default); width: stage widths only; depth: depths; "
                        "published: the published network of the space's budget at its own cost (deepmad-r18/r34/r50: "
                        "ResNet-18/34/50)")
    _add_design_arguments(p)
    p.set_defaults(func=cmd_baseline, no_priors=False)


def register_sample(sub: Any) -> None:
    p = sub.add_parser("sample", help="random designs of a space within the budget and its rules, each scored")
    p.add_argument("-n", type=int, default=10, help="designs to draw (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0); the same seed gives the same designs")
    _add_design_arguments(p)
    p.set_defaults(func=cmd_sample, no_priors=False)


def _add_design_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments ``baseline`` and ``sample`` share, after their own."""
    p.add_argument("--space", default="deepmad-r50", help="search space (see `archsearch spaces`); default deepmad-r50")
    p.add_argument("--budget", help="e.g. macs=4.13G,params=25.55M; default: the space's budget")
    p.add_argument("--resolution", type=int, default=None, help="input resolution (default: the space's)")
    p.add_argument("--rho", type=float, default=None, help="effectiveness bound rho0 of the score and rules (default: the space's)")
    p.add_argument("--no-depth-penalty", action="store_true", help="score S without DeepMAD's depth penalty")
    p.add_argument("--entropy", choices=("code", "paper"), default="code", help="block entropy variant of the score")
    p.add_argument("--profile", help="score with the tuned constants of a profile.json written by `archsearch tune`")
    p.add_argument("--name", help="run name (default: derived from space, budget and kind)")
    p.add_argument("--out", help="run directory: writes candidates.json and pareto.csv")
    p.add_argument("--overwrite", action="store_true", help="replace another run in --out (a different one is refused otherwise)")
    p.add_argument("--format", choices=("table", "json"), default="table")


def _write_designs_run(out: Path, cands: Sequence[Any], *, space: Any, budget: Budget, kind: str, name: str,
                       args: argparse.Namespace, wall: float, extra: dict[str, Any]) -> None:
    """A run directory for designs no solve produced (``baseline``, ``sample``), read like a solve's."""
    record = {"status": "feasible", "bound": None, "gap": None, "time_s": round(wall, 6),
              **_designs_json(cands, space, budget, kind)}
    if getattr(args, "profile_record", None):
        record["profile"] = args.profile_record
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
