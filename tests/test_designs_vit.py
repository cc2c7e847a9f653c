"""Designs no program chose for the transformer families: baselines, random designs, scores (vit, tinyvit, stvit, mci)."""

from __future__ import annotations

import json
import math

import pytest

from archsearch.cli.main import main
from archsearch.errors import SpecError
from archsearch.solvers import get_solver
from archsearch.solvers.designs import _FAMILIES, _load_builtin, baseline, reference_design, sample, score_spec
from archsearch.space import Budget, get_space, list_spaces

SPACES = [name for name in list_spaces() if get_space(name).family != "cnn"]
FAMILIES = sorted({get_space(name).family for name in SPACES})


def _fits(cand, budget: Budget) -> bool:
    return all(limit is None or value <= limit for value, limit in
               ((cand.macs, budget.macs), (cand.params, budget.params), (cand.extra.get("memory"), budget.memory)))


def _ident(cand) -> str:
    return json.dumps(cand.spec.to_dict() | {"name": ""}, sort_keys=True)


def test_every_transformer_family_has_designs() -> None:
    _load_builtin()
    assert {"vit", "tinyvit", "stvit", "mci"} <= set(FAMILIES) and set(FAMILIES) <= set(_FAMILIES)


@pytest.mark.parametrize("name", SPACES)
def test_baseline_is_the_largest_grid_scaling_that_fits(name: str) -> None:
    space = get_space(name)
    cand = baseline(space, space.budget)
    assert _fits(cand, space.budget) and cand.extra["fits_budget"] and cand.extra["kind"] == "baseline"
    m = cand.extra["multiplier"]
    j = round(math.log(m) / math.log(1.01))
    assert m == pytest.approx(1.01**j, rel=1e-5)
    bigger = _FAMILIES[space.family].scale(space, reference_design(space), "uniform", 1.01 ** (j + 1))
    # the next grid multiplier leaves the space or breaks a budget (bisection over monotone costs)
    assert bigger is None or not score_spec(space, bigger).extra["fits_budget"]
    assert _ident(baseline(space, space.budget, scale="width")) == _ident(cand)  # no separate stem: width = uniform


@pytest.mark.parametrize("name", SPACES)
def test_sample_draws_feasible_members_deterministically(name: str) -> None:
    space = get_space(name)
    first = sample(space, space.budget, 3, seed=0)
    assert len(first) == 3 and len({_ident(c) for c in first}) == 3
    for c in first:
        assert _fits(c, space.budget) and c.extra["rules_ok"] and c.extra["fits_budget"] and c.extra["kind"] == "random"
    assert [c.spec for c in sample(space, space.budget, 3, seed=0)] == [c.spec for c in first]
    assert [c.spec for c in sample(space, space.budget, 3, seed=1)] != [c.spec for c in first]


@pytest.mark.parametrize("name", SPACES)
def test_score_spec_is_what_the_solver_maximised(name: str) -> None:
    space = get_space(name)
    res = get_solver(space.solver)(time_limit=5).solve(space, space.budget, top_k=2)
    assert res.candidates, res.status
    for c in res.candidates:
        got = score_spec(space, c.spec)
        assert got.score == pytest.approx(c.score, rel=1e-9, abs=0)
        assert got.macs == c.macs and got.params == c.params
        assert got.extra["rules_ok"] and got.extra["fits_budget"]
        if c.rho is not None:
            assert got.rho == pytest.approx(c.rho, rel=1e-9)


@pytest.mark.parametrize(("name", "fixed"), [("nvit", "vit"), ("revit-t", "vit"), ("tinyvit", "tinyvit"),
                                             ("stvit", "stvit")])
def test_depth_scaling_is_refused_where_the_space_fixes_depth(name: str, fixed: str) -> None:
    with pytest.raises(SpecError, match=rf"--scale depth: not a scaling of the {fixed} family here .*; accepted: uniform"):
        baseline(get_space(name), scale="depth")


@pytest.mark.parametrize("name", ["tinyvit-depth", "mci"])
def test_depth_baseline_keeps_the_reference_widths(name: str) -> None:
    space = get_space(name)
    cand = baseline(space, scale="depth")
    ref = reference_design(space)
    widths = "embed_dims" if space.family == "tinyvit" else "dims"
    assert getattr(cand.spec, widths) == getattr(ref, widths) and cand.extra["fits_budget"] and cand.extra["rules_ok"]


def test_reference_designs_are_the_cited_networks() -> None:
    from archsearch.space import TINYVIT_21M

    deit = reference_design(get_space("nvit"))
    assert deit.embed_dim == 384 and deit.depth == 12 and {(b.heads, b.qk_dim, b.v_dim, b.mlp_dim) for b in deit.blocks} == {
        (6, 64, 64, 1536)}
    # EMB scaled on the space's grid, heads following: DeiT-T's 192 is revit-t's baseline
    small = baseline(get_space("revit-t")).spec
    assert small.embed_dim == 192 and {(b.heads, b.qk_dim, b.mlp_dim) for b in small.blocks} == {(3, 64, 768)}
    assert reference_design(get_space("tinyvit")).embed_dims == TINYVIT_21M.embed_dims
    st = reference_design(get_space("stvit-tiny"))
    assert (st.embed_dim, st.semantic_layer, st.semantic_layers, st.num_semantic) == (192, 4, 2, 16)
    assert reference_design(get_space("mci")).dims == (64, 128, 256, 512)


def test_rules_reject_designs_outside_the_space() -> None:
    nvit = get_space("nvit")
    ref = score_spec(nvit, reference_design(nvit))
    assert not ref.extra["rules_ok"]  # DeiT-S's 64-wide query/key heads exceed the prior cap EMB / 8 = 48
    assert score_spec(nvit, reference_design(nvit), priors=False).extra["rules_ok"]
    revit = get_space("revit")
    assert score_spec(revit, revit.spec(392)).extra["rules_ok"] and not score_spec(revit, revit.spec(396)).extra["rules_ok"]
    with pytest.raises(SpecError, match=r"options \['rho0'\]: not options of the revit-rule program"):
        score_spec(revit, revit.spec(392), rho0=1.0)
    mci = get_space("mci")
    assert not score_spec(mci, reference_design(mci), rho0=1.0).extra["rules_ok"]  # MCi0's rho is 1.06


def test_spaces_without_a_width_to_repair_sample_uniformly_over_what_fits() -> None:
    space = get_space("revit-t")
    cands = sample(space, space.budget, 8, seed=2)
    assert {c.extra["multiplier"] for c in cands} == {1.0} and all(c.spec.embed_dim <= 192 for c in cands)


def test_published_networks() -> None:
    from archsearch.space import TINYVIT_11M

    assert baseline(get_space("tinyvit"), scale="published").spec == TINYVIT_11M
    assert baseline(get_space("revit-t"), scale="published").spec.embed_dim == 176
    mci = baseline(get_space("mci"), scale="published")
    assert mci.spec.name == "mci0" and mci.extra["fits_budget"]


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_baseline_json(family: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = next(n for n in SPACES if get_space(n).family == family)
    assert main(["baseline", "--space", name, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["space"] == name and out["candidates"][0]["kind"] == "baseline"
