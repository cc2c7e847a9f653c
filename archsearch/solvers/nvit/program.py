"""The NViT program at one EMB: menus, costs, the aggregated integer program and its bounds.

For a fixed EMB ``d`` (and ``N`` tokens) every cost is linear in the per-block products, a block
costing ``(2Nd + N^2)(H qk + H v) + 2Nd m`` MACs and ``2(d+1) H qk + (2d+1)(H v + m) + 6d``
parameters, and the score is separable. Blocks of equal weight are interchangeable, so for each
weight class ``(w, k blocks)`` the program is a multiple-choice knapsack with integer counts
``n_o >= 0`` per option and ``sum_o n_o = k`` (one count vector for the attention options, one for
the MLP options):

    max  const + sum_classes sum_o w v_o n_o   s.t.  fixed + sum_classes sum_o c_o n_o <= limit (every budget row)

solved exactly by HiGHS (:meth:`NViTProgram.solve_emb`). Its LP relaxation (:meth:`NViTProgram.lp_bound`)
and, for any multipliers ``lam >= 0`` of the budget rows, the Lagrangian bound

    const + sum_classes sum_items k max_o (w v_o - lam . c_o) + lam . (limit - fixed)

(:meth:`NViTProgram.lagrangian_bound`, weak duality) bound it from above. Memory budgets are exact
per-option filters of the menus (:mod:`.menus`); a latency budget is one more knapsack row, a
block's predicted latency being an attention part plus an MLP part, each linear in its option.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from archsearch.cost.latency import (LatencyModel, patch_embed_features, predict_latency, require_latency_model,
                                     vit_attention_features, vit_head_features, vit_mlp_features)
from archsearch.cost.vit import vit_activation_memory, vit_macs, vit_params
from archsearch.errors import SpecError
from archsearch.objectives.nvit import block_profile, nvit_entropy
from archsearch.solvers.constants import FreeConstant
from archsearch.solvers.nvit.menus import Menu, _grid, _pareto, _pareto3
from archsearch.space.budget import Budget
from archsearch.space.nvit_templates import NViTSpace
from archsearch.space.vit import ViTBlockSpec, ViTSpec

__all__ = ["FREE_CONSTANTS", "EmbSolution", "NViTProgram"]

#: NViT's free constant: whether the redistribution priors the pruned DeiTs revealed (Yang et al., CVPR 2023)
#: narrow the per-block menus; ``archsearch tune`` may switch them off for data unlike ImageNet.
FREE_CONSTANTS = (
    FreeConstant("priors", "categorical", choices=(True, False), default=lambda space: space.priors,
                 doc="the redistribution priors on the per-block menus (the paper's rules) or menus only"),
)

BYTES = 4


class EmbSolution(NamedTuple):
    """The integer program's answer at one EMB: its designs' blocks, score and bounds."""

    embed_dim: int
    blocks: tuple[tuple[int, int, int, int], ...]
    score: float
    bound: float


class NViTProgram:
    """The NViT program of a space under a budget (pure numpy; no torch).

    Args:
        space: An :class:`NViTSpace`.
        budget: MACs, params, memory and/or latency limits (whole model; latency needs the space's calibration).
        resolution: Input resolution; default the space's.
        priors: Override the space's ``priors`` switch (``False``: menus only, unit weights).
    """

    def __init__(self, space: NViTSpace, budget: Budget, *, resolution: int | None = None,
                 priors: bool | None = None) -> None:
        if not isinstance(space, NViTSpace):
            raise SpecError(f"space: the nvit program needs an NViTSpace, got {type(space).__name__}")
        self.latency_model: LatencyModel | None = require_latency_model(space.name) if budget.latency_ms is not None else None
        if priors is not None:
            if not isinstance(priors, bool):
                raise SpecError(f"priors: expected true or false, got {priors!r}")
            space = space.replace(priors=priors)
        res = space.resolution if resolution is None else resolution
        if not isinstance(res, int) or res < space.patch_size or res % space.patch_size:
            raise SpecError(f"resolution: expected a multiple of patch_size {space.patch_size}, got {resolution!r}")
        self.space = space
        self.budget = budget
        self.resolution = res
        self.priors = space.priors
        self.depth = space.depth
        self.patches = (res // space.patch_size) ** 2
        self.tokens = self.patches + int(space.class_token)
        if self.priors:
            self.weights = block_profile(space.depth, kind=space.profile, middle_weight=space.middle_weight)
            self.a_qk, self.a_v, self.a_mlp = float(space.qk_weight), float(space.v_weight), float(space.mlp_weight)
        else:
            self.weights = (1.0,) * space.depth
            self.a_qk = self.a_v = self.a_mlp = 1.0
        # weight classes: blocks of equal weight are interchangeable
        classes: dict[float, list[int]] = {}
        for i, w in enumerate(self.weights):
            classes.setdefault(w, []).append(i)
        self.classes = [(w, tuple(blocks)) for w, blocks in sorted(classes.items(), reverse=True)]
        self._menus: dict[int, tuple[Menu, Menu] | None] = {}

    # ------------------------------------------------------------------ menus
    def embed_grid(self) -> list[int]:
        sp = self.space
        return _grid(sp.embed_dims[0], sp.embed_dims[1], sp.embed_multiple)

    def ranges(self, d: int) -> dict[str, list[int]]:
        """The per-block choices at EMB ``d``: menus, intersected with the prior ranges when on."""
        sp, m = self.space, self.space.dim_multiple
        heads = list(range(sp.heads[0], sp.heads[1] + 1))
        qk = _grid(sp.qk_dims[0], sp.qk_dims[1], m)
        v = _grid(sp.v_dims[0], sp.v_dims[1], m)
        mlp = _grid(sp.mlp_dims[0], sp.mlp_dims[1], sp.mlp_multiple)
        if self.priors:
            eps = 1e-9
            heads = [h for h in heads if h % 2 == 0 and sp.heads_ratio[0] * d - eps <= h <= sp.heads_ratio[1] * d + eps]
            qk = [x for x in qk if sp.qk_ratio[0] * d - eps <= x <= sp.qk_ratio[1] * d + eps]
            v = [x for x in v if sp.v_prior[0] <= x <= sp.v_prior[1]]
            mlp = [x for x in mlp if sp.mlp_ratio[0] * d - eps <= x <= sp.mlp_ratio[1] * d + eps]
        return {"heads": heads, "qk": qk, "v": v, "mlp": mlp}

    def fixed_costs(self, d: int) -> tuple[int, int]:
        """MACs and params at EMB ``d`` that no block choice changes (embeddings, norms, head, biases)."""
        sp = self.space
        c_in = sp.in_channels * sp.patch_size**2
        classes = self.space.num_classes
        macs = self.patches * c_in * d + d * classes
        params = c_in * d + d + d * int(sp.class_token) + self.tokens * d + 2 * d + (d + 1) * classes * (classes > 0)
        params += self.depth * 6 * d  # two LayerNorms, output-projection and fc2 biases per block
        return macs, params

    def fixed_latency(self, d: int) -> float:
        """Predicted latency (ms) at EMB ``d`` that no block choice changes: patch embedding and head."""
        model, sp = self.latency_model, self.space
        if model is None:
            return 0.0
        return (model.unit_ms("patch_embed", patch_embed_features(in_channels=sp.in_channels, embed_dim=d, patch_size=sp.patch_size,
                                                                  resolution=self.resolution, class_token=sp.class_token))
                + model.unit_ms("vit_head", vit_head_features(embed_dim=d, tokens=self.tokens, num_classes=sp.num_classes)))

    def menus(self, d: int) -> tuple[Menu, Menu] | None:
        """Non-dominated attention and MLP options at EMB ``d`` (``None`` when a menu is empty)."""
        if d not in self._menus:
            self._menus[d] = self._build_menus(d)
        return self._menus[d]

    def _build_menus(self, d: int) -> tuple[Menu, Menu] | None:
        r = self.ranges(d)
        n = self.tokens
        mem = self.budget.memory
        if not all(r.values()):
            return None
        if mem is not None and BYTES * (self.space.in_channels * self.resolution**2 + self.patches * d) > mem:
            return None
        h, q, v = np.meshgrid(np.array(r["heads"], dtype=np.int64), np.array(r["qk"], dtype=np.int64),
                              np.array(r["v"], dtype=np.int64), indexing="ij")
        h, q, v = h.ravel(), q.ravel(), v.ravel()
        a = 2 * n * d + n * n
        att_macs = a * (h * q + h * v)
        att_params = 2 * (d + 1) * h * q + (2 * d + 1) * h * v
        att_value = self.a_qk * np.log(q) + self.a_v * np.log(h * v)
        mlp = np.array(r["mlp"], dtype=np.int64)
        mlp_macs = 2 * n * d * mlp
        mlp_params = (2 * d + 1) * mlp
        mlp_value = self.a_mlp * np.log(mlp)
        if mem is not None:  # the peak of vit_activation_memory is a maximum over per-option terms
            qkv = n * h * (2 * q + v)
            attn = h * n * n
            att_peak = np.maximum.reduce([2 * n * d + qkv, n * d + qkv + attn, n * d + n * h * v + attn])
            ok = BYTES * att_peak <= mem
            h, q, v, att_macs, att_params, att_value = h[ok], q[ok], v[ok], att_macs[ok], att_params[ok], att_value[ok]
            ok = BYTES * (2 * n * d + n * mlp) <= mem
            mlp, mlp_macs, mlp_params, mlp_value = mlp[ok], mlp_macs[ok], mlp_params[ok], mlp_value[ok]
            if not h.size or not mlp.size:
                return None
        model = self.latency_model
        if model is None:
            att_lat, mlp_lat = np.zeros(len(h)), np.zeros(len(mlp))
            keep = _pareto(att_value, att_macs, att_params)
        else:  # per-option predictions (the feature formulas are arithmetic, so they take arrays)
            att_lat = np.asarray(model.unit_ms("vit_block", vit_attention_features(embed_dim=d, heads=h, qk_dim=q, v_dim=v, tokens=n)), float)
            mlp_lat = np.asarray(model.unit_ms("vit_block", vit_mlp_features(embed_dim=d, mlp_dim=mlp, tokens=n)), float)
            keep = _pareto3(att_value, att_macs, att_params, att_lat)
        att = Menu(np.stack([h, q, v], axis=1)[keep], att_value[keep], att_macs[keep], att_params[keep], att_lat[keep])
        keep = _pareto(mlp_value, mlp_macs, mlp_params) if model is None else _pareto3(mlp_value, mlp_macs, mlp_params, mlp_lat)
        mlp_menu = Menu(mlp[keep, None], mlp_value[keep], mlp_macs[keep], mlp_params[keep], mlp_lat[keep])
        return att, mlp_menu

    # ------------------------------------------------------------- evaluation
    def to_spec(self, d: int, blocks: tuple[tuple[int, int, int, int], ...], *, name: str = "") -> ViTSpec:
        sp = self.space
        return ViTSpec(d, tuple(ViTBlockSpec(*b) for b in blocks), sp.patch_size, self.resolution, sp.in_channels,
                       sp.class_token, sp.num_classes, name)

    def score(self, spec: ViTSpec) -> float:
        """The program's objective, :func:`~archsearch.objectives.nvit.nvit_entropy` with this program's weights."""
        return nvit_entropy(spec, block_weights=self.weights, qk_weight=self.a_qk, v_weight=self.a_v,
                            mlp_weight=self.a_mlp)

    def costs(self, spec: ViTSpec) -> tuple[int, int, int]:
        """Whole-model MACs and params and activation memory, from :mod:`archsearch.cost`."""
        return vit_macs(spec, with_head=True), vit_params(spec, with_head=True), vit_activation_memory(spec)

    def latency(self, spec: ViTSpec) -> float:
        """Predicted whole-model latency in ms (0 without a latency budget)."""
        return predict_latency(spec, self.latency_model) if self.latency_model is not None else 0.0

    def is_member(self, d: int, blocks: tuple[tuple[int, int, int, int], ...]) -> bool:
        """Whether a design lies in the program's discrete space (menus and priors; costs not checked)."""
        if d not in self.embed_grid() or len(blocks) != self.depth:
            return False
        r = self.ranges(d)
        return all(h in r["heads"] and q in r["qk"] and v in r["v"] and m in r["mlp"] for h, q, v, m in blocks)

    def feasible(self, spec: ViTSpec) -> bool:
        macs, params, mem = self.costs(spec)
        b = self.budget
        return ((b.macs is None or macs <= b.macs) and (b.params is None or params <= b.params)
                and (b.memory is None or mem <= b.memory) and (b.latency_ms is None or self.latency(spec) <= b.latency_ms))

    # ---------------------------------------------------------- integer program
    def _model(self, d: int, menus: tuple[Menu, Menu]) -> tuple[Any, ...] | None:
        """Objective, constraint matrix and bounds of the aggregated knapsack at EMB ``d``."""
        from scipy.sparse import lil_matrix

        att, mlp = menus
        fm, fp = self.fixed_costs(d)
        n_att, n_mlp = len(att.value), len(mlp.value)
        per_class = n_att + n_mlp
        nv = per_class * len(self.classes)
        c = np.empty(nv)
        macs = np.empty(nv)
        params = np.empty(nv)
        lat = np.empty(nv)
        eq = lil_matrix((2 * len(self.classes), nv))
        eq_rhs = np.empty(2 * len(self.classes))
        for k, (w, blocks) in enumerate(self.classes):
            s = k * per_class
            c[s:s + n_att], c[s + n_att:s + per_class] = w * att.value, w * mlp.value
            macs[s:s + n_att], macs[s + n_att:s + per_class] = att.macs, mlp.macs
            params[s:s + n_att], params[s + n_att:s + per_class] = att.params, mlp.params
            lat[s:s + n_att], lat[s + n_att:s + per_class] = att.latency, mlp.latency
            eq[2 * k, s:s + n_att] = 1
            eq[2 * k + 1, s + n_att:s + per_class] = 1
            eq_rhs[2 * k: 2 * k + 2] = len(blocks)
        rows, rhs = [], []
        for limit, coef, fixed in self._rows(d, macs, params, lat):
            room = limit - fixed
            if room <= 0:
                return None
            rows.append(coef / room)  # scaled so the row reads <= 1
            rhs.append(1.0)
        const = 2 * math.log(d) * sum(self.weights)
        return c, eq.tocsr(), eq_rhs, np.array(rows) if rows else None, np.array(rhs), const

    def _rows(self, d: int, macs: Any, params: Any, latency: Any) -> list[tuple[float, Any, float]]:
        """``(limit, per-option cost, fixed cost)`` of every budget row in use: MACs, params, latency."""
        b = self.budget
        fm, fp = self.fixed_costs(d)
        rows = [(b.macs, macs, fm), (b.params, params, fp), (b.latency_ms, latency, self.fixed_latency(d))]
        return [(limit, cost, fixed) for limit, cost, fixed in rows if limit is not None]

    def min_costs(self, d: int) -> tuple[int, int, float] | None:
        """MACs, params and predicted latency of the cheapest design at EMB ``d`` (each minimised separately)."""
        menus = self.menus(d)
        if menus is None:
            return None
        fm, fp = self.fixed_costs(d)
        att, mlp = menus
        return (int(fm + self.depth * (att.macs.min() + mlp.macs.min())),
                int(fp + self.depth * (att.params.min() + mlp.params.min())),
                float(self.fixed_latency(d) + self.depth * (att.latency.min() + mlp.latency.min())))

    def lagrangian_bound(self, d: int, lam_macs: float, lam_params: float, lam_latency: float = 0.0) -> float:
        """Upper bound of the score at EMB ``d`` for any multipliers ``>= 0`` of the MACs/params/latency rows.

        ``const + sum over classes and items of k max_o (w v_o - lam . c_o) + lam . room``: the
        budget rows moved into the objective (weak duality); ``-inf`` when nothing fits.
        """
        mc = self.min_costs(d)
        if mc is None or any(lo > limit for limit, lo in zip((self.budget.macs, self.budget.params, self.budget.latency_ms), mc)
                             if limit is not None):
            return -math.inf
        att, mlp = self.menus(d)  # type: ignore[misc]
        lams = (lam_macs, lam_params, lam_latency)
        rows = [(lam, limit, fixed) for lam, (limit, fixed) in
                zip(lams, ((self.budget.macs, self.fixed_costs(d)[0]), (self.budget.params, self.fixed_costs(d)[1]),
                           (self.budget.latency_ms, self.fixed_latency(d))))]
        lm, lp, ll = (lam if limit is not None else 0.0 for lam, limit, _ in rows)
        total = 2 * math.log(d) * sum(self.weights)
        for w, blocks in self.classes:
            for menu in (att, mlp):
                total += len(blocks) * float(np.max(w * menu.value - lm * menu.macs - lp * menu.params - ll * menu.latency))
        for lam, limit, fixed in rows:
            if limit is not None:
                total += lam * (limit - fixed)
        return total

    def lp_bound(self, d: int) -> tuple[float, tuple[float, float, float]]:
        """The LP relaxation's optimum at EMB ``d`` (an upper bound) and its multipliers per MAC, param and ms.

        ``-inf`` when nothing fits, ``inf`` (no pruning) when the backend fails.
        """
        from scipy.optimize import linprog

        menus = self.menus(d)
        model = None if menus is None else self._model(d, menus)
        if model is None:
            return -math.inf, (0.0, 0.0, 0.0)
        c, eq, eq_rhs, ub, ub_rhs, const = model
        res = linprog(-c, A_ub=ub, b_ub=ub_rhs if ub is not None else None, A_eq=eq, b_eq=eq_rhs,
                      bounds=(0, None), method="highs")
        if res.status == 2:
            return -math.inf, (0.0, 0.0, 0.0)
        if res.status != 0:
            return math.inf, (0.0, 0.0, 0.0)
        lams = [0.0, 0.0, 0.0]
        if ub is not None:
            fixed = (*self.fixed_costs(d), self.fixed_latency(d))
            marg = -np.asarray(res.ineqlin.marginals)
            j = 0
            for k, limit in enumerate((self.budget.macs, self.budget.params, self.budget.latency_ms)):
                if limit is not None:
                    lams[k] = max(0.0, float(marg[j])) / (limit - fixed[k])  # per MAC / parameter / ms
                    j += 1
        return float(-res.fun + const) + 1e-9 * abs(res.fun), (lams[0], lams[1], lams[2])

    def solve_emb(self, d: int, *, time_limit: float = 30.0) -> tuple[EmbSolution | None, float]:
        """The best design at EMB ``d`` by the integer program, and an upper bound of the score there.

        Returns ``(None, -inf)`` when nothing fits; ``(None, bound)`` when the time limit ran out
        before a design was found. A solution is exact unless the time limit stopped HiGHS (its
        bound then says how far it may be).
        """
        from scipy.optimize import Bounds, LinearConstraint, milp

        menus = self.menus(d)
        model = None if menus is None else self._model(d, menus)
        if model is None:
            return None, -math.inf
        c, eq, eq_rhs, ub, ub_rhs, const = model
        att, mlp = menus
        shrink = 0.0
        bound = math.inf
        for _ in range(4):  # re-solve with a tighter row if HiGHS's tolerance let a design over the budget
            cons = [LinearConstraint(eq, eq_rhs, eq_rhs)]
            if ub is not None:
                cons.append(LinearConstraint(ub, -np.inf, ub_rhs - shrink))
            res = milp(-c, constraints=cons, integrality=np.ones_like(c), bounds=Bounds(0, np.inf),
                       options={"mip_rel_gap": 1e-9, "time_limit": time_limit, "disp": False})
            if shrink == 0.0:
                if res.status == 2:  # proven infeasible
                    return None, -math.inf
                dual = getattr(res, "mip_dual_bound", None)
                if res.status == 0 and dual is not None and np.isfinite(dual):
                    bound = float(-dual + const) + 1e-9 * abs(dual)
            if res.x is None:
                return None, bound
            counts = np.rint(res.x).astype(np.int64)
            blocks = self._assign(counts, att, mlp)
            spec = self.to_spec(d, blocks)
            if self.feasible(spec):
                score = self.score(spec)
                return EmbSolution(d, blocks, score, max(bound, score)), max(bound, score)
            over = float(np.max(ub @ counts - ub_rhs)) if ub is not None else 0.0
            shrink += max(over, 1e-9) * 2
        return None, bound

    def _assign(self, counts: np.ndarray, att: Menu, mlp: Menu) -> tuple[tuple[int, int, int, int], ...]:
        """Blocks from per-class option counts; wider options go to blocks nearer the middle."""
        n_att = len(att.value)
        per_class = n_att + len(mlp.value)
        out: list[tuple[int, int, int, int] | None] = [None] * self.depth
        centre = (self.depth - 1) / 2
        for k, (_, blocks) in enumerate(self.classes):
            s = k * per_class
            a = [o for o in range(n_att) for _ in range(counts[s + o])]
            m = [o for o in range(len(mlp.value)) for _ in range(counts[s + n_att + o])]
            a.sort(key=lambda o: (-int(att.macs[o]), -int(att.params[o]), tuple(att.dims[o])))
            m.sort(key=lambda o: -int(mlp.dims[o, 0]))
            order = sorted(blocks, key=lambda i: (abs(i - centre), i))
            for i, ao, mo in zip(order, a, m):
                h, q, v = (int(x) for x in att.dims[ao])
                out[i] = (h, q, v, int(mlp.dims[mo, 0]))
        return tuple(out)  # type: ignore[arg-type]

