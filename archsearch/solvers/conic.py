"""A parametrised cvxpy problem compiled once and re-solved by calling Clarabel directly.

Branch and bound re-solves one DPP problem (Disciplined Parametrized Programming: the conic data is an
affine function of the parameters) thousands of times with new parameter values. cvxpy's own re-solve
spends about as long mapping the parameters to the conic data and the solution back to the problem's
variables and constraints as Clarabel spends solving (DeepMAD-R50's relaxation: about 6 ms each). Here
the parameters-to-data map is one sparse matrix product into a fixed sparsity pattern, computed once
from cvxpy's own compiled tensor, and the variables and dual values the caller reads are slices of
Clarabel's solution. Statuses and signs follow cvxpy's (the equality with cvxpy's solve is tested).
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any, Sequence

import numpy as np

__all__ = ["CompiledProblem", "import_cvxpy"]

_IMPORT_LOCK = threading.Lock()


class _DeferredStats(types.ModuleType):
    """Stands in for ``scipy.stats`` while cvxpy is imported: cvxpy reads one function from it at import
    (``entropy``, for the numeric value of its quantum relative entropy atom), and importing scipy.stats
    costs ~0.35 s (it parses the docstrings of its ~100 distributions), a third of a CLI call's imports.
    ``entropy`` here imports the real module when first called; any other name imports it at once."""

    def __init__(self) -> None:
        super().__init__("scipy.stats")

    @staticmethod
    def entropy(*args: Any, **kwargs: Any) -> Any:
        return _real_stats().entropy(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_real_stats(), name)


def _real_stats() -> Any:
    if isinstance(sys.modules.get("scipy.stats"), _DeferredStats):
        del sys.modules["scipy.stats"]
    import scipy.stats

    return scipy.stats


def import_cvxpy() -> Any:
    """``cvxpy``, imported without importing ``scipy.stats`` (see :class:`_DeferredStats`; ~0.35 s of every
    solve from the command line). A ``scipy.stats`` already imported is used as it is; the stand-in is in
    ``sys.modules`` only while cvxpy's own import runs, and whatever asks it for more than ``entropy`` gets
    the real module."""
    if "cvxpy" in sys.modules:
        return sys.modules["cvxpy"]
    with _IMPORT_LOCK:
        stub = None
        if "scipy.stats" not in sys.modules:
            stub = sys.modules["scipy.stats"] = _DeferredStats()
        try:
            import cvxpy
        finally:
            if stub is not None and sys.modules.get("scipy.stats") is stub:
                del sys.modules["scipy.stats"]
    return cvxpy

# Clarabel's statuses in cvxpy's words (cvxpy's CLARABEL.STATUS_MAP)
_STATUS = {"Solved": "optimal", "AlmostSolved": "optimal_inaccurate", "PrimalInfeasible": "infeasible",
           "AlmostPrimalInfeasible": "infeasible_inaccurate", "DualInfeasible": "unbounded",
           "AlmostDualInfeasible": "unbounded_inaccurate", "MaxIterations": "user_limit", "MaxTime": "user_limit"}


class CompiledProblem:
    """``problem`` (a DPP cvxpy problem whose variables carry no attributes such as ``nonneg``, so that
    each maps to a column block of the conic form as it is) compiled for Clarabel.

    After :meth:`solve`, :attr:`status` and :attr:`value` are cvxpy's ``problem.status`` and
    ``problem.value``; :meth:`value_of` and :meth:`dual_of` give what ``variable.value`` and
    ``constraint.dual_value`` would (for the variables and the linear constraints named at construction).

    Args:
        problem: The cvxpy problem; its parameters are read (``param.value``) at every solve.
        variables: Variables whose values are read after a solve.
        constraints: Linear inequality constraints (cvxpy keeps their identity through its reductions)
            whose dual values are read after a solve.
    """

    def __init__(self, problem: Any, variables: Sequence[Any] = (), constraints: Sequence[Any] = ()) -> None:
        import scipy.sparse as sp

        cp = import_cvxpy()
        from cvxpy import settings as s
        from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import dims_to_solver_cones

        if not problem.is_dpp():  # its compiled data would hold the parameters' values at compilation
            raise ValueError("CompiledProblem needs a DPP problem (cvxpy's Disciplined Parametrized Programming)")
        for param in problem.parameters():  # the compilation needs values; any will do
            if param.value is None:
                param.value = np.ones(param.shape)
        data, _, _ = problem.get_problem_data(cp.CLARABEL)
        pp = data[s.PARAM_PROB]
        self.problem, self.pp = problem, pp
        self.maximize = isinstance(problem.objective, cp.Maximize)
        nvar = pp.x.size
        tensor = sp.csr_array(pp.A)
        nrows = tensor.shape[0] // (nvar + 1)
        used = np.flatnonzero(np.diff(tensor.indptr))  # entries of [A | b] that some parameter or constant sets
        row, col = used % nrows, used // nrows
        in_a = col < nvar
        order = np.lexsort((row[in_a], col[in_a]))  # column-major, as CSC stores them
        self._ta = sp.csr_array(tensor[used[in_a][order]])
        self._a_indices = row[in_a][order].astype(np.int64)
        self._a_indptr = np.concatenate([[0], np.cumsum(np.bincount(col[in_a], minlength=nvar))]).astype(np.int64)
        self._tb = sp.csr_array(tensor[used[~in_a]])
        self._b_rows = row[~in_a]
        self._tq = sp.csr_array(pp.q)
        self.shape = (nrows, nvar)
        self._p = sp.csc_array((nvar, nvar))
        self._cones = dims_to_solver_cones(pp.cone_dims)
        self._params = [(pp.id_to_param[pid], col_, pp.param_id_to_size[pid]) for pid, col_ in pp.param_id_to_col.items()
                        if pid in pp.id_to_param]
        self._nparam = pp.total_param_size
        self._var_cols: dict[int, tuple[int, tuple[int, ...]]] = {}
        for var in variables:
            if var.id not in pp.var_id_to_col:
                raise ValueError(f"variable {var.name()} does not map to the conic form as it is (an attribute?)")
            self._var_cols[var.id] = (pp.var_id_to_col[var.id], var.shape)
        offsets, at = {}, 0
        for con in pp.constraints:
            offsets[con.id] = (at, con.size)
            at += con.size
        self._dual_rows: dict[int, tuple[int, int]] = {}
        for con in constraints:
            if con.id not in offsets:
                raise ValueError(f"constraint {con} does not keep its identity in the conic form")
            self._dual_rows[con.id] = offsets[con.id]
        self._settings: dict[tuple[Any, ...], Any] = {}
        self.status: str | None = None
        self.value: float | None = None
        self.iterations = 0
        self._x: np.ndarray | None = None
        self._z: np.ndarray | None = None

    def _param_vector(self) -> np.ndarray:
        vec = np.zeros(self._nparam + 1)
        for param, col, size in self._params:
            vec[col: col + size] = param.value.ravel(order="F") if size > 1 else param.value
        vec[-1] = 1.0  # the constant column
        return vec

    def data(self) -> tuple[np.ndarray, Any, np.ndarray, float]:
        """``(q, A, b, offset)`` of the conic form ``min q x + offset, b - A x in K`` at the parameters' values."""
        import scipy.sparse as sp

        vec = self._param_vector()
        a = sp.csc_array((-(self._ta @ vec), self._a_indices.copy(), self._a_indptr.copy()), shape=self.shape)
        a.eliminate_zeros()  # as cvxpy passes it (explicit zeros change Clarabel's path; it failed on some nodes)
        b = np.zeros(self.shape[0])
        b[self._b_rows] = self._tb @ vec
        qd = self._tq @ vec
        return qd[:-1], a, b, float(qd[-1])

    def solve(self, **settings: Any) -> str:
        """Solves at the parameters' current values with Clarabel (``settings``: Clarabel's); returns the status."""
        import clarabel

        q, a, b, offset = self.data()
        key = tuple(sorted(settings.items()))
        opts = self._settings.get(key)
        if opts is None:
            opts = clarabel.DefaultSettings()
            opts.verbose = False
            for name, val in settings.items():
                setattr(opts, name, val)
            self._settings[key] = opts
        try:
            sol = clarabel.DefaultSolver(self._p, q, a, b, self._cones, opts).solve()
        except Exception:  # a solver failure is a status, as cvxpy's SolverError is for the caller
            self.status, self.value, self._x, self._z = "solver_error", None, None, None
            return self.status
        self.status = _STATUS.get(str(sol.status), "solver_error")
        self.iterations = sol.iterations
        if self.status in ("optimal", "optimal_inaccurate"):
            value = sol.obj_val + offset
            self.value = -value if self.maximize else value
            self._x, self._z = np.asarray(sol.x), np.asarray(sol.z)
        else:
            self.value, self._x, self._z = None, None, None
        return self.status

    def value_of(self, var: Any) -> np.ndarray | None:
        """The variable's value at the last solution (``None`` without one)."""
        if self._x is None:
            return None
        col, shape = self._var_cols[var.id]
        size = int(np.prod(shape)) if shape else 1
        out = self._x[col: col + size]
        return out.reshape(shape, order="F") if shape else float(out[0])

    def dual_of(self, con: Any) -> np.ndarray | None:
        """The constraint's dual value at the last solution (``None`` without one)."""
        if self._z is None:
            return None
        at, size = self._dual_rows[con.id]
        out = self._z[at: at + size]
        shape = con.shape
        return out.reshape(shape, order="F") if shape else float(out[0])
