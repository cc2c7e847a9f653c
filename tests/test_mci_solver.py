"""The MCi space, objective and solver: brute force on small spaces, budgets, infeasibility, errors."""

from __future__ import annotations

import dataclasses
import functools
import math
import subprocess
import sys

import pytest

from archsearch.cost import mci_activation_memory, mci_macs, mci_params
from archsearch.errors import SpecError
from archsearch.objectives import mci_score
from archsearch.solvers import INFEASIBLE, OPTIMAL, MCiSolver, brute_force_mci, get_solver, solve_mci
from archsearch.solvers.mci import smallest_costs, width_table
from archsearch.space import Budget, get_space, mci_template
from archsearch.space.mci_templates import MCiSpace

# 3 first widths x ratios {1, 2}^3 (96 x 4 x 4 x 4 > max_dim dropped) x 2*3*3*2 depths, 64 px
SMALL = MCiSpace(name="mci-small", resolution=64, first_dims=(32, 64), width_ratios=(1, 2), max_dim=512,
                 depths=((1, 2), (1, 3), (1, 3), (1, 2)))


@functools.cache
def _all_costs(space: MCiSpace) -> list[tuple[int, int]]:
    """(MACs, params) of every design of the space, rho ignored."""
    return [(mci_macs(s, with_head=True), mci_params(s, with_head=True))
            for _, s in brute_force_mci(space, Budget(params=10**12), rho0=100.0)]


@pytest.mark.parametrize("rho0", [None, 1.5, 100.0])
@pytest.mark.parametrize("fraction", [0.3, 0.7])
def test_solver_equals_brute_force(rho0: float | None, fraction: float) -> None:
    costs = sorted(_all_costs(SMALL))
    macs, params = costs[int(fraction * (len(costs) - 1))]
    budget = Budget(macs=macs, params=int(params * 1.1))
    ref = brute_force_mci(SMALL, budget, rho0=rho0)
    res = MCiSolver().solve(SMALL, budget, top_k=4, rho0=rho0)
    if not ref:
        assert res.status == INFEASIBLE and res.smallest
        return
    assert res.status == OPTIMAL and res.gap == 0.0
    assert res.bound >= ref[0][0] - 1e-9
    assert math.isclose(res.best.score, ref[0][0], rel_tol=1e-12)
    assert [round(c.score, 6) for c in res.candidates] == [round(s, 6) for s, _ in ref[:4]]
    for c in res.candidates:  # exact, feasible, and scored by the objective
        assert c.macs == mci_macs(c.spec, with_head=True) <= budget.macs
        assert c.params == mci_params(c.spec, with_head=True) <= budget.params
        sc = mci_score(c.spec)
        assert c.score == pytest.approx(sc.score) and c.rho == pytest.approx(sc.rho)
        assert sc.rho <= (rho0 or SMALL.rho0) + 1e-9


def test_memory_budget_equals_brute_force() -> None:
    mems = sorted({mci_activation_memory(s) for _, s in brute_force_mci(SMALL, Budget(params=10**12))})
    budget = Budget(memory=mems[len(mems) // 2], macs=10**12)
    ref = brute_force_mci(SMALL, budget)
    res = MCiSolver().solve(SMALL, budget, top_k=2)
    assert math.isclose(res.best.score, ref[0][0], rel_tol=1e-12)
    assert mci_activation_memory(res.best.spec) <= budget.memory


def test_width_tables_are_exact_affine_forms() -> None:
    for dims in SMALL.dim_choices()[:4]:
        t = width_table(SMALL, dims)
        for depths in [(2, 3, 1, 2), (1, 2, 3, 1)]:
            spec = SMALL.make_spec(dims, depths)
            off = [d - lo for d, lo in zip(depths, t.lo)]
            assert mci_macs(spec, with_head=True) == t.macs0 + sum(o * s for o, s in zip(off, t.macs_step))
            assert mci_params(spec, with_head=True) == t.params0 + sum(o * s for o, s in zip(off, t.params_step))
            assert mci_score(spec).score == pytest.approx(t.score0 + sum(o * s for o, s in zip(off, t.score_step)))
            assert mci_activation_memory(spec) == t.memory


def test_dim_choices_follow_the_rules() -> None:
    space = get_space("mci")
    choices = space.dim_choices()
    assert (64, 128, 256, 512) in choices and (80, 160, 320, 640) in choices
    for dims in choices:
        assert all(d % 16 == 0 and d <= space.max_dim for d in dims)
        assert all(b % a == 0 and b >= a for a, b in zip(dims, dims[1:]))
        assert dims[-1] % 32 == 0


@pytest.mark.parametrize("name", ["mci0", "mci1", "mci2"])
def test_template_budgets(name: str) -> None:
    """At each template's budget the optimum fits and scores at least the template."""
    space = get_space("mci")
    tpl = mci_template(name)
    budget = Budget(macs=mci_macs(tpl, with_head=True), params=mci_params(tpl, with_head=True))
    res = solve_mci(space, budget, top_k=1)
    assert res.status == OPTIMAL and res.gap == 0.0
    best = res.best
    assert best.macs <= budget.macs and best.params <= budget.params
    assert best.score >= mci_score(tpl).score  # the template is a feasible point of the space
    assert mci_score(tpl).rho <= space.rho0
    assert set(best.extra) >= {"macs_inference", "params_inference", "memory", "stage_entropy"}
    inference = dataclasses.replace(best.spec, reparameterized=True)
    assert best.extra["params_inference"] == mci_params(inference, with_head=True) < best.params


def test_infeasible_budget_reports_the_smallest_design() -> None:
    res = MCiSolver().solve(SMALL, Budget(params=1000), top_k=3)
    assert res.status == INFEASIBLE and res.candidates == [] and res.bound == -math.inf
    small = smallest_costs(SMALL)
    assert res.smallest == small
    allc = _all_costs(SMALL)
    rho_ok = [(mci_macs(s, with_head=True), mci_params(s, with_head=True)) for _, s in brute_force_mci(SMALL, Budget(params=10**12))]
    assert small == {"macs": min(m for m, _ in rho_ok), "params": min(p for _, p in rho_ok)}
    assert min(p for _, p in allc) <= small["params"]


def test_registry_and_cli_contract() -> None:
    space = get_space("mci")
    assert space.family == "mci" and space.budget_counts == "model" and space.resolution == 256
    cls = get_solver(space.solver)
    assert cls is MCiSolver and cls.families == ("mci",) and cls.gives_bound and cls.options == ("rho0",)
    solver = cls(gap_tol=1e-3, time_limit=30.0)
    res = solver.solve(SMALL, Budget(macs=300_000_000), top_k=2, resolution=48)
    assert res.best.spec.resolution == 48


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(budget=Budget(latency_ms=3.0)), "archsearch calibrate --space mci-small"),
    (dict(budget=Budget()), "give at least one"),
    (dict(budget=Budget(macs=10**9), rho0=0.0), r"rho0: expected a number in \(0, 100\]"),
    (dict(budget=Budget(macs=10**9), top_k=0), "top_k: expected an integer >= 1"),
])
def test_bad_solve_input(kwargs: dict, match: str) -> None:
    budget = kwargs.pop("budget")
    with pytest.raises(SpecError, match=match):
        MCiSolver().solve(SMALL, budget, **kwargs)


@pytest.mark.parametrize(("changes", "match"), [
    (dict(first_dims=(40, 64)), "first_dims: expected 0 < lo <= hi, both multiples"),
    (dict(width_ratios=(0, 2)), "width_ratios: expected integers >= 1"),
    (dict(depths=((1, 2), (1, 3))), r"depths: expected 4 ranges"),
    (dict(depths=((1, 2), (3, 2), (1, 3), (1, 2))), r"depths: expected 4 ranges"),
    (dict(template="mci9"), "template: expected one of"),
    (dict(budget_counts="backbone"), "counts the whole model"),
    (dict(rho0=-1.0), "rho0"),
])
def test_bad_space(changes: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        dataclasses.replace(SMALL, **changes)


def test_solver_imports_no_torch() -> None:
    code = "import archsearch.solvers, archsearch.space, sys; archsearch.space.get_space('mci'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- latency budgets ---------------------------------------------------------------------------------------------

def _mci_latency_model(space):
    from archsearch.cost.latency import LatencyModel, latency_model_path

    coefs = {u: (0.05, 0.02, 0.01, 0.03, 0.2, 0.05) for u in ("mci_stem", "mci_down", "mci_repmixer", "mci_attention", "mci_final")}
    model = LatencyModel(space.name, "cpu", "test cpu", "0", 1, 1, space.resolution, coefs, {u: {"n": 4.0} for u in coefs})
    model.save(latency_model_path(space.name))
    return model


def test_mci_units_sum_to_the_cost_model() -> None:
    from archsearch.cost.latency import mci_unit_keys, mci_units

    for dims in SMALL.dim_choices()[:6]:
        for depths in ((1,) * len(SMALL.depths), tuple(hi for _, hi in SMALL.depths)):
            spec = SMALL.make_spec(dims, depths)
            units = list(mci_units(spec))
            assert [u for u, _ in units] == [k[0] for k in mci_unit_keys(spec)]
            assert sum(f[1] + f[2] + f[3] for _, f in units) * 1e6 == pytest.approx(mci_macs(spec, with_head=True), rel=1e-12)
            assert sum(f[5] for _, f in units) * 1e6 == pytest.approx(mci_params(spec, with_head=True), rel=1e-12)


def test_solver_matches_brute_force_with_a_binding_latency_budget() -> None:
    from archsearch.cost.latency import predict_latency

    model = _mci_latency_model(SMALL)
    free = brute_force_mci(SMALL, Budget(params=10**12))
    limit = 0.8 * predict_latency(free[0][1], model)
    budget = Budget(latency_ms=limit)
    brute = brute_force_mci(SMALL, budget)
    assert brute and brute[0][0] < free[0][0]  # the latency budget binds
    res = MCiSolver().solve(SMALL, budget, top_k=3)
    assert res.status == OPTIMAL and res.best.score == pytest.approx(brute[0][0], rel=1e-12)
    assert res.bound >= brute[0][0] - 1e-9 and "latency" in res.stats.extra["bound_covers"]
    assert all(c.extra["latency_ms"] <= limit * (1 + 1e-12) for c in res.candidates)
    tight = MCiSolver().solve(SMALL, Budget(latency_ms=1e-6), top_k=1)
    assert tight.status == INFEASIBLE and tight.smallest["latency_ms"] > 1e-6


def test_calibrate_an_mci_space_times_units_inside_built_models() -> None:
    torch = pytest.importorskip("torch")
    from archsearch.cost.latency import LatencyModel, latency_model_path, predict_latency
    from archsearch.train.latency import calibrate_space

    torch.set_num_threads(1)
    model = calibrate_space(SMALL, samples=10, runs=2, warmup=1, models=2, seed=1)
    assert set(model.coefs) == {"mci_stem", "mci_down", "mci_repmixer", "mci_attention", "mci_final"}
    assert LatencyModel.load(latency_model_path("mci-small")) == model
    assert predict_latency(SMALL.make_spec(SMALL.dim_choices()[0], (1, 1, 1, 1)), model) > 0
