"""Benchmark of the DeepMAD solver on every template budget; prints one JSON object.

For each template (the paper's spaces ``deepmad-r18/r34/r50`` and ``deepmad-mbv2``, the wider ``-plus``
extensions and CIFAR): solve time (after imports), best score, bound, gap, nodes, relaxations, the nodes and CPU seconds at
which the certified gap first fell to 1 % and to 0.5 % (``gap_reached``), and the best design's
MACs/params/rho (and reference FLOPs in the paper's spaces); for R50 also the unpenalised solve; the
published DeepMAD-R18/R34/R50 (Shen et al., CVPR 2023; TinyNAS model files) scored in the paper-space
program with their reference FLOPs, whether they are within the budget and inside archsearch's space;
and the wall time of the whole default CLI call at R50. Every solve reports its CPU time (``time.process_time``) beside its wall time, since
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
    parser.add_argument("--spaces", default="deepmad-r18,deepmad-r34,deepmad-r50,deepmad-r18-plus,deepmad-r34-plus,deepmad-r50-plus,deepmad-mbv2,deepmad-mbv2-plus,deepmad-cifar")
    args = parser.parse_args()

    t_import = time.perf_counter()
    from archsearch.solvers import DeepMADProgram, DeepMADSolver
    from archsearch.space import get_space

    import_s = time.perf_counter() - t_import
    rows = []
    for name in args.spaces.split(","):
        space = get_space(name)
        for penalty in ((True, False) if name in ("deepmad-r50", "deepmad-r50-plus") else (True,)):
            t, c = time.perf_counter(), time.process_time()
            reached: dict[str, dict[str, float]] = {}

            def progress(state: dict, c: float = c, reached: dict = reached) -> None:
                """When the certified gap first fell to 1 % and 0.5 % (nodes, CPU s since the solve began)."""
                gap = state.get("gap")
                for label, tol in (("1%", 0.01), ("0.5%", 0.005)):
                    if gap is not None and gap <= tol and label not in reached:
                        reached[label] = {"nodes": state["nodes"], "cpu_s": round(time.process_time() - c, 3)}

            res = DeepMADSolver(time_limit=args.time_limit, max_nodes=args.max_nodes, gap_tol=args.gap_tol,
                                progress=progress).solve(space, space.budget, top_k=1, depth_penalty=penalty)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            best = res.best
            rows.append({
                "space": name, "depth_penalty": penalty, "budget": space.budget.to_text(), "status": res.status,
                "solve_time_s": round(wall, 3), "solve_cpu_s": round(cpu, 3), "stopped": res.stats.extra.get("stopped"),
                "score": best.score if best else None, "bound": res.bound,
                "gap": res.gap, "nodes": res.stats.nodes, "macs": best.macs if best else None,
                "params": best.params if best else None, "rho": best.rho if best else None,
                "flops": best.extra.get("flops") if best else None, "relaxations": res.stats.relaxations,
                "gap_reached": reached,
            })
    out = {"time_limit_s": args.time_limit, "max_nodes": args.max_nodes, "gap_tol": args.gap_tol,
           "import_s": round(import_s, 3), "solves": rows}
    from archsearch.space import DEEPMAD_R18, DEEPMAD_R34, DEEPMAD_R50

    for name, spec in (("deepmad-r18", DEEPMAD_R18), ("deepmad-r34", DEEPMAD_R34), ("deepmad-r50", DEEPMAD_R50)):
        if name not in args.spaces.split(","):
            continue
        space = get_space(name)  # the published model scored in the paper-space program, reference FLOPs
        for penalty in (True, False):
            prog = DeepMADProgram(space, space.budget, depth_penalty=penalty)
            design = prog.from_spec(spec)
            ev = prog.evaluate(design)
            out.setdefault(f"published_{name[8:]}", {})["penalised" if penalty else "unpenalised"] = {
                "score": ev.score, "flops": ev.flops, "macs": ev.macs, "params": ev.params, "rho": ev.rho,
                "within_budget": ev.feasible, "in_space": prog.is_valid(design)}
    if "deepmad-r50" in args.spaces:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "archsearch", "solve", "--space", "deepmad-r50", "--format", "json",
                               "--quiet"], capture_output=True, text=True)
        out["cli_r50_default_wall_s"] = round(time.perf_counter() - t, 3)
        out["cli_r50_rc"] = proc.returncode
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
