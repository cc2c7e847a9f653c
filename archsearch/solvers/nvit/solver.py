"""The exact NViT solver: best-first search over EMB with lazily tightened bounds.

Every EMB on the grid enters a heap with a cheap bound: the Lagrangian bound
(:meth:`~archsearch.solvers.nvit.program.NViTProgram.lagrangian_bound`) at the multipliers of the
LPs solved so far (the least of them). The EMB with the largest bound is refined in turn: its cheap
bound re-taken when new multipliers came, then its own LP bound, then its integer program. The
search stops when the largest bound left cannot beat the ``top_k``-th design (or at the time limit
once a design is found). The reported ``bound`` is the largest of the incumbent, the integer
programs' dual bounds and the bounds of the EMB values never solved: an upper bound over the whole
discrete space.
"""

from __future__ import annotations

import heapq
import math
import time
from typing import Any

from archsearch.errors import SpecError
from archsearch.solvers.base import (
    FEASIBLE, GAP_OPTIMAL, INFEASIBLE, OPTIMAL, BaseSolver, Candidate, SolveResult, SolverStats, register_solver,
    latency_provenance, relative_gap,
)
from archsearch.solvers.nvit.program import FREE_CONSTANTS, EmbSolution, NViTProgram
from archsearch.space.budget import Budget
from archsearch.space.nvit_templates import NViTSpace

__all__ = ["NViTSolver", "smallest_nvit_costs", "solve_nvit"]


@register_solver
class NViTSolver(BaseSolver):
    """Exact solver of the NViT redistribution program (LP bounds per EMB, HiGHS integer programs).

    Options: ``priors`` (bool, default the space's): the redistribution priors on or off.
    """

    name = "nvit-program"
    families = ("vit",)
    gives_bound = True
    options = ("priors",)
    free_constants = FREE_CONSTANTS

    def solve(self, space: Any, budget: Budget, *, top_k: int = 5, resolution: int | None = None,
              priors: bool | None = None, **options: Any) -> SolveResult:
        if options:
            raise SpecError(f"options {sorted(options)}: not options of {self.name}; it takes {list(self.options)}")
        if not isinstance(top_k, int) or top_k < 1:
            raise SpecError(f"top_k: expected an integer >= 1, got {top_k!r}")
        if budget.is_empty():
            raise SpecError("budget: give at least one of macs, params, memory, latency")
        t0 = time.perf_counter()
        prog = NViTProgram(space, budget, resolution=resolution, priors=priors)
        grid = prog.embed_grid()
        # best-first over EMB with lazily tightened bounds: a Lagrangian bound from the multipliers of
        # the LPs solved so far (cheap), then the EMB's own LP bound, then its integer program
        lams: list[tuple[float, float, float]] = []
        heap: list[tuple[float, int, str, int]] = []

        def cheap(d: int) -> float:
            if not lams:
                return math.inf if prog.min_costs(d) is not None else -math.inf
            return min(prog.lagrangian_bound(d, *lam) for lam in lams)

        for d in grid:
            bnd = cheap(d)
            if bnd > -math.inf:
                heapq.heappush(heap, (-bnd, d, "cheap", 0))
        found: list[EmbSolution] = []
        solved_bound = unsolved_bound = -math.inf
        milps = lps = 0
        while heap:
            bnd, d, kind, n_lams = heap[0]
            bnd = -bnd
            kth = sorted((s.score for s in found), reverse=True)[top_k - 1] if len(found) >= top_k else -math.inf
            if bnd <= kth or (found and time.perf_counter() - t0 > self.time_limit):
                unsolved_bound = bnd  # the largest bound of every EMB left
                break
            heapq.heappop(heap)
            if kind == "cheap" and n_lams < len(lams):
                bnd = cheap(d)
                if bnd > -math.inf:
                    heapq.heappush(heap, (-bnd, d, "cheap", len(lams)))
            elif kind == "cheap":
                lp, lam = prog.lp_bound(d)
                lps += 1
                if lp > -math.inf:
                    if lp < math.inf:
                        lams.append(lam)
                    heapq.heappush(heap, (-min(lp, bnd), d, "lp", len(lams)))
            else:
                sol, emb_bound = prog.solve_emb(d, time_limit=max(1.0, self.time_limit))
                milps += 1
                solved_bound = max(solved_bound, min(emb_bound, bnd))
                if sol is not None:
                    found.append(sol)
        elapsed = time.perf_counter() - t0
        extra: dict[str, Any] = {"priors": prog.priors, "embed_values": len(grid), "integer_programs": milps}
        if prog.latency_model is not None:  # latency is a row of the programs, so the bound covers it
            extra.update(latency_provenance(budget, prog.latency_model))
        stats = SolverStats(solve_time_s=elapsed, nodes=milps, relaxations=lps, evaluations=len(found),
                            backend=f"{self.name}/scipy-highs", extra=extra)
        name = space.name
        if not found:
            return SolveResult(INFEASIBLE, name, budget, [], -math.inf, math.inf, stats,
                               smallest_nvit_costs(prog))
        found.sort(key=lambda s: -s.score)
        best = found[0]
        bound = max(best.score, solved_bound, unsolved_bound)
        gap = relative_gap(bound, best.score)
        status = OPTIMAL if gap <= self.gap_tol else FEASIBLE
        cands = []
        for rank, sol in enumerate(found[:top_k]):
            spec = prog.to_spec(sol.embed_dim, sol.blocks, name=f"{name}-{rank + 1}")
            macs, params, mem = prog.costs(spec)
            cands.append(Candidate(spec, sol.score, macs, params, None,
                                   {"memory": mem, "embed_dim": sol.embed_dim, "emb_bound": sol.bound,
                                    "priors": prog.priors,
                                    **({"latency_ms": prog.latency(spec)} if prog.latency_model is not None else {})}))
        return SolveResult(status, name, budget, cands, bound, gap, stats)


def smallest_nvit_costs(prog: NViTProgram) -> dict[str, Any]:
    """Smallest whole-model MACs and params (and predicted latency, with a latency budget) of a design
    of the program's space (each separately)."""
    best = {"macs": math.inf, "params": math.inf, "latency_ms": math.inf}
    unconstrained = NViTProgram(prog.space, Budget(latency_ms=1e9) if prog.latency_model is not None else Budget(),
                                resolution=prog.resolution)
    for d in unconstrained.embed_grid():
        mc = unconstrained.min_costs(d)
        if mc is not None:
            best = {k: min(best[k], v) for k, v in zip(best, mc)}
    out: dict[str, Any] = {k: int(best[k]) for k in ("macs", "params") if best[k] < math.inf}
    if prog.latency_model is not None and best["latency_ms"] < math.inf:
        out["latency_ms"] = float(best["latency_ms"])
    return out


def solve_nvit(space: NViTSpace, budget: Budget | None = None, *, top_k: int = 5, resolution: int | None = None,
               priors: bool | None = None, gap_tol: float = GAP_OPTIMAL, time_limit: float = 30.0) -> SolveResult:
    """Solves the NViT program of ``space`` under ``budget`` (default: the space's)."""
    return NViTSolver(gap_tol=gap_tol, time_limit=time_limit).solve(space, budget or space.budget, top_k=top_k,
                                                                     resolution=resolution, priors=priors)

