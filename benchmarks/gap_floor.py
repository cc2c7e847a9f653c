"""How much work a certified gap takes with the DeepMAD relaxation, whatever the search order; prints one JSON object.

The branch and bound's bound can only reach ``score * (1 + gap)`` once no box above that value is left. A box that
fixes a structure (depths and kernels) but keeps the widths of the tightened root has the structure's *fixed-structure
relaxation* as its value; a structure whose value is above the threshold must be split off from every other and
then, if still above it, split further in its widths. This script measures both parts for each space and gap, given
an incumbent (the best design of a ``--max-nodes`` solve at 0.1 %, or ``--incumbent``):

* setup: building the relaxation, the root solve and the root's bound tightening against the incumbent (the solver
  does the same before its search);
* the structure tree: depth-first, every box split as the solver's proof phase splits it (its widest depth range
  at the middle, then its kernels: :meth:`DeepMADSolver._branch` with ``structure_first``), never in its widths,
  pruned at the threshold and cut by reduced costs to the part that can exceed it (as the solver cuts its nodes);
  the solves and CPU seconds it takes until every box left is one structure, and how many structures are left
  above the threshold (each needs width branching of its own);
* the width search inside the best of those structures: its box tightened as the solver tightens its root
  (:meth:`_Relaxation.tighten`, :meth:`_Relaxation.bound_entropy`, at the threshold), then best-first with the
  solver's own branching (:meth:`DeepMADSolver._branch`) and reduced-cost cuts, the nodes and CPU seconds until
  its bound falls to the threshold (or ``--width-nodes``).

CPU seconds are ``time.process_time``; solve counts do not depend on the machine. The structure tree is one search
order, not a proof of a lower bound for every order; it never branches widths before the structure is fixed, which
is the cheaper order where the relaxation's error is mostly in the depths (docs/benchmarks.md, "Speed").
Usage: ``python benchmarks/gap_floor.py [--spaces deepmad-r18,deepmad-r50] [--gaps 0.01,0.001]``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spaces", default="deepmad-r18,deepmad-r34,deepmad-r50")
    parser.add_argument("--gaps", default="0.01,0.001")
    parser.add_argument("--max-nodes", type=int, default=1000, help="nodes of the solve that gives the incumbent")
    parser.add_argument("--incumbent", type=float, default=None, help="the incumbent's score instead of a solve's")
    parser.add_argument("--width-nodes", type=int, default=400, help="cap on the width search's nodes")
    args = parser.parse_args()

    from archsearch.solvers import DeepMADSolver
    from archsearch.solvers.deepmad.bounds import UNSOLVED, _Relaxation
    from archsearch.solvers.deepmad.box import _root
    from archsearch.solvers.deepmad.program import DeepMADProgram
    from archsearch.space import get_space

    warm = get_space("deepmad-cifar")
    DeepMADSolver(max_nodes=2).solve(warm, warm.budget, top_k=1)
    out: dict = {"max_nodes": args.max_nodes, "spaces": {}}
    for name in args.spaces.split(","):
        space = get_space(name)
        if args.incumbent is not None:
            inc, source = args.incumbent, "--incumbent"
        else:
            res = DeepMADSolver(max_nodes=args.max_nodes).solve(space, space.budget, top_k=1)
            inc, source = res.best.score, f"solve to a 0.1 % gap or {args.max_nodes} nodes (ended at {res.gap:.4%})"
        prog = DeepMADProgram(space, space.budget)
        c = time.process_time()
        relax = _Relaxation(prog, "CLARABEL")
        root = _root(prog)
        relax.bound_entropy(root)
        relax.solve(root)
        tight = relax.tighten(root, inc)
        relax.bound_entropy(tight, inc)
        setup_cpu = time.process_time() - c
        entry: dict = {"incumbent": inc, "incumbent_from": source, "setup_cpu_s": round(setup_cpu, 3), "gaps": {}}
        stage_vars = [0 if end < 0 else 1 + end for end in prog.ends]
        for gap in (float(g) for g in args.gaps.split(",")):
            threshold = inc * (1 + gap)
            c, solves, leaves = time.process_time(), 0, []
            stack = [tight]
            while stack:
                node = stack.pop()
                res = relax.solve(node)
                solves += 1
                if res is None or (res is not UNSOLVED and res[0] <= threshold):
                    continue
                if res is not UNSOLVED:  # reduced costs: only the part of the box that can exceed the threshold
                    node = relax.reduced_cost_box(node, res[0], threshold)
                    if node is None:
                        continue
                if node.lo != node.hi or any(len(k) > 1 for k in node.kernels):  # the proof phase's own split
                    stack += DeepMADSolver._branch(prog, relax, node, res[1], stage_vars, structure_first=True)
                    continue
                leaves.append((res[0], node))
            tree_cpu = time.process_time() - c
            leaves.sort(key=lambda vn: -vn[0])
            row: dict = {"threshold": round(threshold, 2), "tree_solves": solves, "tree_cpu_s": round(tree_cpu, 3),
                         "structures_above": len(leaves),
                         "top": [f"{v:.2f}: depths {list(n.lo)}, kernels {[k[0] for k in n.kernels]}" for v, n in leaves[:5]]}
            if leaves:  # the width search inside the best structure
                c, nodes, counter = time.process_time(), 0, itertools.count()
                heap: list = []

                def push(node, parent=math.inf):
                    nonlocal nodes
                    nodes += 1
                    res = relax.solve(node)
                    if res is None or res is UNSOLVED:
                        return
                    value = min(res[0], parent)
                    node = relax.reduced_cost_box(node, res[0], threshold) if value > threshold else None
                    if node is not None:
                        kids = DeepMADSolver._branch(prog, relax, node, res[1], stage_vars)
                        heapq.heappush(heap, (-value, next(counter), kids))

                e_up = relax.e_up  # the structure's own entropy bounds, restored after its search
                lowest, extremes = relax._lowest, [0]

                def counted(*a, **k):  # the tightening's min/max solves (relax.solves counts relaxations only)
                    extremes[0] += 1
                    return lowest(*a, **k)

                relax._lowest = counted
                solves_before = relax.solves
                top = relax.tighten(leaves[0][1], threshold)  # as the solver tightens its root
                if top is not None:
                    relax.bound_entropy(top, threshold)
                    push(top)
                del relax._lowest
                tighten_solves = relax.solves - solves_before - nodes + extremes[0]
                while heap and nodes < args.width_nodes:
                    value, _, kids = heapq.heappop(heap)
                    for kid in kids:
                        push(kid, -value)
                relax.e_up = e_up
                row["top_structure_width_search"] = {
                    "tightening_solves": tighten_solves, "nodes": nodes, "cpu_s": round(time.process_time() - c, 3), "reached": not heap,
                    "bound_left": round(max([-h[0] for h in heap], default=threshold), 2)}
            entry["gaps"][f"{gap:g}"] = row
        out["spaces"][name] = entry
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
