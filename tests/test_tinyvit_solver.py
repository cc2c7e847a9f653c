"""TinyViT contraction: the space, the exact solver against brute force, the published budgets, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archsearch.cli.main import main
from archsearch.cost import costs
from archsearch.errors import SpecError
from archsearch.objectives import tinyvit_capacity
from archsearch.solvers import (
    INFEASIBLE, OPTIMAL, ContractionProgram, TinyViTContractionSolver, brute_force_contraction, get_solver,
)
from archsearch.space import (
    TINYVIT_5M, TINYVIT_11M, TINYVIT_21M, Budget, TinyViTSpec, get_space, list_spaces, load_spec,
)
from archsearch.space.tinyvit_templates import TINYVIT_5M_BUDGET, TINYVIT_11M_BUDGET, TinyViTSpace

SEED = TinyViTSpec(embed_dims=(64, 96, 128), depths=(2, 2, 3), window_sizes=(7, 4, 7), num_classes=10)
# 1728 designs before the monotone rule; sides 16, 8, 4 at 64 px, so windows 7 > 4 pad
SMALL = TinyViTSpace(name="tiny-test", seed=SEED, resolution=64, num_classes=10, windows=(2, 4, 7),
                     depths=((1, 2), (1, 2), (1, 3)))


def _solver(**kw) -> TinyViTContractionSolver:
    return get_solver("tinyvit-contract")(gap_tol=1e-3, time_limit=30.0, **kw)


@pytest.fixture(scope="module")
def all_small() -> list:
    return brute_force_contraction(SMALL, Budget())


def _quantile(values: list[int], q: float) -> int:
    values = sorted(values)
    return values[int(q * (len(values) - 1))]


# ---------------------------------------------------------------- space


def test_registered_spaces():
    space = get_space("tinyvit")
    assert isinstance(space, TinyViTSpace) and space.family == "tinyvit" and space.solver == "tinyvit-contract"
    assert space.budget_counts == "model" and space.budget == TINYVIT_11M_BUDGET and space.seed == TINYVIT_21M
    assert space.dim_choices(3) == tuple(range(32, 577, 32)) and space.window_choices(2) == (7, 14)
    assert space.depth_choices(2) == (6,)
    deep = get_space("tinyvit-depth")
    assert deep.depth_choices(2) == (2, 3, 4, 5, 6) and deep.size() > space.size()
    assert get_space("tinyvit").summary()["family"] == "tinyvit"


def test_published_models_lie_in_the_space_within_their_budgets():
    space = get_space("tinyvit")
    for pub, budget in ((TINYVIT_11M, TINYVIT_11M_BUDGET), (TINYVIT_5M, TINYVIT_5M_BUDGET)):
        spec = space.make_spec(pub.embed_dims, pub.depths, pub.window_sizes, name=pub.name)
        assert spec == pub
        assert all(d in space.dim_choices(i) for i, d in enumerate(pub.embed_dims))
        c = costs(spec)
        assert (c["params_with_head"], c["macs_with_head"]) == (budget.params, budget.macs)


@pytest.mark.parametrize("changes, field", [
    (dict(dim_step=20), "dim_step"),
    (dict(min_dim=0), "min_dim"),
    (dict(min_dim=128), "min_dim"),
    (dict(windows=()), "windows"),
    (dict(windows=(7, 0)), "windows"),
    (dict(depths=((1, 2),)), "depths"),
    (dict(depths=((1, 2), (1, 2), (1, 9))), "depths.2."),
    (dict(budget_counts="backbone"), "budget_counts"),
    (dict(seed="tinyvit-21m"), "seed"),
])
def test_bad_spaces_name_the_field(changes, field):
    with pytest.raises(SpecError, match=f"space.{field}"):
        TinyViTSpace(name="x", **{**dict(seed=SEED), **changes})


@pytest.mark.parametrize("name", [n for n in list_spaces() if get_space(n).family == "tinyvit"])
def test_every_tinyvit_space_solves_at_its_default_budget(name):
    space = get_space(name)
    solver_cls = get_solver(space.solver)
    assert space.family in solver_cls.families and solver_cls.gives_bound
    res = solver_cls(gap_tol=1e-3, time_limit=30.0).solve(space, space.budget, top_k=2)
    assert res.status == OPTIMAL and res.space == name and res.bound == res.best.score
    for cand in res.candidates:
        assert cand.spec.family == "tinyvit" and cand.params <= space.budget.params and cand.macs <= space.budget.macs


# ---------------------------------------------------------------- solver vs brute force


@pytest.mark.parametrize("q_params, q_macs, q_mem", [
    (1.0, 1.0, None), (0.5, 0.5, None), (0.2, 0.8, None), (0.8, 0.1, None), (0.05, 0.05, None),
    (None, 0.3, None), (0.3, None, None), (1.0, 1.0, 0.3), (0.6, 0.4, 0.5),
])
def test_solver_equals_brute_force(all_small, q_params, q_macs, q_mem):
    budget = Budget(
        params=_quantile([c.params for c in all_small], q_params) if q_params is not None else None,
        macs=_quantile([c.macs for c in all_small], q_macs) if q_macs is not None else None,
        memory=_quantile([c.extra["activation_memory"] for c in all_small], q_mem) if q_mem is not None else None,
    )
    brute = brute_force_contraction(SMALL, budget)
    assert brute, "every quantile budget admits the design that sets it"
    res = _solver().solve(SMALL, budget, top_k=4)
    assert res.status == OPTIMAL and res.gap == 0.0
    assert res.bound >= brute[0].score - 1e-9
    assert [c.score for c in res.candidates] == pytest.approx([c.score for c in brute[:4]], abs=1e-9)
    best = res.candidates[0]
    assert best.params <= (budget.params or best.params) and best.macs <= (budget.macs or best.macs)
    assert best.extra["activation_memory"] <= (budget.memory or best.extra["activation_memory"])
    for cand in res.candidates:
        c = costs(cand.spec)
        assert (cand.params, cand.macs) == (c["params_with_head"], c["macs_with_head"])
        assert cand.score == pytest.approx(tinyvit_capacity(cand.spec), abs=1e-12)
        assert list(cand.spec.embed_dims) == sorted(cand.spec.embed_dims)
        assert all(h * 32 == d for h, d in zip(cand.spec.num_heads, cand.spec.embed_dims))


def test_program_tables_equal_the_cost_model(all_small):
    """The solver's stage tables summed along a design give the cost model's totals."""
    prog = ContractionProgram(SMALL, Budget())
    for cand in all_small[::97]:
        spec = cand.spec
        picks, a, p, m = [], 0, 0.0, 0.0
        for i, t in enumerate(prog.tables):
            (c,) = [c for c in range(len(t.dims)) if (t.dims[c], t.depths[c]) == (spec.embed_dims[i], spec.depths[i])
                    and (i == 0 or t.windows[c] == spec.window_sizes[i])]
            p, m, a = p + t.params[a, c], m + t.macs[a, c], int(t.out_index[c])
            picks.append(c)
        assert (int(p), int(m)) == (cand.params, cand.macs)
        assert prog.design(tuple(picks)).embed_dims == spec.embed_dims


def test_smallest_and_infeasible(all_small):
    res = _solver().solve(SMALL, Budget(params=1000))
    assert res.status == INFEASIBLE and res.candidates == [] and res.best is None
    assert res.smallest == {"params": min(c.params for c in all_small), "macs": min(c.macs for c in all_small)}
    mem = min(c.extra["activation_memory"] for c in all_small)
    res = _solver().solve(SMALL, Budget(memory=mem - 4))
    assert res.status == INFEASIBLE and res.smallest["memory"] == mem


def test_other_resolution_equals_brute_force():
    budget = Budget(macs=40_000_000)
    brute = brute_force_contraction(SMALL, budget, resolution=96)
    res = _solver().solve(SMALL, budget, top_k=2, resolution=96)
    assert res.candidates[0].spec.resolution == 96
    assert [c.score for c in res.candidates] == pytest.approx([c.score for c in brute[:2]], abs=1e-9)


def test_time_limit_keeps_a_valid_bound():
    space = get_space("tinyvit-depth")
    exact = _solver().solve(space, TINYVIT_5M_BUDGET, top_k=1)
    res = TinyViTContractionSolver(time_limit=1e-9).solve(space, TINYVIT_5M_BUDGET, top_k=50)
    assert res.best is not None and res.bound >= exact.best.score - 1e-9
    assert res.gap == pytest.approx((res.bound - res.best.score) / abs(res.bound), abs=1e-12)


def test_bad_inputs():
    solver = _solver()
    with pytest.raises(SpecError, match="archsearch calibrate --space tiny-test"):
        solver.solve(SMALL, Budget(latency_ms=3.0))  # no calibration of the space
    with pytest.raises(SpecError, match="top_k"):
        solver.solve(SMALL, Budget(), top_k=0)
    with pytest.raises(SpecError, match="resolution"):
        solver.solve(SMALL, Budget(), resolution=4)
    with pytest.raises(SpecError, match="TinyViT spaces"):
        solver.solve(get_space("deepmad-cifar"), Budget())
    with pytest.raises(SpecError, match="time_limit"):
        TinyViTContractionSolver(time_limit=0)


# ---------------------------------------------------------------- contraction of the 21M model

# The optima the module docstring of archsearch.solvers.tinyvit reports, against the published models.
CONTRACTIONS = {
    "11m": (TINYVIT_11M_BUDGET, TINYVIT_11M, (64, 128, 256, 384), (7, 14, 14, 7), 9_582_208, 2_005_849_728),
    "5m": (TINYVIT_5M_BUDGET, TINYVIT_5M, (64, 96, 192, 224), (7, 14, 14, 7), 4_620_446, 1_254_901_536),
}


@pytest.mark.parametrize("which", sorted(CONTRACTIONS))
def test_contracting_the_21m_seed_to_published_budgets(which):
    budget, published, dims, windows, params, macs = CONTRACTIONS[which]
    space = get_space("tinyvit")
    res = _solver().solve(space, budget, top_k=3)
    assert res.status == OPTIMAL and res.gap == 0.0 and res.stats.solve_time_s < 5
    best = res.best
    assert best.params <= budget.params and best.macs <= budget.macs
    assert best.spec.embed_dims == dims and best.spec.window_sizes == windows
    assert (best.params, best.macs) == (params, macs)
    # published: same depths, windows (7, 7, 14, 7); the optimum widens the stage-2 window
    assert published.window_sizes == (7, 7, 14, 7) and best.spec.window_sizes[1] == 14
    assert best.spec.num_heads == tuple(d // 32 for d in dims) and best.spec.depths == (2, 2, 6, 2)
    # the published model is feasible, so the optimum scores at least as high; it differs from it
    assert best.score > tinyvit_capacity(published) and best.spec.embed_dims != published.embed_dims


def test_contraction_equals_brute_force_on_the_full_space():
    """The whole default space (31,104 designs) enumerated at the 11M budget."""
    space = get_space("tinyvit")
    brute = brute_force_contraction(space, TINYVIT_11M_BUDGET)
    res = _solver().solve(space, TINYVIT_11M_BUDGET, top_k=5)
    assert [c.score for c in res.candidates] == pytest.approx([c.score for c in brute[:5]], abs=1e-9)


# ---------------------------------------------------------------- command line


def test_cli_solve_json_and_show_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["solve", "--space", "tinyvit", "--budget", "params=11M,macs=2G", "--format", "json", "--top-k", "2"])
    obj = json.loads(capsys.readouterr().out)
    assert code == 0 and obj["status"] == "optimal" and obj["gap"] == 0.0
    best = obj["candidates"][0]
    assert best["params"] <= 11_000_000 and best["macs"] <= 2_000_000_000 and best["rho"] is None
    assert best["score"] == pytest.approx(obj["bound"])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(best["spec"]))
    assert load_spec(path).family == "tinyvit"
    code = main(["show", str(path), "--verify", "--format", "json"])
    info = json.loads(capsys.readouterr().out)
    assert code == 0 and info["verified"] is True
    assert info["params_with_head"] == best["params"] and info["macs_with_head"] == best["macs"]


def test_cli_infeasible_and_refused_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--space", "tinyvit", "--budget", "params=100K"]) == 2
    assert "smallest feasible design" in capsys.readouterr().err
    assert main(["solve", "--space", "tinyvit", "--budget", "latency=3ms"]) == 2
    assert "run `archsearch calibrate --space tinyvit` first" in capsys.readouterr().err
    assert main(["solve", "--space", "tinyvit", "--rho", "0.3"]) == 2


def test_solver_stack_does_not_import_torch():
    code = ("import sys, archsearch.solvers, archsearch.space; from archsearch.space import get_space; "
            "get_space('tinyvit'); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
