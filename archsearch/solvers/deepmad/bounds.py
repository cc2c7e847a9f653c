"""Bounding a box: the relaxation solved at a node, and what its solution says about the box.

* :meth:`_Relaxation.solve`: the box's parameters set, the compiled program solved; an upper bound on every
  design in the box, ``None`` when it is infeasible (a pruning verdict must come twice), :data:`UNSOLVED`
  when the backend fails (never pruned).
* :meth:`_Relaxation.reduced_cost_box`: the duals of the active box bounds price how fast the bound falls
  when a bound moves, which cuts the part of the box that cannot reach the incumbent.
* :meth:`_Relaxation.tighten`: optimality-based bound tightening at the root (the min and max of every width
  and depth over the relaxation with its objective at least the incumbent's score).
* the slacks that choose the branching variable: the McCormick errors of the stage products and of ``D v``,
  and the repeated blocks' hidden cost below ``D m(z)`` priced by the budget rows' duals.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
from archsearch.solvers.deepmad.box import _at_least, _at_most, _empty, _Node
from archsearch.solvers.deepmad.relaxation import (
    _assign,
    _assign_all,
    _Formulation,
    _log_coef,
)

UNSOLVED = (math.inf, np.zeros(0))  # a relaxation the backend could not solve: no bound, no pruning
# Clarabel's first attempt at every relaxation skips the iterative refinement of its KKT solves: as many
# interior-point iterations, a third less time per solve (R50's 424 solves: 2.5 -> 1.6 s), values within
# 1e-7 relative of the refined ones, and the same tolerances on the result. A solve it leaves unfinished is
# retried with refinement (the next attempt of :meth:`_Relaxation.solve`). Other backends go through cvxpy
# with their own defaults. It also stops at a duality gap of 1e-6 (Clarabel's default: 1e-8): ~14 % fewer
# iterations (R18 29.2 -> 25.6 per solve, R50 31.1 -> 27.3) and ~7 % less CPU to R18's and R50's 1 % gap on
# the same paths; 1e-5 and 1e-4 cost more nodes than they save (R18 606 and > 1 000 nodes instead of 382:
# the duals that tighten the boxes are less accurate). The feasibility tolerance stays Clarabel's
FAST = {"iterative_refinement_enable": False, "tol_gap_abs": 1e-6, "tol_gap_rel": 1e-6}
#: the relative margin added to every relaxed value (and kept in the cutoffs of reduced-cost and bound
#: tightening), on the safe side of the 1e-6 duality gap at which a solve may stop
MARGIN = 3e-6


class _Relaxation(_Formulation):
    def inner_ratio(self, width_lo: int) -> float:
        """The least ``b / out`` of the designs whose output width is at least ``width_lo``: the inner-width
        rule (``b >= smart_round(out / 10)`` in the DeepMAD spaces) gives about 0.1 at wide outputs where the
        space's least ratio (:meth:`SearchSpace.min_inner_ratio`, 0.083 at out = 96) is far looser."""
        ratio = self._ratios.get(width_lo)
        if ratio is None:
            sp, m = self.prog.space, self.prog.m
            start = max(sp.widths[0], -(-width_lo // m) * m)
            widths = range(start, sp.widths[1] + 1, m)
            ratio = min((self.prog.b_range(c)[0] / c for c in widths), default=sp.min_inner_ratio())
            ratio = max(ratio, sp.min_inner_ratio()) * (1 - 1e-12)
            self._ratios[width_lo] = ratio
        return ratio

    def box(self, node: _Node) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ``z`` in a node."""
        n = self.prog.n
        zl, zu = np.zeros(self.nz), np.zeros(self.nz)
        zl[: n + 1], zu[: n + 1] = np.log(node.wlo), np.log(node.whi)
        zl[1 + n: 1 + 2 * n], zu[1 + n: 1 + 2 * n] = np.log(node.blo), np.log(node.bhi)
        zl[1 + 2 * n:] = [2 * math.log(min(k)) for k in node.kernels]
        zu[1 + 2 * n:] = [2 * math.log(max(k)) for k in node.kernels]
        return zl, zu

    def y_range(self, zl: np.ndarray, zu: np.ndarray, i: int, lo_ratio: float) -> tuple[float, float]:
        """Range of superblock ``i``'s log inner width over the box, narrowed by ``lo_ratio <= b / out <=``
        the space's upper ratio."""
        n, hi_r = self.prog.n, self.prog.space.max_inner_ratio()
        o, y = 1 + i, 1 + n + i
        return max(zl[y], zl[o] + math.log(lo_ratio)), min(zu[y], zu[o] + math.log(hi_r))

    def v_range(self, zl: np.ndarray, zu: np.ndarray, i: int) -> tuple[float, float, np.ndarray]:
        """Range of ``v_i = x_o + ny y_i + kappa_i`` over the box, and ``v_i`` as ``row . z``."""
        prog, n = self.prog, self.prog.n
        ny = 2.0 if prog.bottleneck else 1.0
        o, y, k = 1 + i, 1 + n + i, 1 + 2 * n + i
        yl, yu = self.y_range(zl, zu, i, prog.space.min_inner_ratio())
        row = np.zeros(self.nz)
        row[o], row[y], row[k] = 1.0, ny, 1.0
        return zl[o] + ny * yl + zl[k], zu[o] + ny * yu + zu[k], row

    def set_box(self, node: _Node, ratios: np.ndarray | None = None, *, shade: float = 0.0) -> bool:
        """Sets every parameter of the relaxation (and of the tightening program) to the box ``node``;
        ``False`` when the box is empty. :meth:`solve` describes ``ratios`` and ``shade``."""
        prog, n = self.prog, self.prog.n
        _assign_all((self.cap, 1.0 - shade), (self.rho_shift, -math.log(1.0 - shade)))
        zl, zu = self.box(node)
        if np.any(zl > zu + 1e-12):
            return False
        for param, sb, coefs in self.mem_groups:
            _assign(param, _log_coef(np.array([0.0 if (rest and node.lo[sb] < 2) else c for c, rest in coefs]) / (prog.budget.memory / 4)))
        _assign(self.k2_hi, np.exp(zu[1 + 2 * n:]))
        if ratios is None:
            ratios = np.array([self.inner_ratio(w) for w in node.wlo[1:]])
        _assign_all((self.lo_ratio, ratios), (self.lo_ratio_k2, ratios * np.exp(zl[1 + 2 * n:])))
        if self.rule_cuts:
            slope, icpt = np.zeros(n), np.full(n, -1e3)
            for i in range(n):
                xa, xb = max(zl[1 + i], math.log(120.0)), zu[1 + i]
                if xb > xa + 1e-9:
                    ga, gb = math.log(math.exp(xa) / 10 - 4), math.log(math.exp(xb) / 10 - 4)
                    slope[i] = (gb - ga) / (xb - xa)
                    icpt[i] = ga - slope[i] * xa - 1e-9
            if shade > 0:  # a heuristic's solve: b >= out / 10 itself, which the grid's smart_round(out / 10) nearly is
                slope, icpt = np.ones(n), np.full(n, -math.log(10.0))
            _assign_all((self.rule_slope, slope), (self.rule_icpt, icpt))
            _assign_all((self.quad_inv, np.exp(-zl[1 + 2 * n:]) * (1 + 1e-4)),  # shaded: at a point the cone is tight
                        (self.quad_off, ((np.array(node.lo) < 1.5) | (  # D may be 0, or out and inner fixed
                            (zu[1: 1 + n] - zl[1: 1 + n] < 1e-12) & (zu[1 + n: 1 + 2 * n] - zl[1 + n: 1 + 2 * n] < 1e-12))).astype(float)))
        rule_rhs = self.rule_rhs.copy()
        rule_rhs[2::4] = -np.log(ratios)
        _assign(self.rule_rhs_param, rule_rhs)
        d_lo = np.array(node.lo, float) - 1
        d_hi = np.array(node.hi, float) - 1
        dl_lo, dl_hi, slope, icpt = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        for i in range(n):
            lo, hi = d_lo[i], d_hi[i]
            if lo >= 1:
                dl_lo[i], dl_hi[i] = math.log(lo), math.log(hi)
                slope[i] = (hi - lo) / (dl_hi[i] - dl_lo[i]) if hi > lo else 0.0
                icpt[i] = lo - slope[i] * dl_lo[i] if hi > lo else lo
            else:  # D may be 0: no link between the repeated blocks' costs and the widths
                dl_lo[i] = dl_hi[i] = math.log(1e-9)
                icpt[i] = hi
        _assign_all((self.d_lo, d_lo), (self.d_hi, d_hi), (self.dl_lo, dl_lo), (self.dl_hi, dl_hi))
        J = len(self.mono)
        m_up, sec_c = np.zeros((n, J)), np.zeros((n, J))
        sec_rows = [np.zeros((n, self.nz)) for _ in range(J)]
        for i in range(n):
            for j in range(J):
                row = self.mono_rows[i, j]
                pl = float(np.where(row > 0, zl, zu) @ row)
                pu = float(np.where(row > 0, zu, zl) @ row)
                el, eu = math.exp(pl) / self.KAPPA, math.exp(pu) / self.KAPPA
                m_up[i, j] = eu
                if pu - pl > 1e-12:  # e^p <= el + (eu - el) (p - pl) / (pu - pl)
                    sl = (eu - el) / (pu - pl)
                    sec_rows[j][i] = d_hi[i] * sl * row
                    sec_c[i, j] = d_hi[i] * (el - sl * pl)
                else:
                    sec_c[i, j] = d_hi[i] * eu
        _assign_all((self.m_up, m_up), (self.sec_c, sec_c))
        for j in range(J):
            _assign(self.sec_rows[j], sec_rows[j])
        _assign_all((self.sec_slope, slope), (self.sec_icpt, icpt))
        # McCormick of W = D (x_o, y, kappa): upper D_hi w + lo D - D_hi lo, D_lo w + hi D - D_lo hi; lower
        # D_lo w + lo D - D_lo lo, D_hi w + hi D - D_hi hi
        lo3, hi3 = np.zeros((n, 3)), np.zeros((n, 3))
        for i in range(n):
            o, k = 1 + i, 1 + 2 * n + i
            yl, yu = self.y_range(zl, zu, i, ratios[i])
            lo3[i], hi3[i] = (zl[o], yl, zl[k]), (zu[o], yu, zu[k])
        dl3, dh3 = np.repeat(np.maximum(d_lo, 0.0)[:, None], 3, 1), np.repeat(d_hi[:, None], 3, 1)
        # (each piece loosened by 1e-6 so that a fixed depth, where upper and lower pieces meet, leaves the
        # interior-point solver a strictly feasible W)
        eps = 1e-6 * (1.0 + dh3 * np.maximum(np.abs(lo3), np.abs(hi3)))
        for (a, b_, c), (av, bv, cv) in zip(self.w_mc, ((dh3, lo3, -dh3 * lo3 + eps), (dl3, hi3, -dl3 * hi3 + eps),
                                                        (dl3, lo3, -dl3 * lo3 - eps), (dh3, hi3, -dh3 * hi3 - eps))):
            _assign_all((a, av), (b_, bv), (c, cv))
        off = ((d_lo < 0.5) | (d_hi - d_lo < 0.5)).astype(float)  # D may be 0, or D fixed
        _assign_all((self.cone_on, 1.0 - off), (self.cone_off, off))
        a_up, mc_z, mc_0 = np.zeros(self.n_stages), np.zeros((self.n_stages, self.nz)), np.zeros(self.n_stages)
        for s, end in enumerate(prog.ends):
            idx, const = self.stage_factor(s)
            a_up[s] = (zu[idx] if idx is not None else 0.0) + const
            if idx is None:  # a constant factor (the head conv's width): the product is exact, w <= A E
                continue
            two_log_r = const
            e_lo = self._e_lo(node, s)
            mc_z[s, idx] = e_lo
            mc_0[s] = e_lo * two_log_r - a_up[s] * e_lo
        _assign_all((self.a_up, a_up), (self.mc_z, mc_z), (self.mc_0, mc_0))
        a_lo, mc2_z, mc2_0 = np.zeros(self.n_stages), np.zeros((self.n_stages, self.nz)), np.zeros(self.n_stages)
        for s, end in enumerate(prog.ends):
            idx, two_log_r = self.stage_factor(s)
            if idx is None:  # constant factor: the second piece repeats the first
                a_lo[s] = a_up[s]
                continue
            if self.e_up is None or not np.isfinite(self.e_up[s]):  # no upper bound yet: the piece is void
                a_lo[s] = a_up[s]
                mc2_0[s] = 1e6
                continue
            a_lo[s] = max(0.0, zl[idx] + two_log_r)
            mc2_z[s, idx] = self.e_up[s]
            mc2_0[s] = self.e_up[s] * (two_log_r - a_lo[s])
        _assign_all((self.a_lo, a_lo), (self.mc2_z, mc2_z), (self.mc2_0, mc2_0))
        _assign_all((self.zl, zl), (self.zu, zu))
        sigma = self.mono_rows_first @ (0.5 * (zl + zu))
        _assign(self.mono_sigma, sigma)
        scale = np.exp(sigma)
        for param, coef in zip(self.mono_coef_params, self.mono_coefs):
            _assign(param, coef * scale)
        return True

    def solve(self, node: _Node, ratios: np.ndarray | None = None, *, prune: bool = True,
              shade: float = 0.0) -> tuple[float, np.ndarray] | None:
        """Returns ``(relaxed objective, z*)`` (the depth penalty included), ``None`` when the relaxation is
        proven infeasible, or :data:`UNSOLVED` when the backend fails. ``ratios``: the least ``b / out`` per
        superblock instead of the box's (a heuristic's choice: then the value bounds nothing). ``prune``:
        the caller prunes the box on a ``None`` result, so an infeasibility verdict is checked by a second
        solve; a heuristic that only skips the box passes ``False`` and takes the first verdict. ``shade``:
        a heuristic's solve with every budget and rho0 scaled by ``1 - shade`` and, in the spaces with the
        reference's inner-width rule, ``b >= out / 10`` in place of its chord (then too the value bounds
        nothing): widths that stay feasible when rounded to the grid."""
        if not self.set_box(node, ratios, shade=shade):
            return None
        self.solves += 1
        # a failed or inconclusive solve must never prune: retry with more iterations, then report
        # UNSOLVED so the caller keeps the parent's bound
        # an infeasibility verdict prunes, so it must come twice: Clarabel calls a few tight boxes infeasible
        # that another regularisation solves (R18: the box of a single design whose inner-width cone is tight)
        status, objective, verdicts, needed = None, None, 0, (2 if prune else 1)
        for options in (FAST, {}, {"static_regularization_constant": 1e-6}, {"max_iter": 2000, "tol_feas": 1e-7, "tol_gap_rel": 1e-7}):
            status, objective = self._run(self.problem, self.compiled, options)
            verdicts += status == "infeasible"
            if status == "optimal" or (status == "optimal_inaccurate" and options is not FAST) or verdicts == needed:
                break
        if status == "infeasible" and verdicts < needed:
            status = None
        if status not in ("optimal", "optimal_inaccurate", "infeasible") and self.rule_cuts:
            # Clarabel stalls on a few boxes with the inner-width chord (R50: depths <= 4); without it the
            # relaxation is looser but still valid
            n = self.prog.n
            _assign_all((self.rule_slope, np.zeros(n)), (self.rule_icpt, np.full(n, -1e3)))
            status, objective = self._run(self.problem, self.compiled, {})
        self.last_status = status
        self.sol, self._duals = {}, {}
        if status == "infeasible":
            return None
        if status not in ("optimal", "optimal_inaccurate") or objective is None:
            return UNSOLVED
        if self.compiled is not None:
            self.sol = {k: np.asarray(self.compiled.value_of(v), float) for k, v in self.read_vars.items()}
            self._duals = {con.id: self.compiled.dual_of(con) for con in self.dual_cons}
        else:
            self.sol = {k: np.asarray(v.value, float) for k, v in self.read_vars.items()}
            self._duals = {con.id: con.dual_value for con in self.dual_cons}
        value = 1000.0 * objective
        value += MARGIN * max(1.0, abs(value))
        if status == "optimal_inaccurate":
            value += 1e-3 * abs(value)  # keep the bound on the safe side
        return value, self.sol["z"]

    def _run(self, problem: Any, compiled: Any, options: dict[str, Any]) -> tuple[str | None, float | None]:
        """Solves ``problem`` at its parameters' values (directly with Clarabel when ``compiled``); returns
        its cvxpy status (``None`` on a solver error) and objective value."""
        if compiled is not None:
            status = compiled.solve(**options)
            return (None if status == "solver_error" else status), compiled.value
        if options is FAST:
            options = {}
        try:
            with warnings.catch_warnings():  # inaccurate statuses are handled by the callers
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=self.solver, **options)
        except self.cp.error.SolverError:
            return None, None
        return problem.status, (None if problem.value is None else float(problem.value))

    def reduced_cost_box(self, node: _Node, value: float, cutoff: float) -> _Node | None:
        """Reduced-cost bound tightening after a solve of ``node`` with relaxed value ``value``.

        The relaxation's optimal value is concave in the bound of a box constraint, and the constraint's
        dual ``lam`` is a supergradient: moving an active upper bound ``u`` down to ``u - t`` costs at least
        ``lam t``. So no design of the node with that coordinate below ``u - (value - cutoff) / lam`` can
        beat ``cutoff``: that becomes its lower bound (and likewise for active lower bounds). Free: it reads
        the duals of the last solve. ``None`` when the box becomes empty; the node unchanged after an
        inaccurate solve."""
        if self.last_status != "optimal":
            return node
        if value < cutoff:
            return None
        slack = value - cutoff + MARGIN * max(1.0, abs(value))  # on the safe side of the solver's tolerance
        n, m = self.prog.n, self.prog.m
        duals = [self._duals.get(c.id) for c in self.box_cons]
        if any(d is None for d in duals):
            return node
        d_lo, d_hi, z_lo, z_hi = (1000.0 * np.asarray(d, float) for d in duals)
        zl, zu = self.box(node)
        fields = {k: list(getattr(node, k)) for k in ("lo", "hi", "wlo", "whi", "blo", "bhi")}
        kernels = list(node.kernels)
        eps = 1e-6 * max(1.0, abs(value))
        for j in range(self.nz):
            new_lo = zu[j] - slack / z_hi[j] if z_hi[j] > eps else -math.inf
            new_hi = zl[j] + slack / z_lo[j] if z_lo[j] > eps else math.inf
            if new_lo == -math.inf and new_hi == math.inf:
                continue
            if j < 1 + 2 * n:
                lo_f, hi_f, idx = ("wlo", "whi", j) if j <= n else ("blo", "bhi", j - 1 - n)
                if new_lo > zl[j]:
                    fields[lo_f][idx] = max(fields[lo_f][idx], _at_least(new_lo, m))
                if new_hi < zu[j]:
                    fields[hi_f][idx] = min(fields[hi_f][idx], _at_most(new_hi, m))
            else:
                i = j - 1 - 2 * n
                kept = tuple(k for k in kernels[i] if new_lo - 1e-6 <= 2 * math.log(k) <= new_hi + 1e-6)
                if not kept:
                    return None
                kernels[i] = kept
        for i in range(n):
            if d_hi[i] > eps:  # D at its upper end
                fields["lo"][i] = max(fields["lo"][i], math.ceil(1 + (node.hi[i] - 1) - slack / d_hi[i] - 1e-3))
            if d_lo[i] > eps:
                fields["hi"][i] = min(fields["hi"][i], math.floor(1 + (node.lo[i] - 1) + slack / d_lo[i] + 1e-3))
        new = node._replace(kernels=tuple(kernels), **{k: tuple(v) for k, v in fields.items()})
        return None if _empty(new) else new

    def tighten(self, node: _Node, cutoff: float, rounds: int = 3, deadline: float = math.inf, *,
                sequential: bool = True) -> _Node | None:
        """Optimality-based bound tightening: the smallest box around every design of ``node`` whose
        relaxation reaches ``cutoff``, snapped inward to the grid. Every design scoring above ``cutoff``
        stays inside (its relaxation value is at least its score), so the bound of the returned node is
        valid for them; ``None`` when no design of the node can beat ``cutoff``.

        Per round: min and max of every width, inner width and depth (two solves each), each solve over the
        box as the previous ones of the round left it (Gauss-Seidel: a narrower box is valid as soon as it is
        found, and it narrows the next coordinates further), then the next round, while a round still narrows
        something. Against narrowing only between rounds (``sequential=False``): R18, R34 and R50 reach a 1 %
        gap with 25 % less CPU in all (14.3 -> 10.8 s, one run each; docs/benchmarks.md, "Speed")."""
        prog, n = self.prog, self.prog.n
        m = prog.m
        nz = self.nz
        for _ in range(rounds):
            res = self.solve(node)  # sets the node's parameters
            if res is None:
                return None
            if res is UNSOLVED or self.last_status != "optimal":  # no reliable numbers for this box
                return node
            if res[0] < cutoff:
                return None
            _assign(self.cutoff, cutoff - MARGIN * max(1.0, abs(cutoff)))  # on the safe side of the solver's tolerance
            fields = {k: list(getattr(node, k)) for k in ("lo", "hi", "wlo", "whi", "blo", "bhi")}
            last = node
            targets = ([("w", j, j) for j in range(n + 1)] + [("b", i, 1 + n + i) for i in range(n)]
                       + [("L", i, nz + i) for i in range(n) if node.hi[i] > node.lo[i]])
            for kind, j, col in targets:
                for sign in (1.0, -1.0):
                    if time.perf_counter() > deadline:
                        return last
                    lowest = self._lowest(col, sign)
                    if lowest is None:  # the node reaches the cutoff, so this is numerics: keep the range
                        continue
                    value = sign * lowest
                    if kind == "L":
                        depth = 1.0 + value
                        if sign > 0:  # margins cover the solver's tolerance
                            fields["lo"][j] = max(fields["lo"][j], math.ceil(depth - 1e-3))
                        else:
                            fields["hi"][j] = min(fields["hi"][j], math.floor(depth + 1e-3))
                    else:
                        lo_f, hi_f = ("wlo", "whi") if kind == "w" else ("blo", "bhi")
                        if sign > 0:
                            fields[lo_f][j] = max(fields[lo_f][j], _at_least(value, m))
                        else:
                            fields[hi_f][j] = min(fields[hi_f][j], _at_most(value, m))
                    cur = node._replace(**{k: tuple(v) for k, v in fields.items()}) if sequential else last
                    if cur != last:  # the next solves already see the narrower box
                        if _empty(cur) or not self.set_box(cur):
                            return None
                        last = cur
            new = node._replace(**{k: tuple(v) for k, v in fields.items()})
            if _empty(new):
                return None
            if new == node:
                break
            node = new
        return node

    def _lowest(self, col: int, sign: float) -> float | None:
        """The minimum of ``sign`` times coordinate ``col`` of ``(z, D, logsum / 100)`` over the relaxation
        with the current parameters and the objective at least :attr:`cutoff`; ``None`` unless solved
        to optimality."""
        direction = np.zeros(self.nz + self.prog.n + self.n_stages)
        direction[col] = sign
        _assign(self.direction, direction)
        # Clarabel stops short ("insufficient progress") on a few of these programs; shorter steps finish them
        # (R50's root at cutoff 52 018: the least stage-3 width, which full steps left unsolved)
        for options in (FAST, {}, {"max_step_fraction": 0.9}):
            status, value = self._run(self.tighten_problem, self.compiled_tighten, options)
            if status == "optimal":
                return value
        return None

    def bound_entropy(self, root: _Node, cutoff: float = -math.inf) -> None:
        """Upper bounds ``E_s^U`` of every stage's cumulative entropy over the box ``root`` (one solve each),
        which enable the second McCormick piece of the stage products in every later solve of a sub-box.
        With a ``cutoff``, over the designs of the box whose relaxation reaches it (all that can beat an
        incumbent of that score)."""
        self.solve(root)  # sets the parameters of the box
        _assign(self.cutoff, cutoff if math.isfinite(cutoff) else -1e9)
        e_up = np.full(self.n_stages, np.inf)
        for s in range(self.n_stages):
            lowest = self._lowest(self.nz + self.prog.n + s, -1.0)
            if lowest is not None:
                e_up[s] = self.prog.f * 100.0 * -lowest * (1 + 1e-5) + 1e-5
        if self.e_up is not None:  # a sub-box: never looser than before
            e_up = np.minimum(e_up, self.e_up)
        self.e_up = e_up

    def _e_lo(self, node: _Node, s: int) -> float:
        """Lower bound on the cumulative entropy of stage ``s`` implied by rho <= rho0."""
        end = self.prog.ends[s]
        if end < 0:
            return self.prog.f * self.stem_log
        cnt = 1 + 3 * sum(node.lo[: end + 1])
        return max(0.0, self.prog.f * cnt * math.log(cnt / self.prog.rho0))

    def depths(self) -> np.ndarray:
        """Relaxed depths ``1 + D`` of the last solution."""
        return 1.0 + self.sol["D"]

    def stage_factor(self, s: int) -> tuple[int | None, float]:
        """Stage ``s``'s factor ``A_s = log C_s + 2 log R_s`` as ``(index of log C_s in z, constant)``; the index
        is ``None`` where the width is a constant (a head conv's), which the constant then includes."""
        idx, log_c = self.stage_width_term(s)
        return idx, log_c + 2 * math.log(self.prog.stage_side(s))

    def stage_coef(self) -> np.ndarray:
        """Per stage, the objective's coefficient of the stage's cumulative entropy ``f logsum_s`` at its
        largest over the box: ``alpha_s A_s^U`` (DeepMAD), ``alpha_s`` (madnas)."""
        alpha = np.array(self.prog.alpha)
        return alpha if self.prog.madnas else alpha * np.asarray(self.a_up.value)

    def stage_slack(self, node: _Node) -> np.ndarray:
        """Per-stage McCormick slack ``alpha_s (A_s^U - A_s(z)) (E_s - E_s^L)`` at the last solution (none in
        the madnas score, which is linear, or where ``A_s`` is a constant)."""
        prog = self.prog
        z, logsum = self.sol["z"], self.sol["logsum"]
        zl, zu = self.box(node)
        out = []
        for s, end in enumerate(prog.ends):
            idx, _ = self.stage_factor(s)
            if idx is None or prog.madnas:
                out.append(0.0)
                continue
            out.append(prog.alpha[s] * (zu[idx] - z[idx]) * max(0.0, prog.f * logsum[s] - self._e_lo(node, s)))
        return np.array(out)

    def link_slack(self) -> np.ndarray:
        """Per-superblock objective that a loose depth link buys at the last solution: the repeated blocks'
        cost the relaxation does not pay (``D m_j(z) - M_j``, budget fractions) priced by the budget rows'
        dual values (objective per budget fraction). Where the depth range is wide the secant bound on
        ``D`` lets ``M`` fall far below ``D m(z)``; only a depth split closes it."""
        n = self.prog.n
        z, D, M = self.sol["z"], self.sol["D"], self.sol["M"]
        true_m = np.maximum(D, 0.0)[:, None] * np.exp(self.mono_rows @ z) / self.KAPPA  # (n, J)
        hidden = np.maximum(true_m - M, 0.0)
        out = np.zeros(n)
        for con, rep in self.budget_rows:
            dual = self._duals.get(con.id)
            coef = rep.value if hasattr(rep, "value") else rep
            if dual is None or coef is None:
                continue
            out += 1000.0 * float(dual) * (np.asarray(coef) * hidden).sum(axis=1)
        return out

    def depth_slack(self, node: _Node) -> np.ndarray:
        """Per-superblock overestimate ``u_i - D_i v_i(z)`` at the last solution, weighted by its stages."""
        prog, n = self.prog, self.prog.n
        z, u, D = self.sol["z"], self.sol["u"], self.sol["D"]
        zl, zu = self.box(node)
        coef = self.stage_coef()
        out = np.zeros(n)
        for i in range(n):
            _, _, vrow = self.v_range(zl, zu, i)
            gap = u[i] - D[i] * (vrow @ z)
            out[i] = max(gap, 0.0) * prog.f * sum(coef[s] for s in range(prog.stage_of[i], len(prog.ends)))
        return out
