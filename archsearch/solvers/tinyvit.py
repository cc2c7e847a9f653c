"""The TinyViT contraction program, solved exactly by depth-first branch and bound over the stages.

Program (Wu et al., "TinyViT", ECCV 2022, Sec. 3.3, with the unreleased local search replaced by an
exact solve): over a :class:`~archsearch.space.tinyvit_templates.TinyViTSpace`, choose per stage an
embed dim (``seed - 32 k``, non-decreasing over the stages), a depth and, for attention stages, a
window, to

    maximise   sum over blocks of log(d * mixing area)      (:func:`~archsearch.objectives.tinyvit_capacity`)
    subject to params <= P, MACs <= M, peak activation memory <= A   (whole model, exact cost model)
               predicted latency <= T   (the space's calibration, ``archsearch calibrate``)

The costs are sums of stage terms that depend on the stage's choice and the previous stage's dim
(patch merging maps ``d_{i-1} -> d_i``); so is the predicted latency, a sum over units
(:func:`~archsearch.cost.latency.tinyvit_units`: the stem and MBConv blocks in stage 0, the patch
merging and ``depth`` identical blocks in the others, the head in the last); the score is a sum of
stage terms; the memory peak is a maximum of stage terms, so its constraint filters stage choices.
Backward dynamic programming over the stages gives, for every stage and incoming dim, the smallest
params, MACs and predicted latency of any completion and the largest score of any completion. The
search fixes stages in order, scores all choices of a stage at once (numpy), and prunes a choice
when its cost so far plus the cheapest completion exceeds the budget or its score so far plus the
best completion cannot beat the k-th best design. Children are visited best bound first, so good
designs come early.

Exactness: nothing is pruned that could enter the top k, so a finished search is optimal (bound =
best score, gap 0), and the bound covers a latency budget too (the result's ``bound_covers`` says
so). Under the time limit the bound is the largest optimistic value of the nodes left open, valid
for the whole discrete space. Ties in score are broken by lower MACs, then lower params.

Results against the published models (seed: the 21M; whole-model costs; scores in nats of
:func:`~archsearch.objectives.tinyvit_capacity`; checked by ``tests/test_tinyvit_solver.py``):

* 11M budget (10,996,972 params, 2,016,046,144 MACs: timm's ``tiny_vit_11m_224``): optimum dims
  (64, 128, 256, 384), heads (2, 4, 8, 12), windows (7, 14, 14, 7), depths (2, 2, 6, 2):
  9,582,208 params, 2,005,849,728 MACs, score 117.597. The published 11M is dims
  (64, 128, 256, 448), heads (2, 4, 8, 14), windows (7, 7, 14, 7): 10,996,972 params,
  2,016,046,144 MACs, score 115.133. MACs bind; the program spends them on a 14-window in stage 2
  (28x28 map: 4 windows of 196 tokens instead of 16 of 49) and takes 64 channels from the last
  stage, leaving 1.4M params unused.
* 5M budget (5,392,764 params, 1,255,174,720 MACs: ``tiny_vit_5m_224``): optimum dims
  (64, 96, 192, 224), heads (2, 3, 6, 7), windows (7, 14, 14, 7), depths (2, 2, 6, 2):
  4,620,446 params, 1,254,901,536 MACs, score 114.218. The published 5M is dims
  (64, 128, 160, 320), heads (2, 4, 5, 10), windows (7, 7, 14, 7): 5,392,764 params,
  1,255,174,720 MACs, score 111.640. Again MACs bind; width moves to the deep third stage and the
  stage-2 window grows, at the cost of stage-2 and last-stage width.

With the ``tinyvit-depth`` space (depths up to the seed's) both optima keep the seed's depths.
Every solve finishes with status optimal and gap 0 in about 0.02 s (tens of nodes out of 31,104
designs, 1,244,160 with depth choices). Whether these trade-offs train better than the published
models is not known: the score is a proxy.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import time

import numpy as np

from archsearch.cost.latency import (LatencyModel, predict_latency, require_latency_model, tinyvit_block_features,
                                     tinyvit_head_features, tinyvit_mbconv_features, tinyvit_merge_features,
                                     tinyvit_stem_features)
from archsearch.cost.tinyvit import attention_stage_costs, head_costs, mbconv_stage_costs, stem_costs
from archsearch.cost.tinyvit import tinyvit_activation_memory, tinyvit_macs, tinyvit_params
from archsearch.errors import SpecError
from archsearch.objectives.tinyvit import stage_entropy, tinyvit_capacity
from archsearch.solvers.base import (
    FEASIBLE, GAP_OPTIMAL, INFEASIBLE, OPTIMAL, BaseSolver, Candidate, SolveResult, SolverStats, latency_provenance,
    register_solver, relative_gap,
)
from archsearch.space.budget import Budget
from archsearch.space.tinyvit import TinyViTSpec
from archsearch.space.tinyvit_templates import TinyViTSpace

__all__ = ["ContractionProgram", "TinyViTContractionSolver", "brute_force_contraction"]

INF = float("inf")


@dataclasses.dataclass
class _StageTable:
    """The choices of one stage and their costs for every incoming dim.

    ``params``/``macs``/``peak``/``latency`` have shape (incoming dims, choices); an incoming/outgoing
    pair that breaks the non-decreasing rule or the memory budget has infinite cost. ``latency`` is the
    stage's predicted latency in ms (0 without a latency model). The first stage has one
    incoming "dim" (the image).
    """

    dims: np.ndarray  # (choices,) embed dim of each choice
    depths: np.ndarray
    windows: np.ndarray
    out_index: np.ndarray  # index of the choice's dim in this stage's dim list
    score: np.ndarray  # (choices,)
    params: np.ndarray  # (incoming, choices), float (inf when not allowed)
    macs: np.ndarray
    peak: np.ndarray  # elements
    latency: np.ndarray  # ms


class ContractionProgram:
    """The program's tables for one space, budget and resolution (see the module docstring).

    Args:
        space: A TinyViT contraction space.
        budget: Its limits (a memory limit filters the tables; the others are checked in the search).
        resolution: Input resolution (default: the space's).
        latency_model: Latency predictor for the latency column; default: the space's calibration
            when the budget limits latency (:func:`~archsearch.cost.latency.require_latency_model`),
            else none (latency 0).
    """

    def __init__(self, space: TinyViTSpace, budget: Budget, *, resolution: int | None = None,
                 latency_model: LatencyModel | None = None) -> None:
        if not isinstance(space, TinyViTSpace):
            raise SpecError(f"space: the TinyViT contraction solves TinyViT spaces, got {type(space).__name__}")
        if latency_model is None and budget.latency_ms is not None:
            latency_model = require_latency_model(space.name)
        self.latency_model = latency_model
        if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                       or not 8 <= resolution <= 4096):
            raise SpecError(f"resolution: expected an integer in [8, 4096], got {resolution!r}")
        self.space, self.budget = space, budget
        self.resolution = resolution or space.resolution
        self.seed = space.make_spec(space.seed.embed_dims, space.seed.depths, space.seed.window_sizes,
                                    resolution=self.resolution)
        self.sides = self.seed.sides
        self.n = self.seed.n_stages
        self.stage_dims = [space.dim_choices(i) for i in range(self.n)]
        mem_cap = budget.memory / 4 if budget.memory is not None else INF  # bytes -> float32 elements
        self.tables = [self._table(i, mem_cap) for i in range(self.n)]
        self._backward()

    def _table(self, i: int, mem_cap: float) -> _StageTable:
        sp, seed, sides = self.space, self.seed, self.sides
        choices = list(itertools.product(range(len(self.stage_dims[i])), sp.depth_choices(i), sp.window_choices(i)))
        incoming = [None] if i == 0 else list(self.stage_dims[i - 1])
        shape = (len(incoming), len(choices))
        params, macs, peak, latency = (np.full(shape, INF) for _ in range(4))
        score = np.empty(len(choices))
        for c, (k, depth, window) in enumerate(choices):
            d = self.stage_dims[i][k]
            score[c] = stage_entropy(d, depth, stage=i, window=window, side=sides[i])
            for a, d_in in enumerate(incoming):
                if d_in is not None and d < d_in:
                    continue  # dims are non-decreasing over the stages
                if i == 0:
                    cost = stem_costs(d, in_channels=seed.in_channels, resolution=self.resolution) + mbconv_stage_costs(
                        d, depth, sides[0], expand_ratio=seed.mbconv_expand_ratio)
                else:
                    cost = attention_stage_costs(
                        d_in, d, depth, sides[i - 1], heads=d // seed.head_dim, window=window,
                        mlp_ratio=seed.mlp_ratio, local_conv_size=seed.local_conv_size)
                if i == self.n - 1:
                    norm, fc = head_costs(d, sp.num_classes)
                    cost = cost + norm + fc
                if cost.peak > mem_cap:
                    continue
                params[a, c], macs[a, c], peak[a, c] = cost.params, cost.macs, cost.peak
                latency[a, c] = self._stage_latency(i, d_in, d, depth, window)
        return _StageTable(
            dims=np.array([self.stage_dims[i][k] for k, _, _ in choices]), depths=np.array([c[1] for c in choices]),
            windows=np.array([c[2] for c in choices]), out_index=np.array([c[0] for c in choices]), score=score,
            params=params, macs=macs, peak=peak, latency=latency,
        )

    def _stage_latency(self, i: int, d_in: int | None, d: int, depth: int, window: int) -> float:
        """Predicted latency (ms) of stage ``i`` with its units (stage 0: the stem and MBConv blocks;
        the last stage: the head too); 0 without a latency model."""
        model, seed, sides = self.latency_model, self.seed, self.sides
        if model is None:
            return 0.0
        if i == 0:
            t = model.unit_ms("tinyvit_stem", tinyvit_stem_features(dim=d, in_channels=seed.in_channels,
                                                                    resolution=self.resolution))
            t += depth * model.unit_ms("tinyvit_mbconv", tinyvit_mbconv_features(
                dim=d, side=sides[0], expand_ratio=seed.mbconv_expand_ratio))
        else:
            t = model.unit_ms("tinyvit_merge", tinyvit_merge_features(dim_in=d_in, dim=d, side_in=sides[i - 1]))
            t += depth * model.unit_ms("tinyvit_block", tinyvit_block_features(
                dim=d, side=sides[i], heads=d // seed.head_dim, window=window, mlp_ratio=seed.mlp_ratio,
                local_conv_size=seed.local_conv_size))
        if i == self.n - 1:
            t += model.unit_ms("tinyvit_head", tinyvit_head_features(dim=d, side=sides[i], num_classes=self.space.num_classes))
        return t

    def _backward(self) -> None:
        """Completion tables: for stage i and incoming dim a, the min params / MACs / peak / predicted
        latency and the max score over every way to choose stages i..n-1 (budgets ignored, memory
        filter kept)."""
        n = self.n
        self.min_params: list[np.ndarray] = [np.zeros(0)] * (n + 1)
        self.min_macs: list[np.ndarray] = [np.zeros(0)] * (n + 1)
        self.min_peak: list[np.ndarray] = [np.zeros(0)] * (n + 1)
        self.min_latency: list[np.ndarray] = [np.zeros(0)] * (n + 1)
        self.max_score: list[np.ndarray] = [np.zeros(0)] * (n + 1)
        width = len(self.stage_dims[-1])
        self.min_params[n] = self.min_macs[n] = self.min_peak[n] = self.min_latency[n] = np.zeros(width)
        self.max_score[n] = np.zeros(width)
        for i in range(n - 1, -1, -1):
            t = self.tables[i]
            allowed = np.isfinite(t.params)
            self.min_params[i] = np.min(t.params + self.min_params[i + 1][t.out_index], axis=1)
            self.min_macs[i] = np.min(t.macs + self.min_macs[i + 1][t.out_index], axis=1)
            self.min_peak[i] = np.min(np.maximum(t.peak, self.min_peak[i + 1][t.out_index]), axis=1)
            self.min_latency[i] = np.min(t.latency + self.min_latency[i + 1][t.out_index], axis=1)
            best = np.where(allowed, t.score + self.max_score[i + 1][t.out_index], -INF)
            self.max_score[i] = np.max(best, axis=1)
            if i + 1 < n:  # a choice whose completion is impossible is no choice
                dead = ~np.isfinite(self.min_params[i + 1][t.out_index])
                t.params[:, dead] = t.macs[:, dead] = t.peak[:, dead] = t.latency[:, dead] = INF

    def smallest(self) -> dict[str, float]:
        """Smallest params, MACs, (with a memory budget) peak memory in bytes and (with a latency
        model) predicted latency in ms, each minimised separately over every design of the space, the
        budget ignored."""
        free = self
        if self.budget.memory:
            free = ContractionProgram(self.space, Budget(), resolution=self.resolution, latency_model=self.latency_model)
        out: dict[str, float] = {"macs": free.min_macs[0][0], "params": free.min_params[0][0]}
        if self.budget.memory is not None:
            out["memory"] = 4 * free.min_peak[0][0]
        small: dict[str, float] = {k: int(v) for k, v in out.items() if math.isfinite(v)}
        if self.latency_model is not None and math.isfinite(free.min_latency[0][0]):
            small["latency_ms"] = float(free.min_latency[0][0])
        return small

    def design(self, picks: tuple[int, ...], name: str = "") -> TinyViTSpec:
        """The spec of one choice index per stage."""
        t = self.tables
        return self.space.make_spec(
            tuple(int(t[i].dims[c]) for i, c in enumerate(picks)), tuple(int(t[i].depths[c]) for i, c in enumerate(picks)),
            tuple(int(t[i].windows[c]) for i, c in enumerate(picks)), resolution=self.resolution, name=name)


@register_solver
class TinyViTContractionSolver(BaseSolver):
    """Exact branch and bound of the TinyViT contraction program (see the module docstring).

    Capabilities: TinyViT spaces; params, MACs, activation-memory (whole model) and (calibrated)
    latency budgets; gives a bound (gap 0 when the search finishes), which covers latency too.
    """

    name = "tinyvit-contract"
    families = ("tinyvit",)
    gives_bound = True
    options = ()

    def solve(self, space: TinyViTSpace, budget: Budget, *, top_k: int = 5, resolution: int | None = None) -> SolveResult:
        """Solves the program; see the module docstring.

        Args:
            space: A TinyViT contraction space.
            budget: Limits on whole-model params and MACs, on peak activation memory and on predicted
                latency (needs ``archsearch calibrate --space NAME`` first).
            top_k: Designs to return, best first.
            resolution: Input resolution (default: the space's).
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise SpecError(f"top_k: expected an integer >= 1, got {top_k!r}")
        t0 = time.perf_counter()
        prog = ContractionProgram(space, budget, resolution=resolution)
        cap_p = budget.params if budget.params is not None else INF
        cap_m = budget.macs if budget.macs is not None else INF
        cap_l = budget.latency_ms if budget.latency_ms is not None else INF
        n, tables = prog.n, prog.tables

        top: list[tuple[float, float, float, tuple[int, ...]]] = []  # min-heap of (score, -macs, -params, picks)
        # stack of nodes: (optimistic score, stage, incoming index, params, macs, latency, score, picks)
        stack: list[tuple[float, int, int, float, float, float, float, tuple[int, ...]]] = [
            (float(prog.max_score[0][0]), 0, 0, 0.0, 0.0, 0.0, 0.0, ())]
        nodes = leaves = 0
        timed_out = False
        while stack:
            if time.perf_counter() - t0 > self.time_limit and top:
                timed_out = True
                break
            opt, i, a, p, m, lat, s, picks = stack.pop()
            kth = top[0][0] if len(top) >= top_k else -INF
            if opt < kth - 1e-9:
                continue
            nodes += 1
            t = tables[i]
            new_p, new_m, new_l, new_s = p + t.params[a], m + t.macs[a], lat + t.latency[a], s + t.score
            bound = new_s + prog.max_score[i + 1][t.out_index]
            ok = (np.isfinite(t.params[a]) & (new_p + prog.min_params[i + 1][t.out_index] <= cap_p)
                  & (new_m + prog.min_macs[i + 1][t.out_index] <= cap_m)
                  & (new_l + prog.min_latency[i + 1][t.out_index] <= cap_l) & (bound >= kth - 1e-9))
            idx = np.flatnonzero(ok)
            if i == n - 1:
                for c in idx:
                    leaves += 1
                    item = (float(new_s[c]), -float(new_m[c]), -float(new_p[c]), picks + (int(c),))
                    if len(top) < top_k:
                        heapq.heappush(top, item)
                    elif item > top[0]:
                        heapq.heapreplace(top, item)
                continue
            for c in idx[np.argsort(bound[idx], kind="stable")]:  # best bound popped first
                stack.append((float(bound[c]), i + 1, int(t.out_index[c]), float(new_p[c]), float(new_m[c]),
                              float(new_l[c]), float(new_s[c]), picks + (int(c),)))

        elapsed = time.perf_counter() - t0
        stats = SolverStats(solve_time_s=elapsed, nodes=nodes, evaluations=leaves, backend="tinyvit-bnb",
                            extra={"space_size": space.size(), "timed_out": timed_out})
        if prog.latency_model is not None:  # latency is a column of the tables the bound is computed on
            stats.extra.update(latency_provenance(budget, prog.latency_model))
        if not top:
            return SolveResult(INFEASIBLE, space.name, budget, [], -INF, INF, stats, smallest=prog.smallest())
        ranked = sorted(top, reverse=True)
        candidates = [self._candidate(prog, item[3], space, rank) for rank, item in enumerate(ranked)]
        best = candidates[0].score
        open_bound = max((node[0] for node in stack), default=-INF) if timed_out else -INF
        bound = max(best, open_bound)
        gap = relative_gap(bound, best)
        status = OPTIMAL if gap <= GAP_OPTIMAL else FEASIBLE
        return SolveResult(status, space.name, budget, candidates, bound, gap, stats)

    @staticmethod
    def _candidate(prog: ContractionProgram, picks: tuple[int, ...], space: TinyViTSpace, rank: int) -> Candidate:
        spec = prog.design(picks, name=f"{space.name}-{rank + 1}")
        params, macs = tinyvit_params(spec, with_head=True), tinyvit_macs(spec, with_head=True)
        lat = {"latency_ms": predict_latency(spec, prog.latency_model)} if prog.latency_model is not None else {}
        return Candidate(spec, tinyvit_capacity(spec), macs, params, extra={
            "activation_memory": tinyvit_activation_memory(spec), "embed_dims": list(spec.embed_dims),
            "num_heads": list(spec.num_heads), "window_sizes": list(spec.window_sizes), "depths": list(spec.depths),
            **lat,
        })


def brute_force_contraction(space: TinyViTSpace, budget: Budget, *, resolution: int | None = None,
                            latency_model: LatencyModel | None = None) -> list[Candidate]:
    """Every feasible design of the space, scored with the cost model and the objective directly
    (no tables, no pruning; latency by :func:`~archsearch.cost.latency.predict_latency` on each spec),
    best first with the solver's tie-break. For tests on small spaces.

    Args:
        latency_model: The predictor for a latency budget (default: the space's calibration).
    """
    if latency_model is None and budget.latency_ms is not None:
        latency_model = require_latency_model(space.name)
    n = space.seed.n_stages
    out = []
    per_stage = [list(itertools.product(space.dim_choices(i), space.depth_choices(i), space.window_choices(i)))
                 for i in range(n)]
    for combo in itertools.product(*per_stage):
        dims = tuple(c[0] for c in combo)
        if any(b < a for a, b in zip(dims, dims[1:])):
            continue
        spec = space.make_spec(dims, tuple(c[1] for c in combo), tuple(c[2] for c in combo), resolution=resolution)
        params, macs = tinyvit_params(spec, with_head=True), tinyvit_macs(spec, with_head=True)
        mem = tinyvit_activation_memory(spec)
        if (budget.params is not None and params > budget.params) or (budget.macs is not None and macs > budget.macs) or (
                budget.memory is not None and mem > budget.memory):
            continue
        extra: dict[str, float] = {"activation_memory": mem}
        if latency_model is not None:
            extra["latency_ms"] = predict_latency(spec, latency_model)
            if budget.latency_ms is not None and extra["latency_ms"] > budget.latency_ms:
                continue
        out.append(Candidate(spec, tinyvit_capacity(spec), macs, params, extra=extra))
    out.sort(key=lambda c: (-c.score, c.macs, c.params))
    return out
