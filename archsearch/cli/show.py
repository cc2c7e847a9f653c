"""``archsearch spaces`` and ``archsearch show``: the registered search spaces, and one spec's stages, exact
costs and (with ``--space``) the objective its space's solver maximises; ``--verify`` builds the module and
compares the measured costs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from archsearch.cli._output import EXIT_DIFF, EXIT_OK, err, fmt, print_json, print_table
from archsearch.cli._program import design_options
from archsearch.errors import ArchsearchError
from archsearch.space.budget import format_count

__all__ = ["cmd_show", "cmd_spaces", "register_show", "register_spaces"]


def register_spaces(sub: Any) -> None:
    p = sub.add_parser("spaces", help="list the search spaces")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_spaces)


def register_show(sub: Any) -> None:
    p = sub.add_parser("show", help="print a spec's stages and exact costs; --verify builds it and measures them")
    p.add_argument("spec", help="spec JSON file (or a candidates.json: its best candidate)")
    p.add_argument("--space", help="also print the score, penalty and rho this space's solver maximises for the spec")
    p.add_argument("--rho", type=float, default=None, help="with --space: effectiveness bound rho0 (default: the space's)")
    p.add_argument("--no-depth-penalty", action="store_true", help="with --space: score S without DeepMAD's depth penalty")
    p.add_argument("--entropy", choices=("code", "paper"), default="code", help="with --space: block entropy variant")
    p.add_argument("--profile", help="with --space: score with the tuned constants of a profile.json (`archsearch tune`)")
    p.add_argument("--verify", action="store_true", help="build the module and compare measured params/MACs (exit 1 on a difference)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_show, no_priors=False)


def cmd_spaces(args: argparse.Namespace) -> int:
    from archsearch.space import get_space, list_spaces

    rows = [get_space(n).summary() for n in list_spaces()]
    if args.format == "json":
        print_json(rows)
    else:
        # the budget wraps between its keys, never inside one; the description wraps between words
        print_table("search spaces", ["name", "family", "px", "counts", "default budget", "description"],
                    [(r["name"], r["family"], r["resolution"], r["budget_counts"], r["default_budget"].replace(",", ", "),
                      r["description"]) for r in rows])
    return EXIT_OK


def _run_space(source: str, spec: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The registered space of a run's ``candidates.json`` and the tuned constants it was solved with (its
    ``profile``), so ``show`` scores its candidate as the solver did; ``(None, None)`` for a bare spec or an
    unknown space."""
    from archsearch.space import list_spaces

    path = Path(source)
    if not path.is_file():
        return None, None
    from archsearch._jsonio import read_json

    try:
        data = read_json(path, what="spec")
    except ArchsearchError:
        return None, None
    name = data.get("space") if isinstance(data, dict) and "candidates" in data else None
    if isinstance(name, str) and name in list_spaces():
        from archsearch.space import get_space

        if get_space(name).family != spec.family:
            return None, None
        profile = data.get("profile")
        return name, (profile if isinstance(profile, dict) and isinstance(profile.get("constants"), dict) else None)
    return None, None


def cmd_show(args: argparse.Namespace) -> int:
    from archsearch import cost
    from archsearch.space import load_spec

    spec = load_spec(args.spec)
    info: dict[str, Any] = {"family": spec.family, "name": getattr(spec, "name", "")}
    info.update(cost.costs(spec))
    run_profile = None
    if not args.space:
        args.space, run_profile = _run_space(args.spec, spec)
    if args.space:
        from archsearch.solvers.constants import check_constants
        from archsearch.solvers.designs import score_spec
        from archsearch.space import get_space

        space = get_space(args.space)
        options = design_options(space, args)
        if run_profile is not None and not args.profile:  # the run's tuned constants, as its solve used them
            options.update(check_constants(space, run_profile["constants"], where=lambda n: f"{args.spec}: profile.constants.{n}"))
            info["profile"] = run_profile
        elif getattr(args, "profile_record", None):
            info["profile"] = args.profile_record
        cand = score_spec(space, spec, **options)
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
            if info.get("profile"):
                consts = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info["profile"]["constants"].items())
                score_rows.append(("tuned constants (profile)", f"{consts} ({info['profile'].get('path')})"))
            score_rows += [("rules of the space", "kept" if info["rules_ok"] else "broken"),
                           ("space's default budget", "fits" if info["fits_budget"] else "exceeded")]
            print_table(f"objective of {info['space']} (what its solver maximises)", ["quantity", "value"], score_rows)
        if args.verify:
            err("verified: analytic costs equal the built module" if code == EXIT_OK else "MISMATCH: analytic and measured costs differ")
    return code
