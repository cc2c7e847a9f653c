"""The ReViT rule (block by block), its spaces and the exact one-dimensional solver."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from archsearch.cli.main import main
from archsearch.cost.vit import vit_activation_memory, vit_macs, vit_params
from archsearch.errors import SpecError
from archsearch.solvers import INFEASIBLE, OPTIMAL, get_solver
from archsearch.solvers.revit import ReViTRuleSolver
from archsearch.space import Budget, ReViTSpace, ViTBlockSpec, get_space, list_spaces, revit_blocks, revit_spec
from archsearch.space.vit_templates import round_to_multiple

REVIT_SPACES = [n for n in list_spaces() if get_space(n).solver == "revit-rule"]


def expand(first3: ViTBlockSpec, wide: ViTBlockSpec, ends: ViTBlockSpec | None = None) -> tuple[ViTBlockSpec, ...]:
    """Blocks 1-3 and 10-12 narrow, 4-9 wide; optionally other first and last blocks."""
    blocks = [first3] * 3 + [wide] * 6 + [first3] * 3
    if ends is not None:
        blocks[0] = blocks[-1] = ends
    return tuple(blocks)


# the rule


@pytest.mark.parametrize("emb, rounding, end_heads, expected", [
    # ReViT-S: H = 3.84 / 7.68, QK = 19.2 / 38.4, MLP 1152 / 2304
    (384, "nearest", None, expand(ViTBlockSpec(4, 16, 64, 1152), ViTBlockSpec(8, 40, 64, 2304))),
    (384, "down", None, expand(ViTBlockSpec(2, 16, 64, 1152), ViTBlockSpec(6, 32, 64, 2304))),
    (384, "nearest", 10, expand(ViTBlockSpec(4, 16, 64, 1152), ViTBlockSpec(8, 40, 64, 2304), ViTBlockSpec(10, 40, 64, 1152))),
    (384, "down", 10, expand(ViTBlockSpec(2, 16, 64, 1152), ViTBlockSpec(6, 32, 64, 2304), ViTBlockSpec(10, 32, 64, 1152))),
    # ReViT-T: H = 1.76 / 3.52, QK = 8.8 / 17.6, MLP 528 / 1056 (down keeps the minimum of 2 heads)
    (176, "nearest", None, expand(ViTBlockSpec(2, 8, 64, 528), ViTBlockSpec(4, 16, 64, 1056))),
    (176, "down", None, expand(ViTBlockSpec(2, 8, 64, 528), ViTBlockSpec(2, 16, 64, 1056))),
    (176, "nearest", 10, expand(ViTBlockSpec(2, 8, 64, 528), ViTBlockSpec(4, 16, 64, 1056), ViTBlockSpec(10, 16, 64, 528))),
])
def test_rule_dims_block_by_block(emb: int, rounding: str, end_heads: int | None, expected: tuple) -> None:
    assert revit_blocks(emb, rounding=rounding, end_heads=end_heads) == expected  # type: ignore[arg-type]


def test_rounding_helper() -> None:
    assert round_to_multiple(Fraction(12), 8, "nearest") == 16  # an exact half goes up
    assert round_to_multiple(Fraction(12), 8, "down") == 8
    assert round_to_multiple(Fraction(19, 1), 8, "nearest") == 16 and round_to_multiple(Fraction(21), 8, "nearest") == 24
    assert round_to_multiple(Fraction(3, 10), 2, "nearest") == 2 and round_to_multiple(Fraction(1), 2, "down") == 2
    # EMB 300: H = 3 sits half-way between 2 and 4 -> 4 (nearest), 2 (down)
    assert revit_blocks(300)[0].heads == 4 and revit_blocks(300, rounding="down")[0].heads == 2
    with pytest.raises(SpecError, match="rounding"):
        round_to_multiple(Fraction(3), 2, "up")  # type: ignore[arg-type]


def test_rule_options() -> None:
    blocks = revit_blocks(200, depth=6, wide_blocks=(2, 3), v_dim=32)
    assert [b.mlp_dim for b in blocks] == [600, 1200, 1200, 600, 600, 600] and {b.v_dim for b in blocks} == {32}
    with pytest.raises(SpecError, match="wide_blocks"):
        revit_blocks(384, wide_blocks=(0, 4))
    with pytest.raises(SpecError, match="end_heads"):
        revit_blocks(384, end_heads=0)


@pytest.mark.parametrize("emb, rounding, end_heads, params, macs", [
    (384, "nearest", None, 22_048_360, 4_509_466_368),
    (384, "down", None, 20_127_976, 4_034_964_288),
    (384, "nearest", 10, 23_156_392, 4_783_217_568),
    (384, "down", 10, 21_358_952, 4_339_132_288),
    (176, "nearest", None, 4_698_360, 986_812_256),
    (176, "down", None, 4_359_288, 882_985_376),
    (176, "nearest", 10, 5_161_784, 1_128_708_992),
    (176, "down", 10, 4_822_712, 1_024_882_112),
])
def test_rule_sizes_against_the_paper(emb: int, rounding: str, end_heads: int | None, params: int, macs: int) -> None:
    """The table of the module docstring (paper: ReViT-S 23 M / 4.7 G, ReViT-T 5.9 M / 1.3 G)."""
    spec = revit_spec(emb, rounding=rounding, end_heads=end_heads)  # type: ignore[arg-type]
    assert (vit_params(spec, with_head=True), vit_macs(spec, with_head=True)) == (params, macs)


def test_reference_variant_is_within_2_percent_of_revit_s_but_not_of_revit_t() -> None:
    s, t = revit_spec(384, end_heads=10), revit_spec(176, end_heads=10)
    assert abs(vit_params(s, with_head=True) / 23e6 - 1) < 0.01 and abs(vit_macs(s, with_head=True) / 4.7e9 - 1) < 0.02
    assert vit_params(t, with_head=True) / 5.9e6 < 0.9 and vit_macs(t, with_head=True) / 1.3e9 < 0.9


@pytest.mark.slow
def test_rule_models_build_with_their_costs() -> None:
    from archsearch.models import measured_costs

    for spec in (revit_spec(384), revit_spec(176, end_heads=10, rounding="down")):
        m = measured_costs(spec)
        assert m["measured_params_with_head"] == vit_params(spec, with_head=True)
        assert m["measured_macs_with_head"] == vit_macs(spec, with_head=True)


# spaces


def test_spaces_are_registered() -> None:
    assert {"revit", "revit-ref", "revit-t"} <= set(REVIT_SPACES)
    revit = get_space("revit")
    assert isinstance(revit, ReViTSpace) and revit.family == "vit" and revit.budget_counts == "model"
    assert revit.budget == Budget(params=23_000_000, macs=4_700_000_000)
    assert revit.end_heads is None and get_space("revit-ref").end_heads == 10
    assert revit.spec(384) == revit_spec(384)


@pytest.mark.parametrize("changes, match", [
    (dict(embed_dims=(60, 400)), "embed_dims"),
    (dict(embed_dims=(400, 64)), "embed_dims"),
    (dict(embed_multiple=0), "embed_multiple"),
    (dict(rounding="up"), "rounding"),
    (dict(end_heads=0), "end_heads"),
    (dict(resolution=220), "patch_size"),
    (dict(wide_blocks=(13,)), "wide_blocks"),
])
def test_bad_space_fields_raise(changes: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        ReViTSpace(name="bad", **changes)


# the solver


def brute_force(space: ReViTSpace, budget: Budget, resolution: int | None = None) -> list[int]:
    """Every feasible EMB, by an independent loop over the grid."""
    out = []
    for emb in range(space.embed_dims[0], space.embed_dims[1] + 1, space.embed_multiple):
        spec = revit_spec(emb, rounding=space.rounding, end_heads=space.end_heads, resolution=resolution or 224)
        whole = space.budget_counts == "model"
        cost = dict(params=vit_params(spec, with_head=whole), macs=vit_macs(spec, with_head=whole),
                    memory=vit_activation_memory(spec))
        if all(getattr(budget, k) is None or cost[k] <= getattr(budget, k) for k in cost):
            out.append(emb)
    return out


BUDGETS = [
    Budget(params=23_000_000, macs=4_700_000_000),
    Budget(params=5_900_000, macs=1_300_000_000),
    Budget(params=10_000_000),
    Budget(macs=2_000_000_000),
    Budget(memory=3_000_000),
    Budget(params=86_000_000, macs=17_600_000_000),
]


@pytest.mark.parametrize("space", [get_space("revit"), get_space("revit-ref"), ReViTSpace(name="down", rounding="down")],
                         ids=["revit", "revit-ref", "down"])
@pytest.mark.parametrize("budget", BUDGETS, ids=[b.to_text() for b in BUDGETS])
def test_solver_finds_the_largest_fitting_emb(space: ReViTSpace, budget: Budget) -> None:
    res = ReViTRuleSolver().solve(space, budget, top_k=3)
    feasible = brute_force(space, budget)
    best = res.best
    assert res.status == OPTIMAL and best is not None
    assert best.score == max(feasible) == best.spec.embed_dim == res.bound and res.gap == 0.0
    assert [c.spec.embed_dim for c in res.candidates] == sorted(feasible, reverse=True)[:3]
    for c in res.candidates:
        assert c.params == vit_params(c.spec, with_head=True) and c.macs == vit_macs(c.spec, with_head=True)
        assert c.spec == space.spec(c.spec.embed_dim, name=c.spec.name)
        assert (budget.params is None or c.params <= budget.params) and (budget.macs is None or c.macs <= budget.macs)
    # the next width on the grid does not fit
    nxt = space.spec(best.spec.embed_dim + space.embed_multiple)
    too_big = [(budget.params, vit_params(nxt, with_head=True)), (budget.macs, vit_macs(nxt, with_head=True)),
               (budget.memory, vit_activation_memory(nxt))]
    assert any(limit is not None and value > limit for limit, value in too_big)


def test_solver_answers_at_the_published_sizes() -> None:
    solve = lambda name, b: ReViTRuleSolver().solve(get_space(name), b).best.spec.embed_dim  # noqa: E731
    assert solve("revit", Budget(params=23_000_000, macs=4_700_000_000)) == 392
    assert solve("revit-ref", Budget(params=23_000_000, macs=4_700_000_000)) == 376
    assert solve("revit-t", get_space("revit-t").budget) == 192


def test_costs_are_monotone_in_emb() -> None:
    for space in (get_space("revit"), get_space("revit-ref"), ReViTSpace(name="down", rounding="down")):
        specs = [space.spec(e) for e in space.embed_grid]
        for f in (lambda s: vit_params(s, with_head=True), lambda s: vit_macs(s, with_head=True)):
            values = [f(s) for s in specs]
            assert values == sorted(values)


def test_solver_at_another_resolution() -> None:
    budget = Budget(macs=1_000_000_000)
    res = ReViTRuleSolver().solve(get_space("revit"), budget, resolution=112)
    assert res.best.spec.resolution == 112 and res.best.spec.embed_dim == max(brute_force(get_space("revit"), budget, 112))
    with pytest.raises(SpecError, match="patch_size"):
        ReViTRuleSolver().solve(get_space("revit"), budget, resolution=100)


def test_infeasible_budget_reports_the_smallest_design() -> None:
    space = get_space("revit")
    res = ReViTRuleSolver().solve(space, Budget(params=500_000))
    smallest = space.spec(space.embed_dims[0])
    assert res.status == INFEASIBLE and res.candidates == []
    assert res.smallest["params"] == vit_params(smallest, with_head=True) > 500_000
    assert res.smallest["macs"] == vit_macs(smallest, with_head=True)


def test_solver_refuses_what_it_cannot_do() -> None:
    solver = get_solver("revit-rule")(gap_tol=1e-3, time_limit=30.0)
    with pytest.raises(SpecError, match="latency"):
        solver.solve(get_space("revit"), Budget(latency_ms=3.0))
    with pytest.raises(SpecError, match="unknown options"):
        solver.solve(get_space("revit"), Budget(params=1e7), rho0=0.3)
    with pytest.raises(SpecError, match="ReViT space"):
        solver.solve(get_space("deepmad-r50"), Budget(params=1e7))
    with pytest.raises(SpecError, match="top_k"):
        solver.solve(get_space("revit"), Budget(params=1e7), top_k=0)


# the command line


def test_cli_solve_then_show_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["solve", "--space", "revit", "--budget", "params=23M,macs=4.7G", "--format", "json", "--out", str(out)])
    obj = json.loads(capsys.readouterr().out)
    assert code == 0 and obj["status"] == "optimal" and obj["gap"] == 0.0 and obj["bound"] == 392.0
    assert obj["candidates"][0]["spec"]["embed_dim"] == 392 and obj["candidates"][0]["params"] <= 23_000_000
    assert main(["show", str(out / "candidates.json"), "--verify"]) == 0


def test_cli_infeasible_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--space", "revit", "--budget", "params=100K"]) == 2
    assert "infeasible" in capsys.readouterr().err


def test_solve_does_not_import_torch() -> None:
    code = ("import sys; from archsearch.cli.main import main; "
            "rc = main(['solve', '--space', 'revit-t', '--format', 'json']); "
            "assert rc == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=Path(__file__).parents[1])
