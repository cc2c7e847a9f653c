"""The STViT program, solved exactly by enumeration.

Program (Chang et al., CVPR 2023, semantic tokens; the objective is
:func:`archsearch.objectives.attention_interactions`, whose docstring says what it trades off)::

    maximise    interactions(S, l, M) = sum over layers of q_l * k_l   (query-key token pairs)
    subject to  macs(S, l, M) <= budget.macs,  params(S) <= budget.params,
                activation_memory(S, l, M) <= budget.memory,  latency(S, l, M) <= budget.latency
    over        S in semantic_layers, l in [lo, min(hi, depth - S)], M in num_semantic

with costs from the exact cost model (:mod:`archsearch.cost.stvit`; whole model or backbone as the
space's ``budget_counts`` says; latency predicted by the space's calibration, ``archsearch calibrate``).
The space is a few thousand designs at most, so every one is
evaluated: the best feasible score is the optimum, the bound equals it and the gap is 0. Ties are
broken by fewer MACs, then fewer params, then the smaller (C, S, l, M).
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any, Iterator, NamedTuple

from archsearch.cost.latency import predict_latency, require_latency_model
from archsearch.cost.stvit import stvit_activation_memory, stvit_macs, stvit_params
from archsearch.errors import SpecError
from archsearch.objectives.stvit import attention_interactions
from archsearch.solvers.base import (
    INFEASIBLE, OPTIMAL, BaseSolver, Candidate, SolveResult, SolverStats, latency_provenance, register_solver,
)
from archsearch.space.budget import Budget
from archsearch.space.stvit import STViTSpace, STViTSpec

__all__ = ["STViTSolver", "STViTEvaluation", "stvit_designs", "evaluate_design", "solve_stvit"]


class STViTEvaluation(NamedTuple):
    """One design's spec, score and costs (``macs``/``params`` as the space's budget counts them)."""

    spec: STViTSpec
    score: float
    macs: int
    params: int
    memory: int
    latency_ms: float | None = None

    def fits(self, budget: Budget) -> bool:
        return ((budget.macs is None or self.macs <= budget.macs)
                and (budget.params is None or self.params <= budget.params)
                and (budget.memory is None or self.memory <= budget.memory)
                and (budget.latency_ms is None or (self.latency_ms is not None and self.latency_ms <= budget.latency_ms)))


def stvit_designs(space: STViTSpace, *, resolution: int | None = None) -> Iterator[STViTSpec]:
    """Every design of the space (semantic-layer count, pooling layer, semantic tokens)."""
    res = space.resolution if resolution is None else resolution
    if res % space.patch_size:
        raise SpecError(f"resolution: expected a multiple of the space's patch_size {space.patch_size}, got {res}")
    lo, hi = space.semantic_layer
    for s in space.semantic_layers:
        for layer, m in itertools.product(range(lo, min(hi, space.depth - s) + 1), space.semantic_counts(res)):
            yield STViTSpec(
                embed_dim=space.embed_dim, depth=space.depth, num_heads=space.num_heads, mlp_ratio=space.mlp_ratio,
                semantic_layer=layer, num_semantic=m, semantic_layers=s, recovery=space.recovery,
                patch_size=space.patch_size, resolution=res, in_channels=space.in_channels,
                class_token=space.class_token, num_classes=space.num_classes,
            )


def evaluate_design(space: STViTSpace, spec: STViTSpec, *, latency_model: Any = None) -> STViTEvaluation:
    """Score and costs of one design (and its predicted latency when a latency model is given)."""
    with_head = space.budget_counts == "model"
    latency = predict_latency(spec, latency_model) if latency_model is not None else None
    return STViTEvaluation(spec, float(attention_interactions(spec).total), stvit_macs(spec, with_head=with_head),
                           stvit_params(spec, with_head=with_head), stvit_activation_memory(spec), latency)


def _order(ev: STViTEvaluation) -> tuple[Any, ...]:
    s = ev.spec
    return (-ev.score, ev.macs, ev.params, s.semantic_layers, s.semantic_layer, s.num_semantic)


@register_solver
class STViTSolver(BaseSolver):
    """Exhaustive enumeration of an STViT space (see the module docstring).

    Capabilities: STViT spaces; MACs, params, activation-memory and (calibrated) latency budgets;
    exact: the bound is the optimum and the gap 0, latency included.
    """

    name = "stvit-enum"
    families = ("stvit",)
    gives_bound = True
    options = ()

    def solve(self, space: STViTSpace, budget: Budget, *, top_k: int = 5, resolution: int | None = None) -> SolveResult:
        if not isinstance(space, STViTSpace):
            raise SpecError(f"space: the {self.name} solver takes an STViT space, got {type(space).__name__}")
        latency_model = require_latency_model(space.name) if budget.latency_ms is not None else None
        if top_k < 1:
            raise SpecError(f"top_k: expected an integer >= 1, got {top_k!r}")
        t0 = time.perf_counter()
        evaluations = [evaluate_design(space, spec, latency_model=latency_model)
                       for spec in stvit_designs(space, resolution=resolution)]
        if not evaluations:
            raise SpecError(f"space {space.name}: no design at resolution {resolution or space.resolution} "
                            f"(num_semantic {space.num_semantic} exceeds the patch grid)")
        feasible = sorted((ev for ev in evaluations if ev.fits(budget)), key=_order)
        stats = SolverStats(solve_time_s=time.perf_counter() - t0, nodes=len(evaluations), evaluations=len(evaluations),
                            backend=f"{self.name}/enumeration", extra={"feasible": len(feasible)})
        if latency_model is not None:  # every design was checked: the bound covers latency too
            stats.extra.update(latency_provenance(budget, latency_model))
        if not feasible:
            smallest = {"macs": min(ev.macs for ev in evaluations), "params": min(ev.params for ev in evaluations)}
            if latency_model is not None:
                smallest["latency_ms"] = min(ev.latency_ms for ev in evaluations)  # type: ignore[type-var]
            return SolveResult(INFEASIBLE, space.name, budget, [], -math.inf, math.inf, stats, smallest)
        cands = []
        for rank, ev in enumerate(feasible[:top_k]):
            spec = ev.spec.replace(name=f"{space.name}-{rank + 1}")
            kept = attention_interactions(spec)
            cands.append(Candidate(spec, ev.score, ev.macs, ev.params, None, {
                "memory": ev.memory, "interaction_share": kept.share, "image_layers": kept.image_layers,
                "semantic_layers": kept.semantic_layers, "tail_layers": kept.tail_layers, "recovery": kept.recovery,
                **({"latency_ms": ev.latency_ms} if latency_model is not None else {})}))
        bound = feasible[0].score  # every design was evaluated: the optimum is the bound
        return SolveResult(OPTIMAL, space.name, budget, cands, bound, 0.0, stats)


def solve_stvit(space: STViTSpace, budget: Budget | None = None, *, top_k: int = 5,
                resolution: int | None = None) -> SolveResult:
    """Solves the STViT program of ``space`` under ``budget`` (default: the space's)."""
    return STViTSolver().solve(space, budget or space.budget, top_k=top_k, resolution=resolution)
