"""The compiled Clarabel path (:mod:`archsearch.solvers.conic`) against cvxpy's own solve of the same problem."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest

from archsearch.solvers.conic import CompiledProblem
from archsearch.solvers.deepmad import _Relaxation, _root
from archsearch.solvers.deepmad.program import DeepMADProgram
from archsearch.space import get_space


def _small_problem() -> tuple:
    """A DPP problem with exponential cones, a maximised objective and parametrised box bounds."""
    x, y = cp.Variable(3), cp.Variable(2)
    lo, hi = cp.Parameter(3), cp.Parameter(3)
    w = cp.Parameter(3, nonneg=True)
    box = [x >= lo, x <= hi]
    cons = box + [cp.log_sum_exp(cp.hstack([x[0] + x[1], x[2], y[0]])) <= 2.0, y[1] <= cp.log(x[0] + 3.0),
                  cp.sum(y) <= 1.0, y >= -5]
    prob = cp.Problem(cp.Maximize(w @ x + y[1] - 0.5 * y[0]), cons)
    return prob, x, y, box, lo, hi, w


@pytest.mark.parametrize("seed", range(5))
def test_compiled_equals_cvxpy_on_random_parameters(seed: int) -> None:
    prob, x, y, box, lo, hi, w = _small_problem()
    comp = CompiledProblem(prob, [x, y], box)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        lo.value = rng.uniform(-2.0, 0.0, 3)
        hi.value = lo.value + rng.uniform(0.1, 2.0, 3)
        w.value = rng.uniform(0.0, 2.0, 3)
        prob.solve(solver=cp.CLARABEL)
        assert comp.solve() == prob.status == "optimal"
        assert comp.value == pytest.approx(prob.value, rel=1e-6, abs=1e-7)
        np.testing.assert_allclose(comp.value_of(x), x.value, atol=1e-5)
        np.testing.assert_allclose(comp.value_of(y), y.value, atol=1e-5)
        for con in box:  # the duals that price the box, as cvxpy reports them
            np.testing.assert_allclose(comp.dual_of(con), con.dual_value, atol=1e-5)


def test_compiled_reports_infeasible_and_refuses_attributed_variables() -> None:
    prob, x, y, box, lo, hi, w = _small_problem()
    comp = CompiledProblem(prob, [x], box)
    lo.value, hi.value, w.value = np.full(3, 1.0), np.full(3, 0.0), np.ones(3)  # lo > hi
    assert comp.solve() == "infeasible" and comp.value is None and comp.value_of(x) is None
    z = cp.Variable(2, nonneg=True)
    with pytest.raises(ValueError, match="attribute"):
        CompiledProblem(cp.Problem(cp.Minimize(cp.sum(z))), [z])


@pytest.mark.parametrize("name", ["deepmad-r50", "deepmad-mbv2"])
def test_relaxation_value_equal_under_both_paths(name: str) -> None:
    """The branch-and-bound relaxation (DeepMAD) gives the same bound through Clarabel directly as through
    cvxpy's solve, at the root and in a sub-box with fixed depths."""
    space = get_space(name)
    prog = DeepMADProgram(space, space.budget)
    fast, slow = _Relaxation(prog, "CLARABEL"), _Relaxation(prog, "CLARABEL")
    slow.compiled = slow.compiled_tighten = None  # cvxpy's own solve
    root = _root(prog)
    sub = root._replace(lo=(1,) * prog.n, hi=(1,) + (4,) * (prog.n - 1))
    for node in (root, sub):
        a, b = fast.solve(node), slow.solve(node)
        assert math.isfinite(a[0]) and fast.last_status == "optimal"
        # cvxpy hands Clarabel explicit zeros, which change its path: at times only "optimal_inaccurate",
        # whose bound the solver shades up by 1e-3
        assert slow.last_status in ("optimal", "optimal_inaccurate")
        assert a[0] == pytest.approx(b[0], rel=1e-5 if slow.last_status == "optimal" else 1.1e-3)


def test_compiled_refuses_a_problem_that_is_not_dpp() -> None:
    """A non-DPP problem's compiled data would hold its parameters' values at compilation: refused."""
    x, p = cp.Variable(), cp.Parameter(nonneg=True)
    with pytest.raises(ValueError, match="DPP"):
        CompiledProblem(cp.Problem(cp.Minimize(p * cp.quad_over_lin(x, p + 1.0)), [x >= 1]))


def test_cvxpy_is_imported_without_scipy_stats_and_its_entropy_still_works() -> None:
    """import_cvxpy leaves scipy.stats unimported (~0.35 s of a command-line solve); cvxpy's one use of it,
    ``entropy``, calls the real function, and scipy.stats imported afterwards is the real module."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from archsearch.solvers.conic import import_cvxpy\n"
        "cp = import_cvxpy()\n"
        "assert 'cvxpy' in sys.modules and 'scipy.stats' not in sys.modules\n"
        "from cvxpy.atoms.quantum_rel_entr import entropy\n"
        "assert abs(entropy([0.5, 0.5]) - 0.6931471805599453) < 1e-12\n"
        "import scipy.stats\n"
        "assert type(scipy.stats).__name__ == 'module' and scipy.stats.norm.cdf(0.0) == 0.5\n"
        "import numpy as np\n"
        "x = cp.Variable(2)\n"
        "cp.Problem(cp.Minimize(cp.sum_squares(x - np.array([1.0, 2.0])))).solve(solver='CLARABEL')\n"
        "assert np.allclose(x.value, [1.0, 2.0], atol=1e-6)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
