"""Branch-and-bound solver of the DeepMAD program with conic relaxations.

Every node of the tree is a box: per superblock an integer range of depths, a set of kernels and a
range of inner widths, and a range for the stem and every superblock output width. Its relaxation
(:class:`_Relaxation`, one DPP-parametrised cvxpy problem re-solved per node) is a convex program
whose optimum bounds every design in the box from above:

* costs are posynomials in the log-widths (conic GP form) for the first block of each superblock,
  and linear in the totals ``M_j`` of the repeated blocks' cost monomials, linked to the widths;
* rho <= rho0 is ``sum log(c k^2/g) >= N log(N/rho0)``;
* each stage product ``(log C_s + 2 log R_s) E_s`` is bounded by McCormick, with the entropy floor
  that rho implies (exact where rho binds);
* the repeated blocks' entropy ``D v`` through their log-width totals ``W = D (x, y, kappa)`` (McCormick
  over the box), which also price it: each cost monomial's total is at least the perspective
  ``D exp(w(W) / D)``; and by a jointly concave perspective form in the cost totals;
* kernel sets are relaxed to an interval of ``log k^2``; the depth penalty is convex and exact;
* a latency budget: the calibrated predictor (:mod:`archsearch.cost.latency`) is a non-negative
  combination of posynomial features, entered like the MACs row (terms a design may lack are left
  out, the MACs count unrounded channels where the predictor rounds them up to the calibration's
  channel block, and repeated blocks weigh their kxk MACs at the least weight over the space's
  kernels, so it never overestimates).

Only designs that beat the incumbent matter, which shrinks boxes without branching (both valid for
every such design, so the bound stays valid for the whole space):

* at the root, optimality-based bound tightening (:meth:`_Relaxation.tighten`): the min and max of every
  width and depth over the relaxation with its objective at least the incumbent's score;
* at every node, reduced costs (:meth:`_Relaxation.reduced_cost_box`): the duals of the active box
  bounds price how fast the relaxation falls when a bound moves, which cuts the part of the box that
  cannot reach the incumbent.

Branching splits the range whose relaxation error is largest at the node's solution: a stage width
(McCormick of the stage products), a depth or width of a superblock (McCormick of ``D v``), a depth
where the secant bound on ``D`` lets the repeated blocks' cost totals fall below ``D m(z)`` (that hidden
cost priced by the budget rows' duals, :meth:`_Relaxation.link_slack`), or a kernel set.

Candidates come from the fixed-structure relaxation rounded to the channel grid (the best of the
roundings around it, :meth:`_Search.round_box`), a greedy repair, a structure search over depths
and kernels and local search. Best-first search (with depth-first plunges until a first design is
found) stops when the best open bound is within ``gap_tol`` of the best design or at the time
limit: the reported ``bound`` is valid for the whole discrete space (a relaxation the backend
cannot solve is never pruned).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
import warnings
from typing import Any, Callable, Iterable, Literal, NamedTuple

import numpy as np

from archsearch.errors import SpecError
from archsearch.objectives.deepmad import DEPTH_PENALTY_SCALE
from archsearch.solvers.base import UNSOLVED as NO_DESIGN  # the status; UNSOLVED below is a relaxation's
from archsearch.solvers.base import (
    FEASIBLE, GAP_OPTIMAL, INFEASIBLE, OPTIMAL, BaseSolver, Candidate, SolveResult, SolverStats, register_solver,
    latency_provenance, relative_gap,
)
from archsearch.solvers.deepmad_program import DeepMADProgram, Design, Evaluation
from archsearch.space.budget import Budget
from archsearch.space.search_space import SearchSpace

__all__ = ["DeepMADSolver", "solve_deepmad", "brute_force", "smallest_costs"]


UNSOLVED = (math.inf, np.zeros(0))  # a relaxation the backend could not solve: no bound, no pruning


def _assign(param: Any, value: Any) -> None:
    """Sets a cvxpy parameter without cvxpy's validation on assignment (a projection and a closeness test
    per parameter, a sixth of a node's time over the ~30 parameters of a solve). The shape is checked here;
    the values are built to satisfy the parameters' signs."""
    value = np.asarray(value, dtype=float)
    if value.shape != param.shape:
        raise ValueError(f"parameter {param.name()}: expected shape {param.shape}, got {value.shape}")
    param.save_value(value)


def _assign_all(*pairs: tuple[Any, Any]) -> None:
    for param, value in pairs:
        _assign(param, value)


def _log_coef(c: np.ndarray) -> np.ndarray:
    """Logs of posynomial coefficients; an absent term (0) becomes exp(-60) of the budget."""
    return np.log(np.maximum(c, 1e-26))


class _Node(NamedTuple):
    lo: tuple[int, ...]  # depth ranges
    hi: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    wlo: tuple[int, ...]  # width ranges of x variables (stem, superblock outputs)
    whi: tuple[int, ...]
    blo: tuple[int, ...]  # inner-width ranges per superblock
    bhi: tuple[int, ...]


def _root(prog: DeepMADProgram) -> _Node:
    """The box of the whole space."""
    sp, n, m = prog.space, prog.n, prog.m
    return _Node(
        lo=tuple(sp.depths[0] for _ in range(n)),
        hi=tuple(min(sp.first_depth_max, sp.depths[1]) if i == 0 else sp.depths[1] for i in range(n)),
        kernels=tuple(tuple(sp.kernels) for _ in range(n)),
        wlo=(sp.stem_widths[0],) + tuple(sp.widths[0] for _ in range(n)),
        whi=(sp.stem_widths[1],) + tuple(sp.widths[1] for _ in range(n)),
        blo=tuple(m for _ in range(n)),
        bhi=tuple(max(m, int(sp.widths[1] * sp.bottleneck_ratio[1] / m) * m) for _ in range(n)),
    )


def _at_least(log_width: float, m: int) -> int:
    """The smallest multiple of ``m`` at or above ``exp(log_width)``, less a margin for solver tolerance."""
    return math.ceil(math.exp(log_width) / m - 0.02) * m


def _at_most(log_width: float, m: int) -> int:
    """The largest multiple of ``m`` at or below ``exp(log_width)``, plus a margin for solver tolerance."""
    return math.floor(math.exp(log_width) / m + 0.02) * m


def _empty(node: _Node) -> bool:
    """Whether some range of the box is empty."""
    return any(a > b for a, b in zip(node.lo + node.wlo + node.blo, node.hi + node.whi + node.bhi))


def _contains(node: _Node, d: Design) -> bool:
    """Whether design ``d`` lies in the box ``node``."""
    return (all(lo <= L <= hi for lo, L, hi in zip(node.lo, d.L, node.hi))
            and all(k in kk for k, kk in zip(d.k, node.kernels))
            and all(lo <= c <= hi for lo, c, hi in zip(node.wlo, (d.c0,) + d.c, node.whi))
            and all(lo <= b <= hi for lo, b, hi in zip(node.blo, d.b, node.bhi)))


class _Relaxation:
    """The node relaxation as one DPP-parametrised cvxpy problem, re-solved with new parameters.

    Variables: ``z = (x, y, kappa)``, the log-widths (stem and superblock outputs), the log inner
    widths and the log squared kernels (``kappa = log k^2`` over the node's kernel range: the
    kernel set relaxed to an interval); per superblock the number ``D = L - 1`` of repeated blocks
    with ``delta ~ log D``, and ``M_j``, the total over the repeated blocks of each cost monomial
    ``m_j(z)`` (bottleneck ``c b``, ``b^2 k^2``, ``b``, ``c``; inverted residual ``c b``, ``b k^2``,
    ``b``, ``c``).

    * Costs: first blocks as posynomials in ``z`` (conic GP form), repeated blocks linear in ``M``;
      ``M_j >= exp(delta + log m_j(z))`` with ``exp(delta) <= D <= secant(delta)`` links them to the
      widths, so every cost is exact or underestimated.
    * Entropy of the repeated blocks ``D v(z)`` is bounded above both by the perspective form
      (``v = log m_cb + 1/2 log m_bbk + 1/2 kappa`` for the bottleneck, ``log m_cb + kappa`` for the
      inverted residual; ``D log(M/D)`` is jointly concave) and by ``W . (1, ny, 1)``, where
      ``W ~ D (x_o, y, kappa)`` by McCormick over the box (exact when the depth is fixed); and
      ``M_j >= D exp(w_j(W) / D)`` (an exponential cone) makes what McCormick grants above ``D v(z)``
      cost budget.
    * rho: ``logsum_s >= N_s log(N_s / rho0)`` with ``N_s >= 1 + 3 sum L`` (linear in ``D``).
    * Each stage product ``A_s E_s`` by McCormick with ``E_s^L`` implied by rho.
    """

    KAPPA = 1e4  # scale of the M variables

    def __init__(self, prog: DeepMADProgram, solver: str | None) -> None:
        import cvxpy as cp

        self.cp = cp
        self.prog = prog
        n = prog.n
        self.nz = nz = 3 * n + 1
        self.solver = solver
        z = cp.Variable(nz)
        self.z = z
        self.delta = cp.Variable(n)
        self.D = cp.Variable(n)
        self.mono = ["cb", "bbk", "b", "c"] if prog.bottleneck else ["cb", "bk", "b", "c"]
        J = len(self.mono)
        self.M = cp.Variable((n, J))  # no attribute: the compiled form reads it as it is
        col = {name: j for j, name in enumerate(self.mono)}
        self.col = col
        cons = [self.M >= 0]
        rows = np.array([[self._mono_row(i, name) for name in self.mono] for i in range(n)])  # (n, J, nz)
        for i in range(n):
            cons.append(self.M[i] >= cp.exp(rows[i] @ z + self.delta[i] - math.log(self.KAPPA)))
        # upper links (valid, tight as the box narrows): M_j <= D m_j(z_hi) and M_j <= D_hi secant(m_j(z))
        self.m_up = cp.Parameter((n, J), nonneg=True)
        self.sec_rows = [cp.Parameter((n, nz)) for _ in range(J)]
        self.sec_c = cp.Parameter((n, J))
        for j in range(J):
            cons.append(self.M[:, j] <= cp.multiply(self.m_up[:, j], self.D))
            cons.append(self.M[:, j] <= self.sec_rows[j] @ z + self.sec_c[:, j])
        self.mono_rows = rows
        self.d_lo, self.d_hi = cp.Parameter(n), cp.Parameter(n)
        self.dl_lo, self.dl_hi = cp.Parameter(n), cp.Parameter(n)
        self.sec_slope, self.sec_icpt = cp.Parameter(n, nonneg=True), cp.Parameter(n)
        self.box_cons: list[Any] = [self.D >= self.d_lo, self.D <= self.d_hi]  # z's two follow; duals price the box
        cons += self.box_cons
        cons += [self.delta >= self.dl_lo, self.delta <= self.dl_hi,
                 self.D >= cp.exp(self.delta), self.D <= cp.multiply(self.sec_slope, self.delta) + self.sec_icpt]
        # inner-width ratio in M space (kernels at their range ends)
        # the least b / out of the box's designs (:meth:`inner_ratio`): the inner-width rule at the box's widths
        lo_r, hi_r = prog.space.min_inner_ratio(), prog.space.bottleneck_ratio[1]
        self.lo_ratio, self.lo_ratio_k2 = cp.Parameter(n, nonneg=True), cp.Parameter(n, nonneg=True)
        self._ratios: dict[int, float] = {}
        cons += [self.M[:, col["b"]] >= cp.multiply(self.lo_ratio, self.M[:, col["c"]]),
                 self.M[:, col["b"]] <= hi_r * self.M[:, col["c"]]]
        self.rule_cuts = prog.deepmad_rule
        if self.rule_cuts:
            # b >= smart_round(out / 10) >= max(8, out / 10 - 4) (to the nearest multiple of 8): linear in the
            # repeated blocks' totals; and in log space y >= g(x) = log(e^x / 10 - 4), concave, so its chord
            # over the box's range of x (from x = log 120, where g = log 8, below which b >= 8 binds) lies
            # below it: y >= slope x + icpt. The ratio rows bind only at the box's narrowest output; R50's
            # fixed-structure relaxation put b = 82 at out = 982 with them alone (the rule asks 96), and its
            # value falls 52 731 -> 52 390 with the chord (the best design of that structure: 51 907)
            cons.append(self.M[:, col["b"]] >= 0.1 * self.M[:, col["c"]] - (4.0 / self.KAPPA) * self.D)
            # which the b^2 k^2 totals must pay: (D b)^2 k^2 <= D (D b^2 k^2), a rotated cone in the totals,
            # M_b^2 K k_lo^2 <= (D + off) M_bbk (off = 1 where D may be 0: looser, still valid, and off
            # the cone's boundary)
            self.quad_inv, self.quad_off = cp.Parameter(n, nonneg=True), cp.Parameter(n, nonneg=True)
            d_off = cp.Variable(n)  # D + off, a variable so that the cone holds no parameter (DPP)
            cons.append(d_off == self.D + self.quad_off)
            for i in range(n):
                # scaled by sqrt(KAPPA): (D b)^2 / D <= D b^2 k^2 / k^2 in units near 1
                cons.append(cp.quad_over_lin(math.sqrt(self.KAPPA) * self.M[i, col["b"]], d_off[i])
                            <= self.quad_inv[i] * self.M[i, col["bbk"]])
            self.rule_slope, self.rule_icpt = cp.Parameter(n, nonneg=True), cp.Parameter(n)
            cons.append(z[1 + n: 1 + 2 * n] >= cp.multiply(self.rule_slope, z[1: 1 + n]) + self.rule_icpt)
        self.k2_hi = cp.Parameter(n, nonneg=True)
        if prog.bottleneck:  # b^2 k^2 vs c b
            cons += [self.M[:, col["bbk"]] >= cp.multiply(self.lo_ratio_k2, self.M[:, col["cb"]]),
                     self.M[:, col["bbk"]] <= hi_r * cp.multiply(self.k2_hi, self.M[:, col["cb"]])]
        # costs: first blocks (log_sum_exp <= log s) + repeated blocks (linear in M, D) <= 1
        self.first_macs, self.first_params = self._first_rows()
        b = prog.budget
        self.lc_macs = cp.Parameter(len(self.first_macs))
        self.lc_params = cp.Parameter(len(self.first_params))
        self.rep_macs = cp.Parameter((n, J), nonneg=True)
        self.rep_params = cp.Parameter((n, J), nonneg=True)
        self.rep_params_d = cp.Parameter(n, nonneg=True)
        # budget rows whose repeated-block part is linear in M: (constraint, per-M coefficients) for the
        # cost hidden by a loose depth link (see :meth:`link_slack`)
        self.budget_rows: list[tuple[Any, Any]] = []
        for limit, lc, rows_, rep, rep_d in ((prog.macs_limit, self.lc_macs, self.first_macs, self.rep_macs, None),
                                            (b.params, self.lc_params, self.first_params, self.rep_params, self.rep_params_d)):
            if limit is None:
                continue
            s_ = cp.Variable(pos=True)
            cons.append(cp.log_sum_exp(np.array(rows_) @ z + lc) <= cp.log(s_))
            total = s_ + cp.sum(cp.multiply(rep, self.M))
            if rep_d is not None:
                total = total + rep_d @ self.D
            cons.append(total <= 1)
            self.budget_rows.append((cons[-1], rep))
        # latency: the calibrated predictor is a non-negative combination of posynomial features (MACs,
        # activations, weights, a constant per unit), so it enters like the MACs row; its MACs with
        # channels rounded up to the calibration's block are bounded below by the unrounded ones
        self.covers_latency = prog.latency_model is not None and b.latency_ms is not None
        if self.covers_latency:
            lat_rows, lat_coefs, rep_lat, rep_lat_d = self._latency_terms()
            s_ = cp.Variable(pos=True)
            cons.append(cp.log_sum_exp(np.array(lat_rows) @ z + _log_coef(np.array(lat_coefs) / b.latency_ms)) <= cp.log(s_))
            cons.append(s_ + cp.sum(cp.multiply(rep_lat * self.KAPPA / b.latency_ms, self.M))
                        + (rep_lat_d / b.latency_ms) @ self.D <= 1)
            self.budget_rows.append((cons[-1], rep_lat * self.KAPPA / b.latency_ms))
        # FLOPs in the reference code's count (:meth:`DeepMADProgram.flops`): the conv MACs at its real sides
        # plus BatchNorm and ReLU (3 per output element of every conv); a posynomial like the MACs row. Without
        # it the relaxation bounded the FLOPs only through the MACs they contain, ~1.5 % less at R50, and its
        # solutions broke the FLOPs budget when rounded
        if b.flops is not None:
            f_rows, f_coefs, rep_f = self._flops_terms()
            s_ = cp.Variable(pos=True)
            cons.append(cp.log_sum_exp(np.array(f_rows) @ z + _log_coef(np.array(f_coefs) / b.flops)) <= cp.log(s_))
            cons.append(s_ + cp.sum(cp.multiply(rep_f * self.KAPPA / b.flops, self.M)) <= 1)
            self.budget_rows.append((cons[-1], rep_f * self.KAPPA / b.flops))
        self.mem_groups: list[tuple[Any, int, list[tuple[float, bool]]]] = []
        if b.memory is not None:
            for sb, rows_, coefs in self._memory_posynomials():
                param = cp.Parameter(len(rows_))
                cons.append(cp.log_sum_exp(np.array(rows_) @ z + param) <= 0)
                self.mem_groups.append((param, sb, coefs))
        # the repeated blocks' log-width totals W = (D x_o, D y, D kappa), by McCormick over the box (exact where
        # the depth is fixed), bound their entropy u = D v(z) two ways: linearly, u <= W . (1, ny, 1), and by the
        # perspective form in the cost totals M, u <= sum theta D log(M_j / D) + t_coef D kappa. And W prices
        # what it gives: M_j >= D exp(w_j(W) / D), the perspective of each cost monomial in W (exact for a
        # design, where W = D (x_o, y, kappa)), so entropy that McCormick grants above D v(z) where the ranges
        # of D and v are wide comes with W / D above the widths and is paid in the budget rows through M
        # (R50, 1 000 nodes: bound 53 181 -> 52 921, 23 % fewer relaxations)
        ny = 2.0 if prog.bottleneck else 1.0
        self.W = cp.Variable((n, 3))
        widths = cp.vstack([z[1: 1 + n], z[1 + n: 1 + 2 * n], z[1 + 2 * n:]]).T
        d3 = cp.vstack([self.D, self.D, self.D]).T
        self.w_mc = [tuple(cp.Parameter((n, 3)) for _ in range(3)) for _ in range(4)]  # (a, b, c): a w + b D + c
        for r, (a, b_, c) in enumerate(self.w_mc):
            rhs = cp.multiply(a, widths) + cp.multiply(b_, d3) + c
            cons.append(self.W <= rhs if r < 2 else self.W >= rhs)
        # switched off (on = 0: the cone reads (-1, 1, M + 1), which every M >= 0 satisfies) where D may be 0,
        # whose cone boundary (y = 0) interior-point solvers reach only inaccurately, and where D is fixed:
        # there the links above are exact already and the repeated cone leaves Clarabel inaccurate
        self.cone_on, self.cone_off = cp.Parameter(n, nonneg=True), cp.Parameter(n, nonneg=True)
        for j in range(J):
            row = rows[0, j]  # the same monomial in every superblock: its exponents of (x_o, y, kappa)
            coef = np.array([row[1], row[1 + n], row[1 + 2 * n]])
            cons.append(cp.constraints.ExpCone(
                cp.multiply(self.cone_on, self.W @ coef - math.log(self.KAPPA) * self.D) - self.cone_off,
                cp.multiply(self.cone_on, self.D) + self.cone_off, self.M[:, j] + self.cone_off))
        self.u = cp.Variable(n)
        cons.append(self.u <= self.W @ np.array([1.0, ny, 1.0]))
        theta = {"cb": 1.0, "bbk": 0.5} if prog.bottleneck else {"cb": 1.0}
        t_coef = 0.5 if prog.bottleneck else 1.0
        for i in range(n):
            persp = sum(-th * cp.rel_entr(self.D[i], self.M[i, col[name]]) for name, th in theta.items())
            persp = persp + self.D[i] * (sum(theta.values()) * math.log(self.KAPPA))
            cons.append(self.u[i] <= persp + t_coef * self.W[i, 2])
        # cumulative logsum per stage (a variable keeps the stage products parameter x variable: DPP)
        self.n_stages = len(prog.ends)
        self.e_u = np.zeros((self.n_stages, n))
        self.n_first = np.zeros(self.n_stages)
        e_z = np.zeros((self.n_stages, nz))
        for s, end in enumerate(prog.ends):
            self.e_u[s, : end + 1] = 1.0
            self.n_first[s] = 1 + 3 * (end + 1)
            for i in range(end + 1):  # first block: x_p + ny y + kappa
                e_z[s, i] += 1.0
                e_z[s, 1 + n + i] += ny
                e_z[s, 1 + 2 * n + i] += 1.0
        self.e_z = e_z
        self.stem_log = math.log(prog.cin0 * prog.ks**2)
        logsum = cp.Variable(self.n_stages)
        self.logsum = logsum
        cons.append(logsum == e_z @ z + self.e_u @ self.u + self.stem_log)
        self.N = cp.Variable(self.n_stages)
        cons.append(self.N >= self.n_first + 3 * self.e_u @ self.D)
        cons.append(logsum / 100.0 >= cp.rel_entr(self.N, prog.rho0 * np.ones(self.n_stages)) / 100.0)
        # width rules (constant, linear in log space)
        rows_l, rhs = [], []
        for i in range(n):
            p, o, y = i, 1 + i, 1 + n + i
            e = np.zeros(nz); e[p], e[o] = 1, -1; rows_l.append(e); rhs.append(0.0)  # x_o >= x_p
            e = np.zeros(nz); e[o], e[p] = 1, -1; rows_l.append(e); rhs.append(math.log(prog.space.max_width_ratio))
            e = np.zeros(nz); e[o], e[y] = 1, -1; rows_l.append(e); rhs.append(-math.log(lo_r))  # y >= x + log r_lo
            e = np.zeros(nz); e[y], e[o] = 1, -1; rows_l.append(e); rhs.append(math.log(hi_r))
        self.rule_rhs = np.array(rhs)
        self.rule_rhs_param = cp.Parameter(len(rhs))  # the y >= x + log r_lo rows take the box's ratio
        cons.append(np.array(rows_l) @ z <= self.rule_rhs_param)
        self.zl = cp.Parameter(nz)
        self.zu = cp.Parameter(nz)
        self.box_cons += [z >= self.zl, z <= self.zu]
        cons += self.box_cons[2:]
        # w_s <= A_s^U E_s + A_s(z) E_s^L - A_s^U E_s^L, E_s = f logsum_s; w in thousands (conditioning)
        self.w = cp.Variable(self.n_stages)
        self.a_up = cp.Parameter(self.n_stages, nonneg=True)
        self.mc_z = cp.Parameter((self.n_stages, nz))
        self.mc_0 = cp.Parameter(self.n_stages)
        cons.append(self.w <= (cp.multiply(self.a_up, logsum) * prog.f + self.mc_z @ z + self.mc_0) / 1000.0)
        # the other McCormick piece, w_s <= A_s^L E_s + (A_s(z) - A_s^L) E_s^U, with E_s^U from the root
        self.a_lo = cp.Parameter(self.n_stages, nonneg=True)
        self.mc2_z = cp.Parameter((self.n_stages, nz))
        self.mc2_0 = cp.Parameter(self.n_stages)
        cons.append(self.w <= (cp.multiply(self.a_lo, logsum) * prog.f + self.mc2_z @ z + self.mc2_0) / 1000.0)
        self.e_up: np.ndarray | None = None  # set by :meth:`bound_entropy`
        self.weights = np.array(prog.alpha)
        objective = self.weights @ self.w
        # DeepMAD's depth penalty 10 exp(std L) is convex in L (exp of a norm): subtracted exactly
        skip = prog.space.penalty_skip
        self.penalty = None
        if prog.use_penalty and n - skip > 0:
            m = n - skip
            centre = np.eye(m) - np.ones((m, m)) / m
            self.penalty = DEPTH_PENALTY_SCALE * cp.exp(cp.norm(centre @ self.D[skip:], 2) / math.sqrt(m))
            objective = objective - self.penalty / 1000.0
        self.problem = cp.Problem(cp.Maximize(objective), cons)
        self.solves = 0
        self.last_status: str | None = None  # of the last solve of :attr:`problem`
        fm, fp, rm, rp, rpd = self._cost_coefs()  # constant parameters
        _assign_all((self.lc_macs, _log_coef(fm)), (self.lc_params, _log_coef(fp)))
        _assign_all((self.rep_macs, rm), (self.rep_params, rp), (self.rep_params_d, rpd))
        # bound tightening: minimise one coordinate of (z, D) over the relaxation with the objective at
        # least a cutoff (the incumbent); one DPP problem, re-solved with a new direction
        # (also the max of every stage's cumulative log-sum, in hundreds, for :meth:`bound_entropy`)
        self.direction = cp.Parameter(nz + n + self.n_stages)
        self.cutoff = cp.Parameter()
        self.tighten_problem = cp.Problem(cp.Minimize(self.direction @ cp.hstack([z, self.D, logsum / 100.0])),
                                          cons + [objective >= self.cutoff / 1000.0])
        # Clarabel (the default backend) is called directly on the compiled conic data, which halves the
        # time per relaxation (:mod:`archsearch.solvers.conic`); any other backend goes through cvxpy
        self.read_vars = {"z": z, "D": self.D, "M": self.M, "u": self.u, "logsum": logsum}
        self.dual_cons = self.box_cons + [con for con, _ in self.budget_rows]
        self.compiled = self.compiled_tighten = None
        if solver is None or solver.upper() == "CLARABEL":
            from archsearch.solvers.conic import CompiledProblem

            self.compiled = CompiledProblem(self.problem, list(self.read_vars.values()), self.dual_cons)
            self.compiled_tighten = CompiledProblem(self.tighten_problem)
        self.sol: dict[str, np.ndarray] = {}  # values of :attr:`read_vars` at the last solve of :attr:`problem`
        self._duals: dict[int, Any] = {}

    # exponent rows are over z = [x_stem, x_1..x_n, y_1..y_n, kappa_1..kappa_n]
    def _e(self, **idx: float) -> list[float]:
        row = [0.0] * self.nz
        n = self.prog.n
        for key, val in idx.items():
            kind, i = key[0], int(key[1:])
            row[{"x": i, "y": 1 + n + i, "k": 1 + 2 * n + i}[kind]] += val
        return row

    def _mono_row(self, i: int, name: str) -> list[float]:
        o, y, k = f"x{i + 1}", f"y{i}", f"k{i}"
        return {"cb": self._e(**{o: 1, y: 1}), "bbk": self._e(**{y: 2, k: 1}), "bk": self._e(**{y: 1, k: 1}),
                "b": self._e(**{y: 1}), "c": self._e(**{o: 1})}[name]

    def _first_rows(self) -> tuple[list[list[float]], list[list[float]]]:
        prog, n, e = self.prog, self.prog.n, self._e
        macs, params = [e(x0=1)], [e(x0=1)]
        for i in range(n):
            p, o, y, k = f"x{i}", f"x{i + 1}", f"y{i}", f"k{i}"
            if prog.bottleneck:
                macs += [e(**{p: 1, y: 1}), e(**{y: 2, k: 1}), e(**{o: 1, y: 1}), e(**{p: 1, o: 1})]
                params += [e(**{p: 1, y: 1}), e(**{y: 1}), e(**{y: 2, k: 1}), e(**{o: 1, y: 1}), e(**{o: 1}), e(**{p: 1, o: 1})]
            else:
                macs += [e(**{p: 1, y: 1}), e(**{y: 1, k: 1}), e(**{y: 1}), e(**{o: 1, y: 1})]
                params += [e(**{p: 1, y: 1}), e(**{y: 1}), e(**{y: 1, k: 1}), e(**{o: 1, y: 1}), e(**{o: 1}), e()]
        if prog.count_head:
            macs.append(e(**{f"x{n}": 1}))
            params += [e(**{f"x{n}": 1}), e()]
        return macs, params

    def _cost_coefs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cost coefficients: first-block posynomials, repeated-block M and D terms (kernels in z)."""
        prog, n, col = self.prog, self.prog.n, self.col
        b = prog.budget
        bm, bp = float(prog.macs_limit or 1), float(b.params or 1)
        macs = [prog.r0**2 * prog.cin0 * prog.ks**2]
        params = [prog.cin0 * prog.ks**2 + 2]
        rep_m = np.zeros((n, len(self.mono)))
        rep_p = np.zeros((n, len(self.mono)))
        rep_pd = np.zeros(n)
        se_p, se_m, se_c = (17.0, 16.0, 8.0) if prog.se else (0.0, 0.0, 0.0)
        for i in range(n):
            ri2, ro2 = prog.r_in[i] ** 2, prog.r_out[i] ** 2
            # a stride-1 superblock may have no shortcut conv, unless the space always projects
            sc = 1.0 if prog.strides[i] != 1 or prog.force_projection else 0.0
            if prog.bottleneck:
                macs += [ri2, ro2, ro2, sc * ro2]
                params += [1.0, 4.0, 1.0, 1.0, 2 + 2 * sc, sc]
                rep_m[i, col["cb"]], rep_m[i, col["bbk"]] = 2 * ro2, ro2
                rep_p[i, col["cb"]], rep_p[i, col["bbk"]], rep_p[i, col["b"]], rep_p[i, col["c"]] = 2, 1, 4, 2
            else:
                macs += [ri2, ro2, se_m, ro2]
                params += [1.0, 4 + se_p, 1.0, 1.0, 2.0, se_c]
                rep_m[i, col["cb"]], rep_m[i, col["bk"]], rep_m[i, col["b"]] = 2 * ro2, ro2, se_m
                rep_p[i, col["cb"]], rep_p[i, col["bk"]], rep_p[i, col["b"]], rep_p[i, col["c"]] = 2, 1, 4 + se_p, 2
                rep_pd[i] = se_c / bp
        if prog.count_head:
            macs.append(prog.num_classes)
            params += [prog.num_classes, prog.num_classes]
        return (np.array(macs, float) / bm, np.array(params, float) / bp,
                rep_m * self.KAPPA / bm, rep_p * self.KAPPA / bp, rep_pd)

    def _flops_terms(self) -> tuple[list[list[float]], list[float], np.ndarray]:
        """The reference FLOPs (:meth:`DeepMADProgram.flops`) as posynomial terms: the stem's and every first
        block's ``(exponent rows, coefficients)`` in ``z``, the repeated blocks' coefficients of the monomials
        of ``M`` (per block). Terms only some designs of a box have (a projection a stride-1 superblock makes
        only when its width changes, the inverted residual's pooled shortcut) are left out, so the row never
        exceeds a design's FLOPs; coefficients are shaded by 1e-12 for the float sides."""
        prog, n, e, col = self.prog, self.prog.n, self._e, self.col
        (stem2, *sides), den = prog._flops_sides
        shade = 1.0 - 1e-12
        rows, coefs = [e(x0=1)], [(prog.cin0 * prog.ks**2 + 3) * stem2 / den * shade]
        rep = np.zeros((n, len(self.mono)))
        for i in range(n):
            p, o, y, k = f"x{i}", f"x{i + 1}", f"y{i}", f"k{i}"
            ri2, ro2 = (v / den * shade for v in sides[i])
            s = prog.strides[i]
            if prog.bottleneck:
                terms = [(e(**{p: 1, y: 1}), ri2), (e(**{y: 1}), 3 * ri2 + 3 * ro2), (e(**{y: 2, k: 1}), ro2),
                         (e(**{o: 1, y: 1}), ro2), (e(**{o: 1}), 3 * ro2)]
                if s == 2:
                    terms.append((e(**{p: 1}), ri2))
                if s != 1 or prog.force_projection:
                    terms += [(e(**{p: 1, o: 1}), ro2), (e(**{o: 1}), 3 * ro2)]
                per = {"cb": 2 * ro2, "bbk": ro2, "b": 6 * ro2, "c": 3 * ro2}
            else:
                terms = [(e(**{p: 1, y: 1}), ri2), (e(**{y: 1}), 3 * ri2 + 3 * ro2), (e(**{y: 1, k: 1}), ro2),
                         (e(**{o: 1, y: 1}), ro2), (e(**{o: 1}), 3 * ro2)]
                per = {"cb": 2 * ro2, "bk": ro2, "b": 6 * ro2, "c": 3 * ro2}
            for row, coef in terms:
                rows.append(row)
                coefs.append(coef)
            for name, value in per.items():
                rep[i, col[name]] = value
        return rows, coefs, rep

    def _latency_terms(self) -> tuple[list[list[float]], list[float], np.ndarray, np.ndarray]:
        """The predicted latency (ms) as posynomial terms: the stem, the first block of every superblock
        and the head as ``(exponent rows, coefficients)`` in ``z``; the repeated blocks as coefficients of
        the monomial totals ``M`` (per monomial, ms) and of ``D`` (their constant). Terms that a design may
        lack (the shortcut of a stride-1 superblock, the residual sum of an inverted residual, SE) are
        left out, and the MACs count the widths themselves, not rounded up to the calibration's
        ``channel_block``, so the row never overestimates a design's latency: the relaxation stays valid
        (exact where every width is a multiple of the block). A kxk MAC's weight ``(k^2 / 9)^-gamma``
        (``kernel_exponent``) makes the first blocks' kxk term the monomial ``9^gamma b^2 (k^2)^(1 - gamma)``;
        the repeated blocks' share the ``b^2 k^2`` monomial of their weights, so they take the smallest
        weight over the space's kernels (exact at that kernel)."""
        prog, n, e, col = self.prog, self.prog.n, self._e, self.col
        model = prog.latency_model
        assert model is not None
        rows: list[list[float]] = []
        coefs: list[float] = []

        def unit(kind: str, terms: list[tuple[int, list[float], float]]) -> None:
            """``terms``: (feature index, exponent row, multiplier); features in millions but the constant."""
            c = model.coefs.get(kind)
            if c is None:
                raise SpecError(f"latency: the calibration of space {prog.space.name!r} has no {kind!r} units; "
                                f"run `archsearch calibrate --space {prog.space.name}` again")
            for feat, row, mult in terms:
                value = model.scale * c[feat] * mult / (1.0 if feat == 0 else 1e6)
                if value > 0:
                    rows.append(row)
                    coefs.append(value)

        PW, KXK, DW, ACT, W = 1, 2, 3, 4, 5
        r0, ks2, cin, g = prog.r0, prog.ks**2, prog.cin0, model.kernel_exponent
        stem_kxk = r0 * r0 * cin * ks2 * ((ks2 / 9.0) ** -g if prog.ks > 1 else 1.0)
        k_least = min((k * k / 9.0) ** -g for k in prog.space.kernels)  # the smallest weight of a kxk MAC
        unit("stem", [(0, e(), 1.0), (KXK if prog.ks > 1 else PW, e(x0=1), stem_kxk), (ACT, e(), cin * prog.resolution**2),
                      (ACT, e(x0=1), r0 * r0), (W, e(x0=1), cin * ks2)])
        J = len(self.mono)
        rep_lat, rep_lat_d = np.zeros((n, J)), np.zeros(n)
        block = prog.space.block
        c_rep = model.coefs.get(block)
        for i in range(n):
            p, o, y, k = f"x{i}", f"x{i + 1}", f"y{i}", f"k{i}"
            ri2, ro2 = prog.r_in[i] ** 2, prog.r_out[i] ** 2
            if prog.bottleneck:
                # the projection where every design has one (a stride, or the space forces it on every first
                # block); where only some designs have it the row leaves it out, never exceeding the prediction
                sc = 1.0 if (prog.strides[i] != 1 or prog.force_projection) else 0.0
                unit(block, [(0, e(), 1.0), (PW, e(**{p: 1, y: 1}), ri2), (PW, e(**{o: 1, y: 1}), ro2),
                             (PW, e(**{p: 1, o: 1}), sc * ro2), (KXK, e(**{y: 2, k: 1 - g}), ro2 * 9.0**g),
                             (ACT, e(**{p: 1}), (1 + sc) * ri2), (ACT, e(**{y: 1}), 2 * ri2 + 2 * ro2),
                             (ACT, e(**{o: 1}), (3 + sc) * ro2), (W, e(**{p: 1, y: 1}), 1.0), (W, e(**{y: 2, k: 1}), 1.0),
                             (W, e(**{o: 1, y: 1}), 1.0), (W, e(**{p: 1, o: 1}), sc)])
                if c_rep is not None:
                    per = {"cb": c_rep[PW] * 2 * ro2 + c_rep[W] * 2, "bbk": c_rep[KXK] * ro2 * k_least + c_rep[W],
                           "b": c_rep[ACT] * 4 * ro2, "c": c_rep[ACT] * 4 * ro2}
            else:
                unit(block, [(0, e(), 1.0), (PW, e(**{p: 1, y: 1}), ri2), (PW, e(**{o: 1, y: 1}), ro2),
                             (DW, e(**{y: 1, k: 1 - g}), ro2 * 9.0**g), (ACT, e(**{p: 1}), ri2), (ACT, e(**{y: 1}), 2 * ri2 + 2 * ro2),
                             (ACT, e(**{o: 1}), ro2), (W, e(**{p: 1, y: 1}), 1.0), (W, e(**{y: 1, k: 1}), 1.0),
                             (W, e(**{o: 1, y: 1}), 1.0)])
                if c_rep is not None:
                    per = {"cb": c_rep[PW] * 2 * ro2 + c_rep[W] * 2, "bk": c_rep[DW] * ro2 * k_least + c_rep[W],
                           "b": c_rep[ACT] * 4 * ro2, "c": c_rep[ACT] * 4 * ro2}
            if c_rep is not None:
                for name, value in per.items():
                    rep_lat[i, col[name]] = model.scale * value / 1e6
                rep_lat_d[i] = model.scale * c_rep[0]
        if prog.num_classes:
            side2 = prog.r_out[-1] ** 2
            cls = prog.num_classes
            unit("head", [(0, e(), 1.0), (PW, e(**{f"x{n}": 1}), cls), (ACT, e(**{f"x{n}": 1}), side2 + 1),
                          (ACT, e(), float(cls)), (W, e(**{f"x{n}": 1}), cls)])
        return rows, coefs, rep_lat, rep_lat_d

    def _memory_posynomials(self) -> list[tuple[int, list[list[float]], list[tuple[float, bool]]]]:
        """Per-layer activation posynomials (elements): ``(superblock, rows, [(coef, needs_rest_block)])``."""
        prog, e, out = self.prog, self._e, []
        for i in range(prog.n):
            p, o, y = f"x{i}", f"x{i + 1}", f"y{i}"
            ri2, ro2 = prog.r_in[i] ** 2, prog.r_out[i] ** 2
            held = ri2 if prog.bottleneck else 0.0  # an inverted residual's first block may have no residual
            out += [
                (i, [e(**{p: 1}), e(**{y: 1})], [(ri2, False), (ri2, False)]),
                (i, [e(**{y: 1}), e(**{y: 1}), e(**{p: 1})], [(ri2, False), (ro2, False), (held, False)]),
                (i, [e(**{y: 1}), e(**{o: 1}), e(**{p: 1})], [(ro2, False), (ro2, False), (held, False)]),
                (i, [e(**{o: 1}), e(**{y: 1})], [(ro2, True), (ro2, True)]),
                (i, [e(**{y: 1}), e(**{o: 1})], [(2 * ro2, True), (ro2, True)]),
                (i, [e(**{y: 1}), e(**{o: 1})], [(ro2, True), (2 * ro2, True)]),
            ]
            if prog.bottleneck and (prog.strides[i] != 1 or prog.force_projection):
                out.append((i, [e(**{p: 1}), e(**{o: 1})], [(ri2, False), (2 * ro2, False)]))
        out.append((0, [e(x0=1), e()], [(prog.r0**2, False), (prog.cin0 * prog.resolution**2, False)]))
        return out

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
        n, hi_r = self.prog.n, self.prog.space.bottleneck_ratio[1]
        o, y = 1 + i, 1 + n + i
        return max(zl[y], zl[o] + math.log(lo_ratio)), min(zu[y], zu[o] + math.log(hi_r))

    def v_range(self, zl: np.ndarray, zu: np.ndarray, i: int) -> tuple[float, float, np.ndarray]:
        """Range of ``v_i = x_o + ny y_i + kappa_i`` over the box, and ``v_i`` as ``row . z``."""
        prog, n = self.prog, self.prog.n
        ny = 2.0 if prog.bottleneck else 1.0
        o, y, k = 1 + i, 1 + n + i, 1 + 2 * n + i
        yl, yu = self.y_range(zl, zu, i, prog.space.bottleneck_ratio[0])
        row = np.zeros(self.nz)
        row[o], row[y], row[k] = 1.0, ny, 1.0
        return zl[o] + ny * yl + zl[k], zu[o] + ny * yu + zu[k], row

    def solve(self, node: _Node, ratios: np.ndarray | None = None, *, prune: bool = True) -> tuple[float, np.ndarray] | None:
        """Returns ``(relaxed objective, z*)`` (the depth penalty included), ``None`` when the relaxation is
        proven infeasible, or :data:`UNSOLVED` when the backend fails. ``ratios``: the least ``b / out`` per
        superblock instead of the box's (a heuristic's choice: then the value bounds nothing). ``prune``:
        the caller prunes the box on a ``None`` result, so an infeasibility verdict is checked by a second
        solve; a heuristic that only skips the box passes ``False`` and takes the first verdict."""
        cp, prog, n = self.cp, self.prog, self.prog.n
        zl, zu = self.box(node)
        if np.any(zl > zu + 1e-12):
            return None
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
            idx = 0 if end < 0 else 1 + end
            two_log_r = 2 * math.log(prog.stage_side(s))
            a_up[s] = zu[idx] + two_log_r
            e_lo = self._e_lo(node, s)
            mc_z[s, idx] = e_lo
            mc_0[s] = e_lo * two_log_r - a_up[s] * e_lo
        _assign_all((self.a_up, a_up), (self.mc_z, mc_z), (self.mc_0, mc_0))
        a_lo, mc2_z, mc2_0 = np.zeros(self.n_stages), np.zeros((self.n_stages, self.nz)), np.zeros(self.n_stages)
        for s, end in enumerate(prog.ends):
            idx = 0 if end < 0 else 1 + end
            two_log_r = 2 * math.log(prog.stage_side(s))
            if self.e_up is None or not np.isfinite(self.e_up[s]):  # no upper bound yet: the piece is void
                a_lo[s] = a_up[s]
                mc2_0[s] = 1e6
                continue
            a_lo[s] = max(0.0, zl[idx] + two_log_r)
            mc2_z[s, idx] = self.e_up[s]
            mc2_0[s] = self.e_up[s] * (two_log_r - a_lo[s])
        _assign_all((self.a_lo, a_lo), (self.mc2_z, mc2_z), (self.mc2_0, mc2_0))
        _assign_all((self.zl, zl), (self.zu, zu))
        self.solves += 1
        # a failed or inconclusive solve must never prune: retry with more iterations, then report
        # UNSOLVED so the caller keeps the parent's bound
        # an infeasibility verdict prunes, so it must come twice: Clarabel calls a few tight boxes infeasible
        # that another regularisation solves (R18: the box of a single design whose inner-width cone is tight)
        status, objective, verdicts, needed = None, None, 0, (2 if prune else 1)
        for options in ({}, {"static_regularization_constant": 1e-6}, {"max_iter": 2000, "tol_feas": 1e-7, "tol_gap_rel": 1e-7}):
            status, objective = self._run(self.problem, self.compiled, options)
            verdicts += status == "infeasible"
            if status in ("optimal", "optimal_inaccurate") or verdicts == needed:
                break
        if status == "infeasible" and verdicts < needed:
            status = None
        if status not in ("optimal", "optimal_inaccurate", "infeasible") and self.rule_cuts:
            # Clarabel stalls on a few boxes with the inner-width chord (R50: depths <= 4); without it the
            # relaxation is looser but still valid
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
        if status == "optimal_inaccurate":
            value += 1e-3 * abs(value)  # keep the bound on the safe side
        return value, self.sol["z"]

    def _run(self, problem: Any, compiled: Any, options: dict[str, Any]) -> tuple[str | None, float | None]:
        """Solves ``problem`` at its parameters' values (directly with Clarabel when ``compiled``); returns
        its cvxpy status (``None`` on a solver error) and objective value."""
        if compiled is not None:
            status = compiled.solve(**options)
            return (None if status == "solver_error" else status), compiled.value
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
        slack = value - cutoff + 1e-6 * max(1.0, abs(value))  # on the safe side of the solver's tolerance
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

    def tighten(self, node: _Node, cutoff: float, rounds: int = 3, deadline: float = math.inf) -> _Node | None:
        """Optimality-based bound tightening: the smallest box around every design of ``node`` whose
        relaxation reaches ``cutoff``, snapped inward to the grid. Every design scoring above ``cutoff``
        stays inside (its relaxation value is at least its score), so the bound of the returned node is
        valid for them; ``None`` when no design of the node can beat ``cutoff``.

        Per round: min and max of every width, inner width and depth (two solves each), then the next
        round on the narrowed box, while a round still narrows something."""
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
            _assign(self.cutoff, cutoff - 1e-6 * max(1.0, abs(cutoff)))  # on the safe side of the solver's tolerance
            fields = {k: list(getattr(node, k)) for k in ("lo", "hi", "wlo", "whi", "blo", "bhi")}
            targets = ([("w", j, j) for j in range(n + 1)] + [("b", i, 1 + n + i) for i in range(n)]
                       + [("L", i, nz + i) for i in range(n) if node.hi[i] > node.lo[i]])
            for kind, j, col in targets:
                for sign in (1.0, -1.0):
                    if time.perf_counter() > deadline:
                        return node
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
        status, value = self._run(self.tighten_problem, self.compiled_tighten, {})
        return value if status == "optimal" else None

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
                e_up[s] = self.prog.f * 100.0 * -lowest * (1 + 1e-6) + 1e-6
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

    def stage_slack(self, node: _Node) -> np.ndarray:
        """Per-stage McCormick slack ``alpha_s (A_s^U - A_s(z)) (E_s - E_s^L)`` at the last solution."""
        prog = self.prog
        z, logsum = self.sol["z"], self.sol["logsum"]
        zl, zu = self.box(node)
        out = []
        for s, end in enumerate(prog.ends):
            idx = 0 if end < 0 else 1 + end
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
        a_up = self.a_up.value
        out = np.zeros(n)
        for i in range(n):
            _, _, vrow = self.v_range(zl, zu, i)
            gap = u[i] - D[i] * (vrow @ z)
            out[i] = max(gap, 0.0) * prog.f * sum(prog.alpha[s] * a_up[s] for s in range(prog.stage_of[i], len(prog.ends)))
        return out


class _Search:
    """Rounding, repair and local search on the discrete grid; keeps the best designs found."""

    def __init__(self, prog: DeepMADProgram, keep: int) -> None:
        self.prog = prog
        self.keep = max(1, keep)
        self.pool: dict[Design, Evaluation] = {}
        self.best: tuple[Design, Evaluation] | None = None
        self.evaluations = 0
        self._cache: dict[Design, Evaluation] = {}

    def evaluate(self, d: Design) -> Evaluation:
        ev = self._cache.get(d)
        if ev is None:
            ev = self.prog.evaluate(d)
            self.evaluations += 1
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[d] = ev
            if ev.feasible and self.prog.is_valid(d):
                self._offer(d, ev)
        return ev

    def _offer(self, d: Design, ev: Evaluation) -> None:
        if self.best is None or ev.score > self.best[1].score:
            self.best = (d, ev)
        if len(self.pool) < 4 * self.keep or ev.score > min(e.score for e in self.pool.values()):
            self.pool[d] = ev
            if len(self.pool) > 8 * self.keep:
                for key, _ in sorted(self.pool.items(), key=lambda kv: kv[1].score)[: len(self.pool) - 4 * self.keep]:
                    del self.pool[key]

    def top(self, k: int) -> list[tuple[Design, Evaluation]]:
        """The ``k`` best distinct networks: designs that build the same module (adjacent superblocks of one
        width, inner width and kernel, the second at stride 1, share their blocks however the depths are
        split between them) count once, by their best-scoring design (the depth penalty tells them apart)."""
        out, seen = [], set()
        for d, ev in sorted(self.pool.items(), key=lambda kv: -kv[1].score):
            key = self.module_key(d)
            if key not in seen:
                seen.add(key)
                out.append((d, ev))
                if len(out) == k:
                    break
        return out

    def bar(self) -> float:
        """The score a design must beat to enter the top-k list (``-inf`` until it holds k networks). A box
        whose relaxation does not beat it holds no design worth rounding, repairing or polishing."""
        top = self.top(self.keep)
        return top[-1][1].score if len(top) == self.keep else -math.inf

    def module_key(self, d: Design) -> tuple[Any, ...]:
        """The sequence of blocks a design builds: (in, out, inner, kernel, stride, projection) per block (in a
        space that always projects, the first block of every superblock projects, so depths moved across a
        stride-1 boundary make another network)."""
        blocks: list[tuple[int, int, int, int, int, bool]] = []
        prev = d.c0
        for i in range(self.prog.n):  # (in, out, inner, kernel, stride, projection shortcut)
            s = self.prog.strides[i]
            blocks.append((prev, d.c[i], d.b[i], d.k[i], s, s != 1 or prev != d.c[i] or self.prog.force_projection))
            blocks.extend([(d.c[i], d.c[i], d.b[i], d.k[i], 1, False)] * (d.L[i] - 1))
            prev = d.c[i]
        return (d.c0, tuple(blocks))

    def round(self, z: np.ndarray, node: _Node, depths: np.ndarray) -> Design:
        """A relaxed solution rounded to the nearest grid point of the node (depths ``depths``)."""
        prog, n, m = self.prog, self.prog.n, self.prog.m
        sp = prog.space
        rnd = lambda v: max(m, int(round(v / m)) * m)  # noqa: E731
        c0 = min(max(rnd(math.exp(z[0])), node.wlo[0]), node.whi[0])
        cs, prev = [], c0
        for i in range(n):
            c = min(max(rnd(math.exp(z[1 + i])), node.wlo[1 + i], prev), node.whi[1 + i])
            c = min(c, int(sp.max_width_ratio * prev) // m * m)
            cs.append(max(c, prev))
            prev = cs[-1]
        bs = []
        for i in range(n):
            lo, hi = prog.b_range(cs[i])
            bs.append(min(max(rnd(math.exp(z[1 + n + i])), lo, node.blo[i]), hi, max(node.bhi[i], lo)))
        ks = self.kernels(z, node)
        Ls = tuple(lo if lo == hi else min(max(int(round(L)), lo), hi)
                   for L, lo, hi in zip(depths, node.lo, node.hi))
        return Design(c0, tuple(cs), tuple(bs), ks, Ls)

    def floor(self, z: np.ndarray, node: _Node) -> Design:
        """Widths of a relaxed solution rounded down to the grid (costs only decrease, or nearly).

        Widths the relaxation keeps equal stay equal (a stride-1 superblock that changes width pays a
        shortcut convolution), and where the bottleneck ratio would force an inner width up, the output
        width goes down instead."""
        prog, n, m = self.prog, self.prog.n, self.prog.m
        lo_r = prog.space.bottleneck_ratio[0]
        fl = lambda v: max(m, int(math.exp(v) / m + 1e-3) * m)  # noqa: E731
        c0 = min(max(fl(z[0]), node.wlo[0]), node.whi[0])
        cs, bs, prev = [], [], c0
        for i in range(n):
            b = min(max(fl(z[1 + n + i]), node.blo[i]), max(node.bhi[i], node.blo[i]))
            cap = min(node.whi[1 + i], int(prog.space.max_width_ratio * prev) // m * m)
            if abs(z[1 + i] - z[i]) < 1e-4:  # the relaxation keeps the width
                c = prev
            else:
                c = min(max(fl(z[1 + i]), node.wlo[1 + i], prev), cap)
                c = max(min(c, int(b / lo_r + 1e-6) // m * m), prev, node.wlo[1 + i])  # keep b >= c lo_r
            lo, hi = prog.b_range(c)
            cs.append(c)
            bs.append(min(max(b, lo), hi))
            prev = c
        return Design(c0, tuple(cs), tuple(bs), self.kernels(z, node), tuple(node.lo))

    def round_box(self, z: np.ndarray, node: _Node) -> Design:
        """The best grid design around a relaxed solution, depths and kernels of the node's lower end.

        Every inner width is rounded down or up, every output width down or up or down to where the
        bottleneck ratio admits the inner width (the relaxation often sits on ``b = c lo_r``, which the
        grid reaches only at some widths); widths the relaxation keeps equal stay equal. The best feasible
        combination, or else the one violating the constraints least."""
        prog, n, m = self.prog, self.prog.n, self.prog.m
        lo_r = prog.space.bottleneck_ratio[0]

        def grid(v: float) -> tuple[int, int]:
            w = math.exp(v) / m
            down = max(m, int(w + 1e-3) * m)
            return down, (down if abs(w - round(w)) < 1e-3 else down + m)

        ks, L = self.kernels(z, node), tuple(node.lo)
        c0s = sorted({min(max(x, node.wlo[0]), node.whi[0]) for x in grid(z[0])})
        pairs: list[list[tuple[int, int]]] = []
        for i in range(n):
            bs = {min(max(x, node.blo[i]), max(node.bhi[i], node.blo[i])) for x in grid(z[1 + n + i])}
            if abs(z[1 + i] - z[i]) < 1e-4:  # the relaxation keeps the width: 0 stands for "as before"
                pairs.append([(0, b) for b in sorted(bs)])
                continue
            opts = set()
            for b in bs:
                cap = int(b / lo_r + 1e-6) // m * m
                for c in grid(z[1 + i]):
                    opts.add((min(max(c, node.wlo[1 + i]), node.whi[1 + i]), b))
                    opts.add((min(max(min(c, cap), node.wlo[1 + i]), node.whi[1 + i]), b))
            pairs.append(sorted(opts))
        best, best_key = None, None
        for c0 in c0s:
            for combo in itertools.product(*pairs):
                widths, prev = [], c0
                for c, _ in combo:
                    prev = prev if c == 0 else c
                    widths.append(prev)
                d = Design(c0, tuple(widths), tuple(b for _, b in combo), ks, L)
                if not prog.is_valid(d):
                    continue
                ev = self.evaluate(d)
                key = (ev.feasible, ev.score if ev.feasible else -ev.violation)
                if best_key is None or key > best_key:
                    best, best_key = d, key
        return best if best is not None else self.floor(z, node)

    def kernels(self, z: np.ndarray, node: _Node) -> tuple[int, ...]:
        """The allowed kernel nearest (in log k^2) to each relaxed kappa."""
        n = self.prog.n
        return tuple(min(kk, key=lambda k: abs(2 * math.log(k) - z[1 + 2 * n + i])) for i, kk in enumerate(node.kernels))

    def neighbours(self, d: Design) -> list[Design]:
        prog, n, m, sp = self.prog, self.prog.n, self.prog.m, self.prog.space
        out = []
        for delta in (m, -m):
            out.append(d._replace(c0=d.c0 + delta))
            for i in range(n):
                c = list(d.c); c[i] += delta
                out.append(d._replace(c=tuple(c)))
                b = list(d.b); b[i] += delta
                out.append(d._replace(b=tuple(b)))
                # widen/narrow the output and keep the b/out ratio in range
                lo, hi = prog.b_range(c[i]) if c[i] > 0 else (m, m)
                b2 = list(d.b); b2[i] = min(max(d.b[i], lo), hi)
                out.append(d._replace(c=tuple(c), b=tuple(b2)))
        for i in range(n):
            for dl in (1, -1):
                L = list(d.L); L[i] += dl
                out.append(d._replace(L=tuple(L)))
            for k in sp.kernels:
                if k != d.k[i]:
                    ks = list(d.k); ks[i] = k
                    out.append(d._replace(k=tuple(ks)))
            for j in range(n):
                if j != i:
                    L = list(d.L); L[i] += 1; L[j] -= 1
                    out.append(d._replace(L=tuple(L)))
        return [x for x in out if self.prog.is_valid(x)]

    def best_improvement(self, designs: Iterable[Design], score: float) -> tuple[Design, Evaluation] | None:
        """The feasible design scoring best among ``designs``, if it beats ``score``."""
        best = None
        for x in designs:
            ex = self.evaluate(x)
            if ex.feasible and ex.score > score + 1e-9 and (best is None or ex.score > best[1].score):
                best = (x, ex)
        return best

    def pair_polish(self, d: Design, deadline: float) -> Design:
        """Local search over pairs of moves (then single moves) until no pair improves or time is up."""
        d = self.polish(d)
        while time.perf_counter() < deadline:
            pairs = (y for x in self.neighbours(d) if time.perf_counter() < deadline for y in self.neighbours(x))
            best = self.best_improvement(pairs, self.evaluate(d).score)
            if best is None:
                break
            d = self.polish(best[0])
        return d

    def repair(self, d: Design, max_steps: int = 100) -> Design | None:
        """Greedy descent on the constraint violation, losing as little score per step as possible."""
        ev = self.evaluate(d)
        for _ in range(max_steps):
            if ev.feasible:
                return d
            best, best_key = None, None
            for x in self.neighbours(d):
                ex = self.evaluate(x)
                gain = ev.violation - ex.violation
                if gain <= 1e-15:
                    continue
                key = gain / (max(ev.score - ex.score, 0.0) + 1e-6 * abs(ev.score) + 1e-9)
                if best_key is None or key > best_key:
                    best, best_key = (x, ex), key
            if best is None:
                return None
            d, ev = best
        return d if ev.feasible else None

    def polish(self, d: Design, max_steps: int = 60) -> Design:
        """Best-improvement local search among feasible neighbours."""
        ev = self.evaluate(d)
        for _ in range(max_steps):
            best = self.best_improvement(self.neighbours(d), ev.score)
            if best is None:
                break
            d, ev = best
        return d


@register_solver
class DeepMADSolver(BaseSolver):
    """Best-first branch and bound with GP relaxations (see the module docstring).

    Capabilities: CNN spaces; MACs, params and activation-memory budgets; gives a bound.
    """

    name = "deepmad-bnb"
    families = ("cnn",)
    gives_bound = True
    options = ("rho0", "depth_penalty", "entropy")
    budget_keys = ("macs", "params", "latency", "memory", "flops")

    def __init__(self, *, gap_tol: float = GAP_OPTIMAL, time_limit: float | None = None, max_nodes: int = 1000,
                 backend: str | None = "CLARABEL", verbose: bool = False, polish_share: float = 0.1,
                 structure_share: float = 0.3, structure_solves: int = 100,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Args:
            gap_tol: Stop when the certified gap is at most this.
            time_limit: Optional wall-clock cap in seconds (default none). Without it every stop is a count
                (the gap tolerance, ``max_nodes``, ``structure_solves``), so the same call gives the same
                answer on any machine and under any load; with it, the answer depends on the machine's
                speed, and the result says so when the cap is what stopped it.
            max_nodes: Branch-and-bound nodes before the search returns its best design and bound.
            structure_solves: Relaxations the initial structure search (depths and kernels) may solve (100: at
                R18, R34, R50, R50-plus and MBV2 as good as 300 or better, and 2 s sooner).
            polish_share, structure_share: With a ``time_limit``: its shares kept for the final polish
                and given to the structure search.
            progress: Called with ``{"phase", "nodes", "open", "score", "bound", "gap", "elapsed_s"}`` when a
                phase starts and after every node of the search (the caller throttles its output).
        """
        super().__init__(gap_tol=gap_tol, time_limit=1.0 if time_limit is None else time_limit)
        if time_limit is None:
            self.time_limit = math.inf
        if not (isinstance(max_nodes, int) and max_nodes >= 1):
            raise SpecError(f"max_nodes: expected an integer >= 1, got {max_nodes!r}")
        if not (isinstance(structure_solves, int) and structure_solves >= 0):
            raise SpecError(f"structure_solves: expected an integer >= 0, got {structure_solves!r}")
        self.verbose = verbose
        self.polish_share = polish_share
        self.structure_share = structure_share
        self.structure_solves = structure_solves
        self.progress = progress
        self.max_nodes, self.backend = max_nodes, backend

    def solve(self, space: SearchSpace, budget: Budget, *, top_k: int = 5, rho0: float | None = None,
              resolution: int | None = None, depth_penalty: bool = True,
              entropy: Literal["code", "paper"] = "code") -> SolveResult:
        t0 = time.perf_counter()
        prog = DeepMADProgram(space, budget, rho0=rho0, resolution=resolution, depth_penalty=depth_penalty, entropy=entropy)

        def report(phase: str, bound: float = math.inf, open_nodes: int = 0) -> None:
            if self.progress is not None:
                score = search.best[1].score if search.best else None
                self.progress({"phase": phase, "nodes": nodes, "open": open_nodes, "score": score,
                               "bound": bound if math.isfinite(bound) else None,
                               "gap": relative_gap(bound, score) if score is not None and math.isfinite(bound) else None,
                               "elapsed_s": time.perf_counter() - t0})

        nodes = 0
        search = _Search(prog, top_k)
        report("relaxation")
        relax = _Relaxation(prog, self.backend)
        sp, n = space, prog.n

        heap: list[tuple[float, int, _Node, list[_Node]]] = []
        stats_unsolved = [0]
        stage_vars = [0 if end < 0 else 1 + end for end in prog.ends]
        counter = itertools.count()
        tried: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = {}  # structure -> width-box size realised at

        def push(node: _Node, parent_ub: float = math.inf) -> None:
            nonlocal nodes
            nodes += 1
            res = relax.solve(node)
            if res is None:  # proven infeasible
                return
            ub = min(res[0], parent_ub)
            inc = search.best[1].score if search.best else -math.inf
            if math.isfinite(ub) and ub <= inc + 1e-9 * abs(ub):  # an unsolved root (ub = inf) is never pruned
                return
            if res is UNSOLVED:  # keep the parent's bound; split the widest range blindly
                stats_unsolved[0] += 1
                children = self._split_widest(node, prog.m)
                if not children:  # a box of one design: its exact score stands in for the missing bound
                    search.evaluate(Design(node.wlo[0], node.wlo[1:], node.blo, tuple(k[0] for k in node.kernels), node.lo))
                    return
            else:
                # shrink the box around the designs that can still beat the incumbent (reduced costs), and
                # solve the smaller box again (the branching reads the last solve)
                smaller = relax.reduced_cost_box(node, res[0], inc) if search.best is not None else node
                if smaller is None:
                    return
                if smaller != node:
                    again = relax.solve(smaller)
                    if again is None:
                        return
                    if again is UNSOLVED:  # keep the solved box
                        relax.solve(node)
                    else:
                        node, res = smaller, again
                        ub = min(ub, res[0])
                        if ub <= inc + 1e-9 * abs(ub):
                            return
                children = self._branch(prog, relax, node, res[1], stage_vars)  # reads the last solve
                self._incumbent(prog, relax, search, node, res[1], tried)
            heapq.heappush(heap, (-ub, next(counter), node, children))

        root = _root(prog)
        relax.bound_entropy(root)
        push(root)
        # a strong incumbent early: local search over (depths, kernels), each point realised by its
        # fixed-structure relaxation (tight) floored to the grid
        root_res = relax.solve(root)
        report("structure search")
        if root_res is not None and root_res is not UNSOLVED:
            start = search.best[0] if search.best is not None else search.round(root_res[1], root, relax.depths())
            self._structure_search(prog, relax, search, root, start, t0 + self.structure_share * self.time_limit,
                                   self.structure_solves)
        if search.best is not None:
            report("bound tightening")
            # only designs that beat the incumbent matter: shrink the root box around them (valid
            # bound tightening), then bound the stage entropies over the smaller box
            tight = relax.tighten(root, search.best[1].score, deadline=t0 + 0.5 * self.time_limit)
            heap.clear()
            if tight is not None:
                relax.bound_entropy(tight, search.best[1].score)
                push(tight)
        bound = -math.inf
        expanded: set[int] = set()
        plunge: tuple[float, int, _Node, list[_Node]] | None = None
        plunge_depth = 0
        search_time = self.time_limit * (1.0 - self.polish_share)
        stopped = "gap"
        while True:
            while heap and heap[0][1] in expanded:  # lazily drop entries a plunge already expanded
                heapq.heappop(heap)
            if not heap:
                bound = search.best[1].score if search.best else -math.inf
                break
            bound = -heap[0][0]
            inc = search.best[1].score if search.best else -math.inf
            report("branch and bound", bound, len(heap))
            if self.verbose and nodes % 200 < n + 2:
                print(f"nodes {nodes} open {len(heap)} bound {bound:.1f} best {inc:.1f} t {time.perf_counter() - t0:.1f}", flush=True)
            if relative_gap(bound, inc) <= self.gap_tol:
                break
            # the time limit does not stop the search before a first feasible design (up to 10x)
            elapsed = time.perf_counter() - t0
            if nodes >= self.max_nodes:
                stopped = "nodes"
                break
            if (elapsed > search_time and search.best is not None) or elapsed > 10 * self.time_limit:
                stopped = "time_limit"
                break
            # best-first; until a first feasible design exists, depth-first plunges reach leaves (where
            # candidates are) early. Once there is one, plunges only slow the bound down (R50, 1000
            # nodes: gap 1.06 % with plunges, 0.66 % without)
            entry = plunge if plunge is not None else heapq.heappop(heap)
            expanded.add(entry[1])
            plunge = None
            if -entry[0] <= inc:
                continue
            before = len(heap)
            for child in entry[3]:
                push(child, -entry[0])
            kids = [e for e in heap[before:]] if len(heap) > before else []
            if kids and plunge_depth < 40 and search.best is None:
                plunge = max(kids, key=lambda e: -e[0])
                plunge_depth += 1
            else:
                plunge_depth = 0 if nodes % 4 == 0 else 40  # plunge again after a few best-first steps
        # realise the structures the best open nodes point at, then polish the best designs with pair
        # moves in the remaining time
        report("polish", bound, len(heap))
        deadline = t0 + self.time_limit
        for _, _, node, _ in heapq.nsmallest(5, heap):
            if time.perf_counter() > deadline:
                break
            res = relax.solve(node)
            if res is not None and res is not UNSOLVED:
                self._incumbent(prog, relax, search, node, res[1], tried)
        for d, _ in search.top(3):
            if time.perf_counter() > deadline:
                break
            search.pair_polish(d, deadline)
        elapsed = time.perf_counter() - t0
        stats = SolverStats(solve_time_s=elapsed, nodes=nodes, relaxations=relax.solves, evaluations=search.evaluations,
                            backend=f"{self.name}/{self.backend}", extra={
                                "unsolved_relaxations": stats_unsolved[0], "stopped": stopped,
                                # with a latency budget: the relaxation carries the predictor as one more
                                # posynomial row, so the bound covers latency as well as the other budgets
                                **(latency_provenance(budget, prog.latency_model, covers_latency=relax.covers_latency)
                                   if prog.latency_model is not None else {})})
        if search.best is None:
            if heap:  # stopped early with open nodes and nothing feasible yet
                return SolveResult(NO_DESIGN, sp.name, budget, [], bound, math.inf, stats)
            smallest = smallest_costs(space, budget, rho0=prog.rho0, resolution=prog.resolution)
            return SolveResult(INFEASIBLE, sp.name, budget, [], -math.inf, math.inf, stats, smallest)
        best_score = search.best[1].score
        bound = max(bound, best_score)
        gap = relative_gap(bound, best_score)
        status = OPTIMAL if gap <= GAP_OPTIMAL else FEASIBLE
        cands = []
        for rank, (d, ev) in enumerate(search.top(top_k)):
            spec = prog.to_spec(d, name=f"{sp.name}-{rank + 1}")
            cands.append(Candidate(spec, ev.score, ev.macs, ev.params, ev.rho,
                                   {"entropy": ev.entropy, "penalty": ev.penalty, "memory": ev.memory,
                                    **({"latency_ms": ev.latency} if prog.latency_model is not None else {}),
                                    **({"flops": ev.flops} if budget.flops is not None else {})}))
        return SolveResult(status, sp.name, budget, cands, bound, gap, stats)

    @staticmethod
    def _structure_search(prog: DeepMADProgram, relax: _Relaxation, search: "_Search", root: _Node, start: Design,
                          deadline: float, solves: int) -> None:
        """Steepest-ascent local search over depths and kernels; widths from the fixed-structure relaxation.
        Stops at a local optimum, after ``solves`` relaxations, or at ``deadline``."""
        sp, n = prog.space, prog.n
        seen: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = {}

        def spent() -> bool:
            return len(seen) >= solves or time.perf_counter() > deadline

        def value(L: tuple[int, ...], k: tuple[int, ...]) -> float:
            """The fixed-structure relaxation, within a fraction of a percent of the best design."""
            key = (L, k)
            if key not in seen:
                node = root._replace(lo=L, hi=L, kernels=tuple((x,) for x in k))
                res = relax.solve(node, prune=False)
                seen[key] = -math.inf
                if res is not None and res is not UNSOLVED:
                    seen[key] = res[0]  # the penalty is part of the relaxation
                    if res[0] <= search.bar():  # no design of this structure enters the top k
                        return seen[key]
                    cand = search.repair(search.round_box(res[1], node), max_steps=10)
                    if cand is not None:
                        search.polish(cand, max_steps=8)
            return seen[key]

        cur = (start.L, start.k)
        cur_value = value(*cur)
        for scale in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2):  # an infeasible start: fewer layers ease rho and the budgets
            if cur_value > -math.inf or spent():
                break
            L = tuple(max(sp.depths[0], int(x * scale)) for x in start.L)
            cur, cur_value = (L, start.k), value(L, start.k)
        while not spent():
            L, k = cur
            moves = []
            for i in range(n):
                hi = sp.first_depth_max if i == 0 else sp.depths[1]
                for dl in (1, -1):
                    if sp.depths[0] <= L[i] + dl <= hi:
                        moves.append((L[:i] + (L[i] + dl,) + L[i + 1:], k))
                for j in range(n):
                    hj = sp.first_depth_max if j == 0 else sp.depths[1]
                    for di, dj in ((1, -1), (1, 1), (-1, -1)):  # transfers, and joint moves that keep the std
                        if j != i and (di, dj) != (-1, -1) or (j > i and (di, dj) == (-1, -1)):
                            if j == i or (dj == 1 and j < i):
                                continue
                            if sp.depths[0] <= L[i] + di <= hi and sp.depths[0] <= L[j] + dj <= hj:
                                L2 = list(L); L2[i] += di; L2[j] += dj
                                moves.append((tuple(L2), k))
                for kk in sp.kernels:
                    if kk != k[i]:
                        moves.append((L, k[:i] + (kk,) + k[i + 1:]))
            best_move, best_value = None, cur_value
            for move in moves:  # steepest ascent on the relaxation value
                if spent():
                    return
                v = value(*move)
                if v > best_value + 1e-9:
                    best_move, best_value = move, v
            if best_move is None:
                return
            cur, cur_value = best_move, best_value

    @staticmethod
    def _incumbent(prog: DeepMADProgram, relax: _Relaxation, search: "_Search", node: _Node, z: np.ndarray,
                   tried: dict[tuple[tuple[int, ...], tuple[int, ...]], float]) -> None:
        """Designs from a node: its rounded depths and kernels, widths from the fixed-structure relaxation
        rounded to the grid (:meth:`_Search.round_box`).

        A structure (depths, kernels) realised before is realised again only in a box of widths at least
        e times smaller (``tried`` keeps the log-volume of the last one): its fixed-structure relaxation
        is tighter there, so its widths are better; otherwise the solve would repeat itself."""
        rounded = search.round(z, node, relax.depths())
        size = sum(math.log(hi / lo) for lo, hi in zip(node.wlo + node.blo, node.whi + node.bhi))
        key = (rounded.L, rounded.k)
        if size > 0 and tried.get(key, math.inf) < size + 1.0:  # a box of one width vector is always realised
            return
        tried[key] = size
        fixed = node._replace(lo=rounded.L, hi=rounded.L, kernels=tuple((k,) for k in rounded.k))
        res = relax.solve(fixed, prune=False)
        if res is None or res is UNSOLVED or res[0] <= search.bar():  # nothing there enters the top k
            return
        before = search.best[1].score if search.best else -math.inf
        cand = search.repair(search.round_box(res[1], fixed), max_steps=10)
        if cand is not None and search.evaluate(cand).score > before:
            search.polish(cand)

    @staticmethod
    def _split_widest(node: _Node, m: int) -> list[_Node]:
        """Halves the widest range of a node (used when its relaxation could not be solved)."""
        options = []
        for i, (lo, hi) in enumerate(zip(node.lo, node.hi)):
            if hi > lo:
                options.append(((hi - lo) / hi, "L", i))
        for i, kk in enumerate(node.kernels):
            if len(kk) > 1:
                options.append((0.5, "k", i))
        for i, (lo, hi) in enumerate(zip(node.wlo, node.whi)):
            if hi > lo:
                options.append(((hi - lo) / hi, "w", i))
        for i, (lo, hi) in enumerate(zip(node.blo, node.bhi)):
            if hi > lo:
                options.append(((hi - lo) / hi, "b", i))
        if not options:
            return []
        _, kind, i = max(options)
        if kind == "k":
            kk = node.kernels[i]
            return [node._replace(kernels=node.kernels[:i] + (part,) + node.kernels[i + 1:])
                    for part in (kk[: len(kk) // 2], kk[len(kk) // 2:])]
        lo_f, hi_f = {"L": ("lo", "hi"), "w": ("wlo", "whi"), "b": ("blo", "bhi")}[kind]
        lo, hi = getattr(node, lo_f)[i], getattr(node, hi_f)[i]
        step = 1 if kind == "L" else m
        mid = max(lo, ((lo + hi) // 2) // step * step)
        mid = min(mid, hi - step)
        a = list(getattr(node, hi_f)); a[i] = mid
        b = list(getattr(node, lo_f)); b[i] = mid + step
        return [node._replace(**{hi_f: tuple(a)}), node._replace(**{lo_f: tuple(b)})]

    @staticmethod
    def _branch(prog: DeepMADProgram, relax: _Relaxation, node: _Node, z: np.ndarray, stage_vars: list[int]) -> list[_Node]:
        """Children of a node: split the range that the relaxation overestimates most at its solution."""
        n, m = prog.n, prog.m
        zl, zu = relax.box(node)
        scores: list[tuple[float, str, int]] = []
        for s, slack in enumerate(relax.stage_slack(node)):
            var = stage_vars[s]
            if node.whi[var] > node.wlo[var]:
                scores.append((float(slack), "w", var))
        D = relax.sol["D"]
        ny = 2.0 if prog.bottleneck else 1.0
        for i, slack in enumerate(relax.link_slack()):
            if node.hi[i] > node.lo[i] and slack > 0:
                scores.append((float(slack), "L", i))
        for i, slack in enumerate(relax.depth_slack(node)):
            if node.lo[i] == 1 < node.hi[i]:
                scores.append((float(slack) + 1e9, "L", i))
                continue
            # the McCormick error of D v grows with the ranges of D and of v = x_o + ny y + kappa:
            # split whichever contributes most
            vl, vu, vrow = relax.v_range(zl, zu, i)
            v_mid = max(1.0, abs(float(vrow @ z)))
            parts = [((node.hi[i] - node.lo[i]) / max(1.0, D[i]), "L", i),
                     ((zu[1 + i] - zl[1 + i]) / v_mid, "w", 1 + i),
                     (ny * (zu[1 + n + i] - zl[1 + n + i]) / v_mid, "b", i)]
            parts = [q for q in parts if q[0] > 0]
            if parts:
                _, kind_i, var = max(parts)
                scores.append((float(slack), kind_i, var))
        w_up = relax.a_up.value
        for i in range(n):
            kk = node.kernels[i]
            if len(kk) > 1:
                kap = z[1 + 2 * n + i]
                dist = min(abs(kap - 2 * math.log(k)) for k in kk)
                weight = prog.f * sum(prog.alpha[s] * w_up[s] for s in range(prog.stage_of[i], len(prog.ends)))
                scores.append((weight * node.hi[i] * dist + (1e6 if dist > 1e-3 else 0.0), "k", i))
        if not scores:  # no overestimate left to target: split any range left (none: a single design)
            return DeepMADSolver._split_widest(node, m)
        _, kind, i = max(scores)

        if kind == "L":
            lo, hi = node.lo[i], node.hi[i]
            if lo == 1:  # D = 0 cannot live in log space: split it off first
                mid = 1
            else:  # split where the relaxation put the depth
                mid = min(max(int(math.floor(float(relax.depths()[i]))), lo), hi - 1)
            hi1 = list(node.hi); hi1[i] = mid
            lo2 = list(node.lo); lo2[i] = mid + 1
            return [node._replace(hi=tuple(hi1)), node._replace(lo=tuple(lo2))]
        if kind == "k":
            kk = node.kernels[i]
            kap = z[1 + 2 * n + i]
            low = tuple(k for k in kk if 2 * math.log(k) <= kap)
            high = tuple(k for k in kk if 2 * math.log(k) > kap)
            if not low or not high:
                low, high = kk[: len(kk) // 2], kk[len(kk) // 2:]
            out = []
            for part in (low, high):
                ks = list(node.kernels); ks[i] = part
                out.append(node._replace(kernels=tuple(ks)))
            return out
        if kind == "b":
            lo, hi = node.blo[i], node.bhi[i]
            at = math.exp(z[1 + n + i])
            mid = int((0.5 * at + 0.5 * math.sqrt(lo * hi)) / m) * m
            mid = min(max(mid, lo), hi - m)
            hi1 = list(node.bhi); hi1[i] = mid
            lo2 = list(node.blo); lo2[i] = mid + m
            return [node._replace(bhi=tuple(hi1)), node._replace(blo=tuple(lo2))]
        lo, hi = node.wlo[i], node.whi[i]
        at = math.exp(z[i])
        mid = int((0.5 * at + 0.5 * math.sqrt(lo * hi)) / m) * m
        mid = min(max(mid, lo), hi - m)
        hi1 = list(node.whi); hi1[i] = mid
        lo2 = list(node.wlo); lo2[i] = mid + m
        return [node._replace(whi=tuple(hi1)), node._replace(wlo=tuple(lo2))]


def smallest_costs(space: SearchSpace, budget: Budget, *, rho0: float | None = None,
                   resolution: int | None = None) -> dict[str, Any]:
    """Smallest MACs and params (and, with a latency budget, predicted latency in ms) of a feasible design
    of the space, each minimised separately.

    Each is found by a local search that minimises the cost among rho-feasible designs, started from
    the smallest widths with the largest kernels (rho needs width), so it is an achievable value.
    """
    out: dict[str, Any] = {}
    keys = ("macs", "params") + (("latency",) if budget.latency_ms is not None else ())
    for key in keys:
        prog = DeepMADProgram(space, Budget(latency_ms=budget.latency_ms) if key == "latency" else Budget(), rho0=rho0,
                              resolution=resolution)
        search = _Search(prog, 1)
        sp, n = space, prog.n
        c0 = sp.stem_widths[0]
        cs = [max(sp.widths[0], c0)]
        for _ in range(n - 1):
            cs.append(cs[-1])
        d = Design(c0, tuple(cs), tuple(prog.b_range(c)[0] for c in cs), tuple(max(sp.kernels) for _ in cs),
                   tuple(sp.depths[0] for _ in cs))
        # grow widths until rho holds, then descend on the cost
        for _ in range(2000):
            if prog.evaluate(d).rho <= prog.rho0:
                break
            d = min((x for x in search.neighbours(d)), key=lambda x: prog.evaluate(x).rho)
        cost = lambda x: getattr(prog.evaluate(x), key)  # noqa: E731
        for _ in range(2000):
            better = [x for x in search.neighbours(d) if prog.evaluate(x).rho <= prog.rho0 and cost(x) < cost(d)]
            if not better:
                break
            d = min(better, key=cost)
        value = getattr(prog.evaluate(d), key)
        if key == "latency":
            out["latency_ms"] = float(value)
        else:
            out[key] = int(value)
    return out


def solve_deepmad(space: SearchSpace, budget: Budget | None = None, *, top_k: int = 5, rho0: float | None = None,
                  resolution: int | None = None, depth_penalty: bool = True, entropy: Literal["code", "paper"] = "code",
                  gap_tol: float = GAP_OPTIMAL, time_limit: float | None = None, max_nodes: int = 1000) -> SolveResult:
    """Solves the DeepMAD program of ``space`` under ``budget`` (default: the space's); deterministic
    unless a ``time_limit`` stops it (see :class:`DeepMADSolver`)."""
    solver = DeepMADSolver(gap_tol=gap_tol, time_limit=time_limit, max_nodes=max_nodes)
    return solver.solve(space, budget or space.budget, top_k=top_k, rho0=rho0, resolution=resolution,
                        depth_penalty=depth_penalty, entropy=entropy)


def brute_force(prog: DeepMADProgram, designs: Any) -> tuple[Design, Evaluation] | None:
    """Best feasible design among ``designs`` (for tests on small spaces)."""
    best = None
    for d in designs:
        if not prog.is_valid(d):
            continue
        ev = prog.evaluate(d)
        if ev.feasible and (best is None or ev.score > best[1].score):
            best = (d, ev)
    return best
