"""The ReViT rule as a program: the largest embedding width whose rule-built ViT fits the budget.

The space (:class:`~archsearch.space.vit_templates.ReViTSpace`) is one integer, EMB on a grid; the
rule fixes every other dimension. The solver evaluates the exact cost model at every grid point
(a few hundred pure-python evaluations, milliseconds), so its answer is exact: the objective is EMB,
the bound is the largest feasible EMB of the whole grid, which the answer attains (gap 0, status
``optimal``). Enumeration rather than bisection keeps it exact even where a rounding would make a
cost non-monotone in EMB. A latency budget uses the space's calibration (``archsearch calibrate``):
every grid point's predicted latency is checked, so the bound covers latency too.
"""

from __future__ import annotations

import time
from typing import Any

from archsearch.cost.latency import LatencyModel, predict_latency, require_latency_model
from archsearch.cost.vit import vit_activation_memory, vit_macs, vit_params
from archsearch.errors import SpecError
from archsearch.solvers.base import (
    INFEASIBLE, OPTIMAL, BaseSolver, Candidate, SolveResult, SolverStats, register_solver, relative_gap,
    latency_provenance,
)
from archsearch.space.budget import Budget
from archsearch.space.vit_templates import ReViTSpace

__all__ = ["ReViTRuleSolver", "revit_costs"]


def revit_costs(space: ReViTSpace, embed_dim: int, *, resolution: int | None = None,
                latency_model: LatencyModel | None = None) -> dict[str, Any]:
    """Params, MACs (counting what the space's budget counts) and activation memory of the rule at one EMB,
    and its predicted latency in ms (``latency_ms``) when a latency model is given."""
    spec = space.spec(embed_dim, resolution=resolution)
    with_head = space.budget_counts == "model"
    cost: dict[str, Any] = {"params": vit_params(spec, with_head=with_head), "macs": vit_macs(spec, with_head=with_head),
                            "memory": vit_activation_memory(spec)}
    if latency_model is not None:
        cost["latency_ms"] = predict_latency(spec, latency_model)
    return cost


def _fits(cost: dict[str, Any], budget: Budget) -> bool:
    return (all(getattr(budget, k) is None or cost[k] <= getattr(budget, k) for k in ("params", "macs", "memory"))
            and (budget.latency_ms is None or cost["latency_ms"] <= budget.latency_ms))


@register_solver
class ReViTRuleSolver(BaseSolver):
    """Exact one-dimensional search of the ReViT rule (see the module docstring).

    Capabilities: ``revit`` spaces; params, MACs, activation-memory and (calibrated) latency budgets;
    an exact bound.
    """

    name = "revit-rule"
    families = ("vit",)
    gives_bound = True
    options = ()

    def solve(self, space: ReViTSpace, budget: Budget, *, top_k: int = 5, resolution: int | None = None,
              **options: Any) -> SolveResult:
        """The ``top_k`` largest EMBs whose rule-built model fits, largest first.

        Args:
            space: A :class:`ReViTSpace`.
            budget: Limits on ``params``, ``macs``, ``memory`` and ``latency`` (which needs the space's calibration).
            top_k: Candidates to return.
            resolution: Input resolution (default: the space's).

        Returns:
            Candidates with ``score`` = EMB; ``bound`` = the largest feasible EMB; gap 0 and status
            ``optimal``, or ``infeasible`` with ``smallest`` = the costs of the smallest EMB.
        """
        if options:
            raise SpecError(f"{self.name}: unknown options {sorted(options)}; it takes none")
        if not isinstance(space, ReViTSpace):
            raise SpecError(f"{self.name}: expected a ReViT space, got {type(space).__name__}")
        latency_model = require_latency_model(space.name) if budget.latency_ms is not None else None
        if top_k < 1:
            raise SpecError(f"top_k: expected an integer >= 1, got {top_k!r}")
        if resolution is not None and resolution % space.patch_size:
            raise SpecError(f"resolution: expected a multiple of patch_size {space.patch_size}, got {resolution}")
        t0 = time.perf_counter()
        grid = list(space.embed_grid)
        evaluated = [(emb, revit_costs(space, emb, resolution=resolution, latency_model=latency_model)) for emb in grid]
        feasible = [(emb, cost) for emb, cost in evaluated if _fits(cost, budget)]
        stats = SolverStats(evaluations=len(evaluated), backend=f"{self.name}/enumeration")
        if latency_model is not None:  # exhaustive: the bound accounts for every budget key, latency included
            stats.extra.update(latency_provenance(budget, latency_model))
        if not feasible:
            stats.solve_time_s = time.perf_counter() - t0
            keys = ("macs", "params", "memory") + (("latency_ms",) if latency_model is not None else ())
            smallest = {k: min(cost[k] for _, cost in evaluated) for k in keys}
            return SolveResult(INFEASIBLE, space.name, budget, [], float("-inf"), float("inf"), stats, smallest)
        cands = [
            Candidate(space.spec(emb, resolution=resolution, name=f"{space.name}-emb{emb}"), float(emb), cost["macs"],
                      cost["params"], None, {"embed_dim": emb, "memory": cost["memory"],
                                             **({"latency_ms": cost["latency_ms"]} if latency_model is not None else {})})
            for emb, cost in sorted(feasible, key=lambda ec: -ec[0])[:top_k]
        ]
        bound = float(max(emb for emb, _ in feasible))  # exhaustive: no feasible EMB is larger
        stats.solve_time_s = time.perf_counter() - t0
        return SolveResult(OPTIMAL, space.name, budget, cands, bound, relative_gap(bound, cands[0].score), stats)
