"""How a DeepMAD solve's time to a certified gap varies with its path; prints one JSON object.

A branch and bound's node count moves with the last digits of every relaxation (any change to the numbers sends
the search another way), so one run per space says little about a change to the solver. This script solves each
space at its template budget and at the budgets scaled by ``1 + k * 1e-6`` (``--offsets``, default
-2..2: the same designs but for those on a budget's very edge, other numbers on every relaxation), each to a
``--gap-tol`` (default 1 %) or ``--max-nodes``, and reports per solve the nodes and CPU seconds
(``time.process_time``, beside wall time) at which the gap was reached, and per space their median and range.
A first small solve warms the imports, so the figures are after imports. Run it at two commits to compare
them (docs/benchmarks.md, "Speed"). Usage:
``python benchmarks/solve_paths.py [--spaces deepmad-r18,deepmad-r34,deepmad-r50] [--offsets -2,-1,0,1,2]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spaces", default="deepmad-r18,deepmad-r34,deepmad-r50")
    parser.add_argument("--offsets", default="-2,-1,0,1,2", help="budget scale offsets k (budget * (1 + k * 1e-6))")
    parser.add_argument("--gap-tol", type=float, default=0.01)
    parser.add_argument("--max-nodes", type=int, default=1000)
    args = parser.parse_args()
    offsets = [int(k) for k in args.offsets.split(",")]

    from archsearch.solvers import DeepMADSolver
    from archsearch.space import get_space

    warm = get_space("deepmad-cifar")
    DeepMADSolver(max_nodes=2).solve(warm, warm.budget, top_k=1)
    out: dict = {"gap_tol": args.gap_tol, "max_nodes": args.max_nodes, "offsets": offsets, "spaces": {}}
    for name in args.spaces.split(","):
        space = get_space(name)
        runs = []
        for k in offsets:
            scale = 1 + k * 1e-6
            budget = space.budget.replace(**{f: int(getattr(space.budget, f) * scale) for f in ("flops", "params", "macs")
                                             if getattr(space.budget, f) is not None})
            c, t = time.process_time(), time.perf_counter()
            reached: dict = {}

            def progress(state: dict, c: float = c, t: float = t, reached: dict = reached) -> None:
                gap = state.get("gap")
                if gap is not None and gap <= args.gap_tol and not reached:
                    reached.update(nodes=state["nodes"], cpu_s=round(time.process_time() - c, 3),
                                   wall_s=round(time.perf_counter() - t, 3))

            res = DeepMADSolver(max_nodes=args.max_nodes, gap_tol=args.gap_tol, progress=progress).solve(
                space, budget, top_k=1)
            runs.append({"offset": k, "score": res.best.score if res.best else None, "gap": res.gap,
                         "nodes": res.stats.nodes, "cpu_s": round(time.process_time() - c, 3),
                         "wall_s": round(time.perf_counter() - t, 3), "reached": reached or None})
        hit = [r["reached"]["cpu_s"] for r in runs if r["reached"]]
        out["spaces"][name] = {
            "runs": runs, "reached": f"{len(hit)} of {len(runs)}",
            "cpu_s_to_gap": {"median": statistics.median(hit), "min": min(hit), "max": max(hit)} if hit else None,
            "nodes_to_gap": sorted(r["reached"]["nodes"] for r in runs if r["reached"])}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
