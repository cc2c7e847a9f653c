"""Exact branch-and-bound enumeration of the MCi program: widths and depths under a budget.

The program (space :class:`~archsearch.space.mci_templates.MCiSpace`): maximise the DeepMAD-style
entropy score ``S`` of :mod:`archsearch.objectives.mci` over the admissible width tuples and the
depth box, subject to the MACs, params, activation-memory and latency budgets (whole model, the
space's form; latency predicted by the space's calibration, ``archsearch calibrate``) and the
effectiveness bound ``rho <= rho0``.

Structure the solver uses, both checked by the tests against the cost model and brute force:

* for fixed widths, MACs, params, predicted latency, ``S``, the layer count ``N`` and the summed log
  fan-in are affine in the depths (every block of a stage costs and scores the same), so one width tuple is
  ``S+1`` cost-model evaluations and its depth box a vectorised table, where ``rho <= rho0`` reads
  ``N log(N / rho0) <= sum log fan_in``; peak memory does not depend on the depths (every block
  of a stage has the same operations);
* every block has positive cost and positive score, so the score at the largest depths is an upper
  bound for a width tuple and the cost at the smallest depths a lower bound.

Width tuples are visited in decreasing order of their upper bound; one whose bound cannot beat the
``top_k``-th design found, or whose smallest design breaks the budget, is pruned; the others are
enumerated exactly. The reported ``bound`` is the best score when every tuple was settled (gap 0),
else the largest upper bound among the tuples left at the time limit.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import time
from typing import Any, NamedTuple

import numpy as np

from archsearch.cost.latency import LatencyModel, predict_latency, require_latency_model
from archsearch.cost.mci import mci_activation_memory, mci_macs, mci_params
from archsearch.errors import SpecError
from archsearch.objectives.mci import mci_score
from archsearch.solvers.base import (
    FEASIBLE, INFEASIBLE, OPTIMAL, BaseSolver, Candidate, SolveResult, SolverStats, register_solver, relative_gap,
    latency_provenance,
)
from archsearch.space.budget import Budget
from archsearch.space.mci import MCiSpec
from archsearch.space.mci_templates import MCiSpace

__all__ = ["MCiSolver", "WidthTable", "width_table", "brute_force_mci", "solve_mci"]


class WidthTable(NamedTuple):
    """Affine forms of one width tuple: value at the smallest depths plus per-block increments."""

    dims: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    macs0: int
    params0: int
    score0: float
    macs_step: tuple[int, ...]
    params_step: tuple[int, ...]
    score_step: tuple[float, ...]
    layers0: int
    layers_step: tuple[int, ...]
    logfan0: float
    logfan_step: tuple[float, ...]
    memory: int
    latency0: float = 0.0
    latency_step: tuple[float, ...] = ()

    @property
    def upper(self) -> float:
        """Score at the largest depths (an upper bound for the tuple)."""
        return self.score0 + sum(s * (h - l) for s, h, l in zip(self.score_step, self.hi, self.lo))


def width_table(space: MCiSpace, dims: tuple[int, ...], *, resolution: int | None = None,
                latency_model: LatencyModel | None = None) -> WidthTable:
    """The affine forms of ``dims`` from ``S+1`` evaluations of the cost model and objective (and of the
    latency predictor when a latency model is given)."""
    lo = tuple(r[0] for r in space.depths)
    hi = tuple(r[1] for r in space.depths)
    w = space.last_stage_weight

    def figures(depths: tuple[int, ...]) -> tuple[Any, ...]:
        spec = space.make_spec(dims, depths, resolution=resolution)
        sc = mci_score(spec, last_stage_weight=w)
        lat = predict_latency(spec, latency_model) if latency_model is not None else 0.0
        return (mci_macs(spec, with_head=True), mci_params(spec, with_head=True), sc.score, sc.layers, sc.log_fan_in,
                lat, spec)

    base = figures(lo)
    steps: list[list[Any]] = [[], [], [], [], [], []]
    for i in range(len(lo)):
        nxt = figures(lo[:i] + (lo[i] + 1,) + lo[i + 1:])
        for k in range(6):
            steps[k].append(nxt[k] - base[k])
    m0, p0, s0, n0, l0, t0, spec0 = base
    ms, ps, ss, ns, ls, ts = (tuple(x) for x in steps)
    return WidthTable(dims, lo, hi, m0, p0, s0, ms, ps, ss, n0, ns, l0, ls, mci_activation_memory(spec0), t0, ts)


def _depth_grid(lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
    """All depth tuples of the box as rows of offsets from ``lo``, shape (count, stages)."""
    axes = [np.arange(h - l + 1) for l, h in zip(lo, hi)]
    return np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)


def _check_budget(budget: Budget) -> None:
    if budget.is_empty():
        raise SpecError("budget: give at least one of macs, params, memory, latency for the mci space")


def _rho_ok(t: WidthTable, grid: np.ndarray, rho0: float) -> np.ndarray:
    """``rho <= rho0`` on the depth grid of a width tuple: ``N log(N / rho0) <= sum log fan_in``."""
    n = t.layers0 + grid @ np.array(t.layers_step, dtype=np.int64)
    logfan = t.logfan0 + grid @ np.array(t.logfan_step)
    return n * np.log(n / rho0) <= logfan + 1e-9 * np.abs(logfan)


def smallest_costs(space: MCiSpace, *, rho0: float | None = None, resolution: int | None = None,
                   latency_model: LatencyModel | None = None) -> dict[str, Any]:
    """Smallest MACs and params (and predicted latency, given a latency model) of an rho-feasible design
    of the space (each minimised separately; all achieved); empty when no design satisfies ``rho <= rho0``."""
    rho0 = space.rho0 if rho0 is None else rho0
    best = {"macs": math.inf, "params": math.inf, "latency_ms": math.inf}
    for dims in space.dim_choices():
        t = width_table(space, dims, resolution=resolution, latency_model=latency_model)
        grid = _depth_grid(t.lo, t.hi)
        ok = _rho_ok(t, grid, rho0)
        if ok.any():
            best["macs"] = min(best["macs"], int((t.macs0 + grid @ np.array(t.macs_step, dtype=np.int64))[ok].min()))
            best["params"] = min(best["params"], int((t.params0 + grid @ np.array(t.params_step, dtype=np.int64))[ok].min()))
            best["latency_ms"] = min(best["latency_ms"], float((t.latency0 + grid @ np.array(t.latency_step))[ok].min()))
    out: dict[str, Any] = {k: int(best[k]) for k in ("macs", "params") if best[k] < math.inf}
    if latency_model is not None and best["latency_ms"] < math.inf:
        out["latency_ms"] = best["latency_ms"]
    return out


@register_solver
class MCiSolver(BaseSolver):
    """Exact enumeration with monotone bounds (see the module docstring).

    Capabilities: mci spaces; MACs, params, activation-memory and (calibrated) latency budgets; gives
    a bound (the optimum, gap 0, unless the time limit stops it), which covers latency too.
    """

    name = "mci-enum"
    families = ("mci",)
    gives_bound = True
    options = ("rho0",)

    def solve(self, space: MCiSpace, budget: Budget, *, top_k: int = 5, resolution: int | None = None,
              rho0: float | None = None) -> SolveResult:
        """Solves the program.

        Args:
            space: An mci space.
            budget: MACs / params / memory / latency limits on the whole model.
            top_k: Number of candidates, best first.
            resolution: Input resolution (default: the space's).
            rho0: Effectiveness bound (default: the space's).
        """
        if not isinstance(space, MCiSpace):
            raise SpecError(f"space: the mci-enum solver solves mci spaces, got {type(space).__name__}")
        if not (isinstance(top_k, int) and top_k >= 1):
            raise SpecError(f"top_k: expected an integer >= 1, got {top_k!r}")
        _check_budget(budget)
        rho0 = space.rho0 if rho0 is None else rho0
        if not (isinstance(rho0, (int, float)) and 0 < rho0 <= 100):
            raise SpecError(f"rho0: expected a number in (0, 100], got {rho0!r}")
        t0 = time.perf_counter()
        inf = math.inf
        lim_m = budget.macs if budget.macs is not None else inf
        lim_p = budget.params if budget.params is not None else inf
        lim_mem = budget.memory if budget.memory is not None else inf
        lim_lat = budget.latency_ms if budget.latency_ms is not None else inf
        latency_model = require_latency_model(space.name) if budget.latency_ms is not None else None
        tables = [width_table(space, dims, resolution=resolution, latency_model=latency_model) for dims in space.dim_choices()]
        order = sorted(tables, key=lambda t: (-t.upper, t.dims))
        grid = _depth_grid(order[0].lo, order[0].hi) if order else np.zeros((0, 0), int)
        best: list[tuple[float, int, tuple[int, ...], tuple[int, ...]]] = []  # min-heap of the top_k
        counter = itertools.count()
        enumerated = pruned = evaluations = 0
        left_bound = -inf
        for idx, t in enumerate(order):
            kth = best[0][0] if len(best) >= top_k else -inf
            if t.upper <= kth:
                pruned += len(order) - idx  # later tuples have smaller bounds
                break
            if time.perf_counter() - t0 > self.time_limit and best:
                left_bound = max(x.upper for x in order[idx:])
                break
            if t.macs0 > lim_m or t.params0 > lim_p or t.memory > lim_mem or t.latency0 > lim_lat:
                pruned += 1
                continue
            enumerated += 1
            macs = t.macs0 + grid @ np.array(t.macs_step, dtype=np.int64)
            params = t.params0 + grid @ np.array(t.params_step, dtype=np.int64)
            score = t.score0 + grid @ np.array(t.score_step)
            ok = (macs <= lim_m) & (params <= lim_p) & _rho_ok(t, grid, rho0)
            if latency_model is not None:
                ok &= t.latency0 + grid @ np.array(t.latency_step) <= lim_lat
            evaluations += len(grid)
            if not ok.any():
                continue
            cand = np.flatnonzero(ok & (score > kth))
            if cand.size > top_k:
                cand = cand[np.argpartition(-score[cand], top_k - 1)[:top_k]]
            for j in cand:
                depths = tuple(int(l + o) for l, o in zip(t.lo, grid[j]))
                item = (float(score[j]), -next(counter), t.dims, depths)
                if len(best) < top_k:
                    heapq.heappush(best, item)
                elif item[0] > best[0][0]:
                    heapq.heapreplace(best, item)
        elapsed = time.perf_counter() - t0
        stats = SolverStats(solve_time_s=elapsed, nodes=enumerated, evaluations=evaluations, backend="enumeration",
                            extra={"width_tuples": len(tables), "pruned": pruned})
        if latency_model is not None:  # latency is checked on every design the bound settles
            stats.extra.update(latency_provenance(budget, latency_model))
        if not best:
            return SolveResult(INFEASIBLE, space.name, budget, [], -inf, inf, stats,
                               smallest=smallest_costs(space, rho0=rho0, resolution=resolution, latency_model=latency_model))
        ranked = sorted(best, key=lambda x: (-x[0], -x[1]))
        candidates = [self._candidate(space, dims, depths, resolution, rank, latency_model)
                      for rank, (_, _, dims, depths) in enumerate(ranked)]
        score = candidates[0].score
        bound = max(score, left_bound)
        gap = relative_gap(bound, score)
        status = OPTIMAL if gap <= self.gap_tol else FEASIBLE
        return SolveResult(status, space.name, budget, candidates, bound, gap, stats)

    @staticmethod
    def _candidate(space: MCiSpace, dims: tuple[int, ...], depths: tuple[int, ...], resolution: int | None,
                   rank: int, latency_model: LatencyModel | None = None) -> Candidate:
        spec = space.make_spec(dims, depths, resolution=resolution, name=f"{space.name}-{rank + 1}")
        sc = mci_score(spec, last_stage_weight=space.last_stage_weight)
        other = dataclasses.replace(spec, reparameterized=not spec.reparameterized)
        key = "training" if spec.reparameterized else "inference"
        return Candidate(spec, sc.score, mci_macs(spec, with_head=True), mci_params(spec, with_head=True), rho=sc.rho, extra={
            "stage_entropy": list(sc.stage_entropy), "memory": mci_activation_memory(spec),
            f"macs_{key}": mci_macs(other, with_head=True), f"params_{key}": mci_params(other, with_head=True),
            **({"latency_ms": predict_latency(spec, latency_model)} if latency_model is not None else {}),
        })


def brute_force_mci(space: MCiSpace, budget: Budget, *, rho0: float | None = None,
                    resolution: int | None = None) -> list[tuple[float, MCiSpec]]:
    """Every feasible design of the space with its score, best first, one spec at a time (a
    reference for tests)."""
    _check_budget(budget)
    rho0 = space.rho0 if rho0 is None else rho0
    latency_model = require_latency_model(space.name) if budget.latency_ms is not None else None
    out = []
    ranges = [range(lo, hi + 1) for lo, hi in space.depths]
    for dims in space.dim_choices():
        for depths in itertools.product(*ranges):
            spec = space.make_spec(dims, depths, resolution=resolution)
            if budget.macs is not None and mci_macs(spec, with_head=True) > budget.macs:
                continue
            if budget.params is not None and mci_params(spec, with_head=True) > budget.params:
                continue
            if budget.memory is not None and mci_activation_memory(spec) > budget.memory:
                continue
            if latency_model is not None and predict_latency(spec, latency_model) > budget.latency_ms:
                continue
            sc = mci_score(spec, last_stage_weight=space.last_stage_weight)
            if sc.rho <= rho0 * (1 + 1e-12):
                out.append((sc.score, spec))
    out.sort(key=lambda x: -x[0])
    return out


def solve_mci(space: MCiSpace, budget: Budget | None = None, *, top_k: int = 5, rho0: float | None = None,
              resolution: int | None = None, time_limit: float = 30.0) -> SolveResult:
    """Solves the MCi program of ``space`` under ``budget`` (default: the space's)."""
    return MCiSolver(time_limit=time_limit).solve(space, budget or space.budget, top_k=top_k, rho0=rho0,
                                                  resolution=resolution)
