"""The DeepMAD program and its branch-and-bound: exact evaluator, brute force on small spaces, bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch import cost
from archsearch.objectives import deepmad_score
from archsearch.solvers import (
    DeepMADProgram, DeepMADSolver, Design, SolveResult, brute_force, relative_gap, solve_deepmad,
)
from archsearch.space import Budget, SearchSpace, get_space

PUBLISHED_R50 = Design(32, (128, 512, 872, 1024, 1232), (40, 48, 88, 104, 120), (5,) * 5, (1, 11, 12, 13, 15))


@st.composite
def designs(draw, prog: DeepMADProgram) -> Design:
    sp, m = prog.space, prog.m
    c0 = draw(st.sampled_from(range(max(8, sp.stem_widths[0]), min(64, sp.stem_widths[1]) + 1, m)))
    cs, bs, prev = [], [], c0
    for _ in range(prog.n):
        c = draw(st.sampled_from(range(prev, min(4 * prev, prev + 64, sp.widths[1]) + 1, m)))
        lo, hi = prog.b_range(c)
        bs.append(draw(st.sampled_from(range(lo, min(hi, lo + 64) + 1, m))))
        cs.append(c)
        prev = c
    ks = tuple(draw(st.sampled_from(sp.kernels)) for _ in cs)
    Ls = tuple(draw(st.integers(1, 2 if i == 0 else 4)) for i in range(prog.n))
    return Design(c0, tuple(cs), tuple(bs), ks, Ls)


PROGRAMS = [DeepMADProgram(get_space(n), get_space(n).budget) for n in ("deepmad-r50", "deepmad-mbv2", "deepmad-cifar")]
PROGRAMS.append(DeepMADProgram(get_space("deepmad-mbv2").replace(se=True), get_space("deepmad-mbv2").budget))


@pytest.mark.parametrize("prog", PROGRAMS, ids=["r50", "mbv2", "cifar", "mbv2-se"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_evaluator_equals_cost_model_and_objective(prog: DeepMADProgram, data: st.DataObject) -> None:
    d = data.draw(designs(prog))
    assert prog.is_valid(d)
    ev, spec = prog.evaluate(d), prog.to_spec(d)
    c = cost.costs(spec)
    assert (ev.macs, ev.params, ev.memory) == (c["macs"], c["params"], c["activation_memory"])
    sc = deepmad_score(spec, penalty_skip=prog.space.penalty_skip)
    assert ev.score == pytest.approx(sc.score, rel=1e-12) and ev.rho == pytest.approx(sc.rho, rel=1e-12)
    assert prog.from_spec(spec) == d


def test_published_r50_is_feasible_at_its_budget() -> None:
    space = get_space("deepmad-r50")
    ev = DeepMADProgram(space, space.budget).evaluate(PUBLISHED_R50)
    assert (ev.params, ev.macs) == (24_208_144, 4_041_529_408)
    assert ev.feasible and ev.rho == pytest.approx(0.29975, abs=1e-5)


def _tiny(block: str, **kw) -> SearchSpace:
    base = dict(name="tiny", block=block, resolution=16, num_classes=10, strides=(1, 2), stem_widths=(8, 16), widths=(8, 32),
                kernels=(3, 5), depths=(1, 3), first_depth_max=2, rho0=0.5, penalty_skip=0)
    if block == "k1kxk1":
        base.update(bottleneck_ratio=(0.25, 1.0), budget=Budget(macs=600_000, params=20_000))
    else:
        base.update(bottleneck_ratio=(1.0, 3.0), budget=Budget(macs=400_000, params=8_000))
    base.update(kw)
    return SearchSpace(**base)


def _all_designs(prog: DeepMADProgram):
    sp, m = prog.space, prog.m
    widths = range(sp.widths[0], sp.widths[1] + 1, m)
    for c0 in range(sp.stem_widths[0], sp.stem_widths[1] + 1, m):
        for cs in itertools.product(widths, repeat=prog.n):
            inner = [range(prog.b_range(c)[0], prog.b_range(c)[1] + 1, m) for c in cs]
            for bs in itertools.product(*inner):
                for ks in itertools.product(sp.kernels, repeat=prog.n):
                    depth_ranges = [range(1, (sp.first_depth_max if i == 0 else sp.depths[1]) + 1) for i in range(prog.n)]
                    for Ls in itertools.product(*depth_ranges):
                        yield Design(c0, cs, bs, ks, Ls)


CASES = [("k1kxk1", {}, True), ("k1kxk1", {}, False), ("k1dwk1", {}, True), ("k1dwk1", {}, False),
         ("k1kxk1", {"rho0": 0.3}, True)]


@pytest.mark.parametrize("block, changes, penalty", CASES)
def test_solver_matches_brute_force_on_small_spaces(block: str, changes: dict, penalty: bool) -> None:
    space = _tiny(block, **changes)
    prog = DeepMADProgram(space, space.budget, depth_penalty=penalty)
    best = brute_force(prog, _all_designs(prog))
    assert best is not None
    res = DeepMADSolver(time_limit=60).solve(space, space.budget, depth_penalty=penalty)
    assert res.status == "optimal"
    assert res.best.score == pytest.approx(best[1].score, rel=1e-9)
    assert res.bound >= best[1].score - 1e-6
    assert res.best.macs <= space.budget.macs and res.best.params <= space.budget.params
    assert res.best.rho <= space.rho0 + 1e-12


def test_solver_respects_a_binding_memory_budget() -> None:
    space = _tiny("k1kxk1")
    free = DeepMADProgram(space, space.budget)
    unconstrained = brute_force(free, _all_designs(free))
    limit = int(0.8 * unconstrained[1].memory)
    budget = space.budget.replace(memory=limit)
    prog = DeepMADProgram(space, budget)
    best = brute_force(prog, _all_designs(prog))
    res = DeepMADSolver(time_limit=60).solve(space, budget)
    assert res.status == "optimal" and res.best.score == pytest.approx(best[1].score, rel=1e-9)
    assert res.best.extra["memory"] <= limit < unconstrained[1].memory


def test_infeasible_budget_reports_the_smallest_costs() -> None:
    res = solve_deepmad(get_space("deepmad-cifar"), Budget(macs=1000, params=100), time_limit=10)
    assert res.status == "infeasible" and res.candidates == []
    assert isinstance(res.smallest["macs"], int) and res.smallest["macs"] > 1000
    assert isinstance(res.smallest["params"], int) and res.smallest["params"] > 100


def test_result_dict_contract_and_gap() -> None:
    res = solve_deepmad(_tiny("k1dwk1"), time_limit=30, top_k=3)
    obj = res.to_dict()
    assert set(obj) == {"status", "space", "budget", "bound", "gap", "time_s", "candidates"}
    assert all({"spec", "score", "macs", "params", "rho"} <= set(c) for c in obj["candidates"])
    scores = [c["score"] for c in obj["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert relative_gap(10.0, 10.0) == 0.0 and relative_gap(10.0, 9.0) == pytest.approx(0.1)
    assert relative_gap(float("inf"), 1.0) == float("inf")
    assert isinstance(res, SolveResult)
