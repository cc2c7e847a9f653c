"""The STViT program: objective, spaces, the enumeration solver against brute force, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from archsearch.cli.main import main
from archsearch.cost import costs, vit_macs
from archsearch.errors import SpecError
from archsearch.objectives import attention_interactions
from archsearch.solvers import INFEASIBLE, OPTIMAL, STViTSolver, get_solver, solve_stvit, stvit_designs
from archsearch.space import DEIT, Budget, STViTSpace, STViTSpec, ViTSpec, get_space, list_spaces
from archsearch.space.stvit_templates import DEIT_MACS

SMALL = STViTSpace(name="stvit-test", embed_dim=32, num_heads=2, depth=4, patch_size=8, resolution=40,
                   num_classes=10, budget_counts="model", budget=Budget(macs=1_000_000))


def layer_pairs(spec: STViTSpec) -> list[int]:
    """Query-key pairs layer by layer, walking the layers (independent of the objective's algebra)."""
    c = int(spec.class_token)
    tokens = spec.num_patches + c
    pairs = []
    for i in range(spec.depth):
        if i < spec.semantic_layer:
            pairs.append(tokens * tokens)
        elif i < spec.semantic_layer + spec.semantic_layers:
            pairs.append((spec.num_semantic + c) * tokens)
        else:
            pairs.append((spec.num_semantic + c) ** 2)
    if spec.recovery:
        pairs.append(spec.num_patches * (spec.num_semantic + c))
    return pairs


def brute_force(space: STViTSpace, budget: Budget) -> tuple[float, list[STViTSpec]]:
    """All designs by nested loops; returns the best score and every design attaining it."""
    grid = space.resolution // space.patch_size
    best, arg = -math.inf, []
    for s in space.semantic_layers:
        for layer in range(space.semantic_layer[0], min(space.semantic_layer[1], space.depth - s) + 1):
            for g in range(1, grid):
                spec = STViTSpec(embed_dim=space.embed_dim, depth=space.depth, num_heads=space.num_heads,
                                 semantic_layer=layer, num_semantic=g * g, semantic_layers=s, recovery=space.recovery,
                                 patch_size=space.patch_size, resolution=space.resolution,
                                 class_token=space.class_token, num_classes=space.num_classes)
                c = costs(spec)
                fits = ((budget.macs is None or c["macs_with_head"] <= budget.macs)
                        and (budget.params is None or c["params_with_head"] <= budget.params)
                        and (budget.memory is None or c["activation_memory"] <= budget.memory))
                if not fits:
                    continue
                score = sum(layer_pairs(spec))
                if score > best:
                    best, arg = score, [spec]
                elif score == best:
                    arg.append(spec)
    return best, arg


# objective


@pytest.mark.parametrize("fields", [dict(), dict(recovery=True), dict(class_token=False), dict(semantic_layer=0),
                                    dict(semantic_layer=9, semantic_layers=3, num_semantic=1)])
def test_interactions_count_the_pairs_of_every_layer(fields: dict) -> None:
    spec = STViTSpec.from_deit("deit_small", **fields)
    kept = attention_interactions(spec)
    assert kept.total == sum(layer_pairs(spec))
    assert kept.total == kept.image_layers + kept.semantic_layers + kept.tail_layers + kept.recovery
    assert kept.share == pytest.approx(kept.total / (12 * spec.image_tokens**2))


def test_paper_layout_keeps_35_percent_of_the_pairs() -> None:
    kept = attention_interactions(STViTSpec.from_deit("deit_small"))
    assert kept.total == 4 * 197**2 + 2 * 17 * 197 + 6 * 17**2 == 163_668
    assert kept.share == pytest.approx(0.3515, abs=1e-4)


# spaces


def test_stvit_spaces_are_registered_with_model_budgets() -> None:
    assert {"stvit", "stvit-tiny", "stvit-base"} <= set(list_spaces())
    space = get_space("stvit")
    assert isinstance(space, STViTSpace) and space.family == "stvit" and space.solver == "stvit-enum"
    assert space.budget_counts == "model" and space.budget.macs == round(0.42 * 4_598_882_304)
    assert get_solver(space.solver) is STViTSolver


@pytest.mark.parametrize("variant", sorted(DEIT))
def test_default_budgets_are_42_percent_of_deit(variant: str) -> None:
    dims = DEIT[variant]
    dense = ViTSpec.uniform(embed_dim=dims["embed_dim"], depth=dims["depth"], heads=dims["heads"])
    assert DEIT_MACS[variant] == vit_macs(dense, with_head=True)


@pytest.mark.parametrize("fields, match", [
    (dict(num_semantic=(4, 5)), r"space.num_semantic: expected perfect squares"),
    (dict(semantic_layers=()), r"space.semantic_layers: expected integers in \[1, 12\]"),
    (dict(semantic_layers=(13,)), r"space.semantic_layers"),
    (dict(semantic_layer=(5, 2)), r"space.semantic_layer: expected \(lo, hi\)"),
    (dict(embed_dim=100, num_heads=3), r"space.embed_dim: expected a multiple of num_heads 3"),
    (dict(resolution=200), r"space.resolution: expected a multiple of patch_size 16"),
    (dict(recovery=1), r"space.recovery: expected true or false"),
])
def test_bad_space_fields(fields: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        STViTSpace(name="bad", **fields)


def test_space_size_and_semantic_counts() -> None:
    space = get_space("stvit")
    assert space.semantic_counts() == tuple(g * g for g in range(1, 14))
    assert space.semantic_counts(112) == (1, 4, 9, 16, 25, 36)
    assert len(list(stvit_designs(space))) == 13 * (12 + 11 + 10) == 429


# solver


def test_paper_layout_is_the_optimum_at_42_percent() -> None:
    """DeiT-S and DeiT-B at 42% of their MACs: the optimum is the paper's 4 + 2 + 6 layers with 16 tokens."""
    for name in ("stvit", "stvit-base"):
        res = solve_stvit(get_space(name))
        best = res.best.spec
        assert res.status == OPTIMAL and res.gap == 0.0 and res.bound == res.best.score
        assert (best.semantic_layer, best.semantic_layers, best.num_semantic) == (4, 2, 16)
        assert res.best.macs == costs(best)["macs_with_head"] <= res.budget.macs


@pytest.mark.parametrize("share", [0.12, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0])
@pytest.mark.parametrize("recovery, class_token", [(False, True), (True, False)])
def test_solver_matches_brute_force(share: float, recovery: bool, class_token: bool) -> None:
    space = SMALL.replace(recovery=recovery, class_token=class_token)
    designs = [costs(s)["macs_with_head"] for s in stvit_designs(space)]
    budget = Budget(macs=int(min(designs) + share * (max(designs) - min(designs))))
    best, optima = brute_force(space, budget)
    res = STViTSolver().solve(space, budget, top_k=4)
    assert res.status == OPTIMAL and res.gap == 0.0
    assert res.best.score == best == res.bound
    assert res.best.spec.replace(name="") in optima
    scores = [c.score for c in res.candidates]
    assert scores == sorted(scores, reverse=True) and all(c.macs <= budget.macs for c in res.candidates)


@pytest.mark.parametrize("key", ["params", "memory"])
def test_params_and_memory_budgets_bind(key: str) -> None:
    space = SMALL.replace(semantic_layers=(1, 2, 3), recovery=True)
    values = sorted({costs(s)["params_with_head" if key == "params" else "activation_memory"] for s in stvit_designs(space)})
    budget = Budget(**{key: values[len(values) // 2]})
    best, _ = brute_force(space, budget)
    res = STViTSolver().solve(space, budget)
    assert res.best.score == best
    assert all(c.params <= budget.params if key == "params" else c.extra["memory"] <= budget.memory
               for c in res.candidates)


def test_infeasible_budget_reports_the_smallest_design() -> None:
    res = solve_stvit(get_space("stvit"), Budget(macs=100_000_000))
    assert res.status == INFEASIBLE and not res.candidates and res.bound == -math.inf
    designs = list(stvit_designs(get_space("stvit")))
    assert res.smallest == {"macs": min(costs(s)["macs_with_head"] for s in designs),
                            "params": min(costs(s)["params_with_head"] for s in designs)}
    assert res.smallest["macs"] == 158_498_304


def test_resolution_override_and_bad_inputs() -> None:
    res = solve_stvit(get_space("stvit"), Budget(macs=600_000_000), resolution=112)
    assert res.best.spec.resolution == 112 and res.best.spec.num_semantic < 49
    with pytest.raises(SpecError, match="resolution: expected a multiple of the space's patch_size 16"):
        solve_stvit(get_space("stvit"), resolution=100)
    with pytest.raises(SpecError, match="archsearch calibrate --space stvit"):
        solve_stvit(get_space("stvit"), Budget(latency_ms=3.0))
    with pytest.raises(SpecError, match="takes an STViT space"):
        STViTSolver().solve(get_space("deepmad-cifar"), Budget(macs=10**9))
    with pytest.raises(SpecError, match="no design at resolution 32"):
        solve_stvit(get_space("stvit").replace(num_semantic=(16,)), resolution=32)


# CLI


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_solve_json_and_show_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "solve", "--space", "stvit", "--budget", "macs=2G", "--format", "json", "--out", str(tmp_path))
    obj = json.loads(out)
    assert code == 0 and obj["status"] == "optimal" and obj["gap"] == 0.0
    best = obj["candidates"][0]
    assert best["spec"]["family"] == "stvit" and best["macs"] <= 2_000_000_000 and best["score"] == obj["bound"]
    code, out, _ = run(capsys, "show", str(tmp_path / "candidates.json"), "--verify", "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["verified"] is True and info["macs_with_head"] == best["macs"]


def test_cli_infeasible_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "solve", "--space", "stvit", "--budget", "macs=100M")
    assert code == 2 and "smallest feasible design has macs=158.5M" in err
    code, out, _ = run(capsys, "solve", "--space", "stvit")
    assert code == 0 and "semantic (pool 4x4)" in out
    code, _, err = run(capsys, "solve", "--space", "stvit", "--rho", "0.3")
    assert code == 2 and "not an option of stvit-enum" in err


def test_solve_does_not_import_torch() -> None:
    code = ("import sys; from archsearch.cli.main import main; "
            "main(['solve', '--space', 'stvit', '--format', 'json']); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
