"""Benchmark of the DeepMAD solver on every template budget; prints one JSON object.

For each template: solve time (after imports), best score, bound, gap, nodes, and the best
design's MACs/params/rho; for deepmad-r50 also the unpenalised solve and the published
DeepMAD-R50 (Shen et al., CVPR 2023) scored under the same model, and the wall time of the
whole CLI call. Usage: ``python benchmarks/solve.py [--time-limit S] [--spaces a,b]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--spaces", default="deepmad-r18,deepmad-r34,deepmad-r50,deepmad-mbv2,deepmad-cifar")
    args = parser.parse_args()

    t_import = time.perf_counter()
    from archsearch.solvers import DeepMADProgram, Design, solve_deepmad
    from archsearch.space import get_space

    import_s = time.perf_counter() - t_import
    rows = []
    for name in args.spaces.split(","):
        space = get_space(name)
        for penalty in ((True, False) if name == "deepmad-r50" else (True,)):
            t = time.perf_counter()
            res = solve_deepmad(space, top_k=1, depth_penalty=penalty, time_limit=args.time_limit)
            wall = time.perf_counter() - t
            best = res.best
            rows.append({
                "space": name, "depth_penalty": penalty, "budget": space.budget.to_text(), "status": res.status,
                "solve_time_s": round(wall, 3), "score": best.score if best else None, "bound": res.bound,
                "gap": res.gap, "nodes": res.stats.nodes, "macs": best.macs if best else None,
                "params": best.params if best else None, "rho": best.rho if best else None,
            })
    out = {"time_limit_s": args.time_limit, "import_s": round(import_s, 3), "solves": rows}
    if "deepmad-r50" in args.spaces:
        space = get_space("deepmad-r50")
        pub = Design(32, (128, 512, 872, 1024, 1232), (40, 48, 88, 104, 120), (5,) * 5, (1, 11, 12, 13, 15))
        for penalty in (True, False):
            ev = DeepMADProgram(space, space.budget, depth_penalty=penalty).evaluate(pub)
            out.setdefault("published_r50", {})["penalised" if penalty else "unpenalised"] = {
                "score": ev.score, "macs": ev.macs, "params": ev.params, "rho": ev.rho, "feasible": ev.feasible}
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "archsearch", "solve", "--space", "deepmad-r50", "--format", "json",
                               "--time-limit", str(min(args.time_limit, 5.0))], capture_output=True, text=True)
        out["cli_r50_wall_s_time_limit_5"] = round(time.perf_counter() - t, 3)
        out["cli_r50_rc"] = proc.returncode
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
