"""Benchmark of the DeepMAD solver on every template budget; prints one JSON object.

For each template: solve time (after imports), best score, bound, gap, nodes, and the best
design's MACs/params/rho; for deepmad-r50 also the unpenalised solve and the published
DeepMAD-R50 (Shen et al., CVPR 2023) scored under the same model, and the wall time of the
whole CLI call. Every solve reports its CPU time (``time.process_time``) beside its wall time, since
this machine is shared and noisy. By default a solve stops at the gap tolerance or ``--max-nodes``
(deterministic: the same figures on any machine but for the times); ``--time-limit S`` caps it by wall
time instead, as earlier versions did. Usage:
``python benchmarks/solve.py [--max-nodes N] [--time-limit S] [--gap-tol G] [--spaces a,b]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-limit", type=float, default=None, help="wall-clock cap per solve (default none)")
    parser.add_argument("--max-nodes", type=int, default=1000, help="branch-and-bound nodes per solve (default 1000)")
    parser.add_argument("--gap-tol", type=float, default=1e-3)
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
            t, c = time.perf_counter(), time.process_time()
            res = solve_deepmad(space, top_k=1, depth_penalty=penalty, time_limit=args.time_limit,
                                max_nodes=args.max_nodes, gap_tol=args.gap_tol)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            best = res.best
            rows.append({
                "space": name, "depth_penalty": penalty, "budget": space.budget.to_text(), "status": res.status,
                "solve_time_s": round(wall, 3), "solve_cpu_s": round(cpu, 3), "stopped": res.stats.extra.get("stopped"),
                "score": best.score if best else None, "bound": res.bound,
                "gap": res.gap, "nodes": res.stats.nodes, "macs": best.macs if best else None,
                "params": best.params if best else None, "rho": best.rho if best else None,
            })
    out = {"time_limit_s": args.time_limit, "max_nodes": args.max_nodes, "gap_tol": args.gap_tol,
           "import_s": round(import_s, 3), "solves": rows}
    if "deepmad-r50" in args.spaces:
        space = get_space("deepmad-r50")
        pub = Design(32, (128, 512, 872, 1024, 1232), (40, 48, 88, 104, 120), (5,) * 5, (1, 11, 12, 13, 15))
        for penalty in (True, False):
            ev = DeepMADProgram(space, space.budget, depth_penalty=penalty).evaluate(pub)
            out.setdefault("published_r50", {})["penalised" if penalty else "unpenalised"] = {
                "score": ev.score, "macs": ev.macs, "params": ev.params, "rho": ev.rho, "feasible": ev.feasible}
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "archsearch", "solve", "--space", "deepmad-r50", "--format", "json",
                               "--quiet"], capture_output=True, text=True)
        out["cli_r50_default_wall_s"] = round(time.perf_counter() - t, 3)
        out["cli_r50_rc"] = proc.returncode
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
