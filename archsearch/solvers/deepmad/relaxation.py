"""The node relaxation's formulation: one DPP-parametrised convex program, built once per solve.

Variables ``z = (x, y, kappa)`` (log-widths of the stem and superblock outputs, log inner widths, log
squared kernels), per superblock the repeated-block count ``D = L - 1`` with ``delta ~ log D``, the totals
``M`` of the repeated blocks' cost monomials, and their log-width totals ``W = D z`` (McCormick). The
mathematics of every row is stated on :class:`_Formulation`; each node only sets parameters (the box) and
re-solves (:mod:`archsearch.solvers.deepmad.bounds`), through :class:`archsearch.solvers.conic.CompiledProblem`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from archsearch.errors import SpecError
from archsearch.solvers.deepmad.program import DeepMADProgram


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


class _Formulation:
    """The node relaxation as one DPP-parametrised cvxpy problem, re-solved with new parameters.

    Variables: ``z = (x, y, kappa)``, the log-widths (stem and superblock outputs), the log inner
    widths and the log squared kernels (``kappa = log k^2`` over the node's kernel range: the
    kernel set relaxed to an interval); per superblock the number ``D = L - 1`` of repeated blocks
    with ``delta ~ log D``, and ``M_j``, the total over the repeated blocks of each cost monomial
    ``m_j(z)`` (bottleneck ``c b``, ``b^2 k^2``, ``b``, ``c``; inverted residual ``c b``, ``b k^2``,
    ``b``, ``c``).

    * Costs: first blocks as posynomials in ``z``, each distinct monomial one exponential cone
      ``P_r >= exp(row_r . z - sigma_r)`` shared by every budget row, repeated blocks linear in ``M``;
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
        from archsearch.solvers.conic import import_cvxpy

        cp = import_cvxpy()

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
        lo_r, hi_r = prog.space.min_inner_ratio(), prog.space.max_inner_ratio()
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
        # costs: first blocks (linear in the shared monomials P) + repeated blocks (linear in M, D) <= 1
        self.first_macs, self.first_params = self._first_rows()
        b = prog.budget
        # budget rows whose repeated-block part is linear in M: (constraint, per-M coefficients) for the
        # cost hidden by a loose depth link (see :meth:`link_slack`)
        self.budget_rows: list[tuple[Any, Any]] = []
        # 1 and 0 in every bound; a heuristic's shaded solve (:meth:`_Relaxation.solve`) asks for designs a
        # fraction inside the budgets and rho0, so that rounding its widths to the grid keeps them feasible
        self.cap = cp.Parameter(nonneg=True, value=1.0)
        self.rho_shift = cp.Parameter(nonneg=True, value=0.0)
        # The budget rows' posynomial parts (the stem, first blocks and head, in z) share their monomials: each
        # distinct monomial is one exponential cone, P_r >= exp(row_r . z - sigma_r), and every row is linear in P
        # (exact: the coefficients are non-negative; constant terms move to the row's constant). A log_sum_exp
        # per row cost a cone per term and one more for its log: R50's relaxation had 125 exponential cones, 92
        # now (its FLOPs and params rows share 31 monomials), and Clarabel ~30 % less time per solve
        rows_terms: list[tuple[list[tuple[list[float], float]], Any, Any]] = []  # (terms, M coefs, D coefs)
        self.budget_kinds: list[str] = []  # the budget of each of :attr:`budget_rows`
        fm, fp, rm, rp, rpd = self._cost_coefs()
        for kind, limit, first, coefs, rep, rep_d in (("macs", prog.macs_limit, self.first_macs, fm, rm, None),
                                                      ("params", b.params, self.first_params, fp, rp, rpd)):
            if limit is not None:
                rows_terms.append((list(zip(first, coefs)), rep, rep_d))
                self.budget_kinds.append(kind)
        # latency: the calibrated predictor is a non-negative combination of posynomial features (MACs,
        # activations, weights, a constant per unit), so it enters like the MACs row; its MACs with
        # channels rounded up to the calibration's block are bounded below by the unrounded ones
        self.covers_latency = prog.latency_model is not None and b.latency_ms is not None
        if self.covers_latency:
            lat_rows, lat_coefs, rep_lat, rep_lat_d = self._latency_terms()
            rows_terms.append(([(r, c / b.latency_ms) for r, c in zip(lat_rows, lat_coefs)],
                               rep_lat * self.KAPPA / b.latency_ms, rep_lat_d / b.latency_ms))
            self.budget_kinds.append("latency")
        # FLOPs in the reference code's count (:meth:`DeepMADProgram.flops`): the conv MACs at its real sides
        # plus BatchNorm and ReLU (3 per output element of every conv); a posynomial like the MACs row. Without
        # it the relaxation bounded the FLOPs only through the MACs they contain, ~1.5 % less at R50, and its
        # solutions broke the FLOPs budget when rounded
        if b.flops is not None:
            f_rows, f_coefs, rep_f = self._flops_terms()
            rows_terms.append(([(r, c / b.flops) for r, c in zip(f_rows, f_coefs)], rep_f * self.KAPPA / b.flops, None))
            self.budget_kinds.append("flops")
        self.mono_rows_first, self.mono_coefs, self.mono_const = self._monomials([terms for terms, _, _ in rows_terms])
        # per budget row, its repeated blocks' coefficients of M and of D (None: no D term)
        self.budget_rep = [(rep, rep_d) for _, rep, rep_d in rows_terms]
        R = self.mono_rows_first.shape[0]
        # P_r's scale is each node's own (the monomial's log at the box's centre, set with the box), so that P
        # is near 1 in every box: one scale for the whole space left Clarabel calling a feasible box of one
        # R18 design infeasible
        self.mono_sigma = cp.Parameter(R)
        self.mono_coef_params = [cp.Parameter(R, nonneg=True) for _ in rows_terms]
        if R:
            self.P = cp.Variable(R)
            cons.append(self.P >= cp.exp(self.mono_rows_first @ z - self.mono_sigma))
        for (_, rep, rep_d), coef, c0 in zip(rows_terms, self.mono_coef_params, self.mono_const):
            total = cp.sum(cp.multiply(rep, self.M)) + c0
            if R:
                total = total + coef @ self.P
            if rep_d is not None and np.any(np.asarray(rep_d) != 0):
                total = total + np.asarray(rep_d) @ self.D
            cons.append(total <= self.cap)
            self.budget_rows.append((cons[-1], rep))
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
        if prog.head:  # the head conv, log of its input width, in the last stage
            e_z[-1, n] += 1.0
            self.n_first[-1] += 1
        self.e_z = e_z
        self.stem_log = math.log(prog.cin0 * prog.ks**2)
        logsum = cp.Variable(self.n_stages)
        self.logsum = logsum
        cons.append(logsum == e_z @ z + self.e_u @ self.u + self.stem_log)
        self.N = cp.Variable(self.n_stages)
        cons.append(self.N >= self.n_first + 3 * self.e_u @ self.D)
        # (rho0 (1 - shade) in a shaded solve: N log(N / (rho0 (1 - shade))) = N log(N / rho0) + N rho_shift)
        cons.append(logsum / 100.0 >= cp.rel_entr(self.N, prog.rho0 * np.ones(self.n_stages)) / 100.0
                    + self.rho_shift * self.N / 100.0)
        if prog.max_layers:  # the conv layers: 1 + 3 sum L (+ the head) <= max_layers, linear in D
            cons.append(3 * cp.sum(self.D) <= prog.max_layers - prog.layers((1,) * n))
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
        if prog.madnas:
            # the reference's madnas score, sum_s alpha_s (f logsum_s + log C_s): linear, no stage products
            # (the w rows above stay, unread); C_s the stage's last width, or the head conv's constant one
            a_z, a_0 = np.zeros((self.n_stages, nz)), np.zeros(self.n_stages)
            for s in range(self.n_stages):
                idx, a_0[s] = self.stage_width_term(s)
                if idx is not None:
                    a_z[s, idx] = 1.0
            objective = (self.weights @ (prog.f * logsum + a_z @ z) + float(self.weights @ a_0)) / 1000.0
        # DeepMAD's depth penalty w exp(std L) (w = 10 in the paper) is convex in L (exp of a norm): subtracted exactly
        skip = prog.space.penalty_skip
        self.penalty = None
        if prog.use_penalty and n - skip > 0:
            m = n - skip
            centre = np.eye(m) - np.ones((m, m)) / m
            self.penalty = prog.penalty_weight * cp.exp(cp.norm(centre @ self.D[skip:], 2) / math.sqrt(m))
            objective = objective - self.penalty / 1000.0
        self.problem = cp.Problem(cp.Maximize(objective), cons)
        self.solves = 0
        self.last_status: str | None = None  # of the last solve of :attr:`problem`
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

    def _monomials(self, rows: list[list[tuple[list[float], float]]]) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """The budget rows' posynomial parts over shared monomials. ``rows``: per budget row its terms
        ``(exponent row over z, coefficient)`` (coefficients in budget fractions, non-negative). Returns the
        distinct non-constant exponent rows ``(R, nz)``, per budget row the coefficients of the monomials
        ``(rows, R)``, and per budget row its constant part. Terms with coefficient 0 (a shortcut the
        superblock never has) are left out."""
        index: dict[tuple[float, ...], int] = {}
        for terms in rows:
            for row, coef in terms:
                if coef > 0 and any(row):
                    index.setdefault(tuple(row), len(index))
        mono = np.array([list(key) for key in index], float).reshape(len(index), self.nz)
        lin, const = [], []
        for terms in rows:
            coef, c0 = np.zeros(len(index)), 0.0
            for row, c in terms:
                if c > 0 and any(row):
                    coef[index[tuple(row)]] += c
                elif c > 0:
                    c0 += c
            lin.append(coef)
            const.append(c0)
        return mono, np.array(lin).reshape(len(rows), len(index)), const

    def stage_width_term(self, s: int) -> tuple[int | None, float]:
        """Stage ``s``'s ``log C_s`` (its output width's log) as ``(index in z, constant)``: the stem's or the
        stage's last superblock's log-width, or, in the last stage of a space with a head conv, no index and
        the head's constant ``log C``."""
        prog = self.prog
        if s == self.n_stages - 1 and prog.head:
            return None, math.log(prog.head)
        end = prog.ends[s]
        return (0 if end < 0 else 1 + end), 0.0

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
        if prog.head:  # the head conv: c_n head MACs at the last side, c_n head + 2 head parameters
            macs.append(e(**{f"x{n}": 1}))
            params += [e(**{f"x{n}": 1}), e()]
        if prog.count_head:  # the classifier, on the head conv's constant width where there is one
            macs.append(e() if prog.head else e(**{f"x{n}": 1}))
            params += [e() if prog.head else e(**{f"x{n}": 1}), e()]
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
        if prog.head:
            macs.append(prog.r_out[-1] ** 2 * prog.head)
            params += [prog.head, 2 * prog.head]
        if prog.count_head:
            cls, width = prog.num_classes, (prog.head or 1)
            macs.append(cls * width)
            params += [cls * width, cls]
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
        if prog.head:  # (c_n + 3) head at the last side
            last2 = sides[-1][1] / den * shade
            rows += [e(**{f"x{n}": 1}), e()]
            coefs += [prog.head * last2, 3 * prog.head * last2]
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
        if prog.head:  # the head conv's input and output
            ro2 = prog.r_out[-1] ** 2
            out.append((prog.n - 1, [e(**{f"x{prog.n}": 1}), e()], [(ro2, False), (prog.head * ro2, False)]))
        return out
