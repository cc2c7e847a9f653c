"""Latency model of the ViT and STViT families: unit features against the cost model, calibration,
latency budgets in the ReViT rule, the NViT program (against brute force) and the STViT enumeration."""

from __future__ import annotations

import json
import random

import pytest

from archsearch.cli.main import main
from archsearch.cost import macs, params
from archsearch.cost.latency import (LatencyModel, latency_model_path, model_units, predict_latency, vit_attention_features,
                                     vit_block_features, vit_mlp_features, vit_units)
from archsearch.errors import SpecError
from archsearch.solvers import INFEASIBLE, OPTIMAL, NViTProgram, NViTSolver, brute_force_nvit, get_solver
from archsearch.space import Budget, ViTSpec, get_space
from archsearch.space.budget import parse_latency
from archsearch.space.nvit_templates import NViTSpace
from archsearch.space.vit import ViTBlockSpec

VIT_COEFS = {"patch_embed": (0.02, 0.0, 0.01, 0.0, 0.05, 0.0), "vit_block": (0.05, 0.004, 0.02, 0.0, 0.3, 0.01),
             "vit_head": (0.01, 0.5, 0.0, 0.0, 0.1, 0.0), "st_cross": (0.06, 0.004, 0.03, 0.0, 0.3, 0.01)}
TINY2 = NViTSpace(name="tiny2", depth=2, resolution=32, num_classes=10, embed_dims=(16, 48), heads=(1, 3),
                  qk_dims=(8, 16), v_dims=(8, 16), mlp_dims=(16, 64), heads_ratio=(0.0, 1.0), qk_ratio=(0.0, 1.0),
                  mlp_ratio=(0.0, 4.0), v_prior=(8, 8))


def _vit_model(space: str, scale: float = 1.3) -> LatencyModel:
    return LatencyModel(space, "cpu", "test cpu", "0", 1, 1, 224, dict(VIT_COEFS),
                        {u: {"n": 5.0, "rms_rel": 0.01, "max_rel": 0.02} for u in VIT_COEFS}, scale=scale)


def _random_vit(rng: random.Random) -> ViTSpec:
    d = rng.choice([16, 32, 48, 64])
    blocks = tuple(ViTBlockSpec(rng.randint(1, 4), rng.choice([8, 16, 24]), rng.choice([8, 16]), rng.choice([16, 48, 96]))
                   for _ in range(rng.randint(1, 4)))
    return ViTSpec(d, blocks, rng.choice([4, 8]), rng.choice([16, 32]), rng.choice([1, 3]), rng.random() < 0.5,
                   rng.choice([0, 10]))


@pytest.mark.parametrize("seed", range(25))
def test_vit_unit_features_sum_to_the_cost_model(seed) -> None:
    spec = _random_vit(random.Random(seed))
    units = list(vit_units(spec))
    assert [u for u, _ in units] == ["patch_embed"] + ["vit_block"] * spec.depth + ["vit_head"]
    assert sum(f[1] + f[2] + f[3] for _, f in units) * 1e6 == pytest.approx(macs(spec, with_head=True), rel=1e-12)
    assert sum(f[5] for _, f in units) * 1e6 == pytest.approx(params(spec, with_head=True), rel=1e-12)
    assert list(model_units(spec)) == units


def test_block_features_split_into_attention_and_mlp() -> None:
    att = vit_attention_features(embed_dim=64, heads=3, qk_dim=16, v_dim=24, tokens=17)
    mlp = vit_mlp_features(embed_dim=64, mlp_dim=96, tokens=17)
    whole = vit_block_features(embed_dim=64, heads=3, qk_dim=16, v_dim=24, mlp_dim=96, tokens=17)
    assert whole == tuple(a + b for a, b in zip(att, mlp))
    assert att[0] == 0.0 and mlp[0] == 1.0  # the block's constant is counted once


def test_predict_latency_of_a_vit_is_the_scaled_sum_of_its_units() -> None:
    spec = get_space("revit-t").spec(192)
    model = _vit_model("revit-t")
    expect = model.scale * sum(sum(a * f for a, f in zip(VIT_COEFS[u], feats)) for u, feats in vit_units(spec))
    assert predict_latency(spec, model) == pytest.approx(expect, rel=1e-12)


def test_predictor_refuses_families_it_does_not_cover() -> None:
    import types

    with pytest.raises(SpecError, match="families"):  # every registered family is covered: a stand-in of another
        predict_latency(types.SimpleNamespace(family="other"), _vit_model("x"))


def test_calibrate_a_vit_space_fits_every_unit_type() -> None:
    torch = pytest.importorskip("torch")
    from archsearch.train.latency import calibrate_space

    torch.set_num_threads(1)
    space = get_space("revit-t").replace(name="revit-tiny", resolution=32, num_classes=10)
    model = calibrate_space(space, samples=4, runs=2, warmup=1, models=1, max_width=64)
    assert set(model.coefs) == {"patch_embed", "vit_block", "vit_head"}
    assert latency_model_path("revit-tiny").is_file() and LatencyModel.load(latency_model_path("revit-tiny")) == model
    assert model.scale > 0 and model.residuals["model"]["n"] == 1.0


def test_revit_latency_budget_is_exact_and_covered_by_the_bound(capsys) -> None:
    space = get_space("revit-t")
    model = _vit_model("revit-t")
    model.save(latency_model_path("revit-t"))
    lat = {emb: predict_latency(space.spec(emb), model) for emb in space.embed_grid}
    text = f"{sorted(lat.values())[len(lat) // 3] * 1000:.6f}us"
    limit = parse_latency(text)
    best = max(emb for emb, t in lat.items() if t <= limit)
    assert main(["solve", "--space", "revit-t", "--budget", f"latency={text}", "--format", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["bound_covers"] == ["latency"] and obj["status"] == OPTIMAL
    assert obj["candidates"][0]["score"] == best and obj["bound"] == best
    assert all(c["latency_ms"] <= limit * (1 + 1e-9) for c in obj["candidates"])
    # too tight: exit 2, the message names the smallest latency
    assert main(["solve", "--space", "revit-t", "--budget", f"latency={min(lat.values()) / 2:.6f}ms"]) == 2
    err = capsys.readouterr().err
    assert "latency=" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("priors", [True, False])
@pytest.mark.parametrize("share", [0.4, 0.7])
def test_nvit_latency_budget_matches_brute_force(priors, share) -> None:
    model = _vit_model("tiny2", scale=1.0)
    model.save(latency_model_path("tiny2"))
    free = NViTProgram(TINY2, Budget(latency_ms=1e9), priors=priors)
    lo = min(free.min_costs(d)[2] for d in free.embed_grid())
    hi = max(free.latency(free.to_spec(d, ((3, 16, 8, 64),) * 2)) for d in free.embed_grid())
    budget = Budget(latency_ms=lo + share * (hi - lo))
    prog = NViTProgram(TINY2, budget, priors=priors)
    brute = brute_force_nvit(prog)
    res = NViTSolver().solve(TINY2, budget, top_k=3, priors=priors)
    assert brute is not None
    assert res.status == OPTIMAL and res.best.score == pytest.approx(brute[0], rel=1e-12, abs=1e-12)
    assert res.bound >= brute[0] - 1e-9
    assert "latency" in res.stats.extra["bound_covers"]
    for cand in res.candidates:
        assert predict_latency(cand.spec, model) <= budget.latency_ms * (1 + 1e-9)
        assert cand.extra["latency_ms"] == pytest.approx(predict_latency(cand.spec, model))


def test_nvit_latency_infeasible_names_the_smallest_latency() -> None:
    model = _vit_model("tiny2", scale=1.0)
    model.save(latency_model_path("tiny2"))
    res = NViTSolver().solve(TINY2, Budget(latency_ms=1e-6), top_k=1)
    assert res.status == INFEASIBLE and res.smallest["latency_ms"] > 1e-6


def test_uncalibrated_vit_space_names_calibrate() -> None:
    for name in ("nvit", "revit"):
        with pytest.raises(SpecError, match=f"archsearch calibrate --space {name}"):
            get_solver(get_space(name).solver)().solve(get_space(name), Budget(latency_ms=3.0))


@pytest.mark.parametrize("seed", range(12))
def test_stvit_unit_features_sum_to_the_cost_model(seed) -> None:
    from archsearch.cost.latency import stvit_units
    from archsearch.space.stvit import STViTSpec

    rng = random.Random(seed)
    d = rng.choice([32, 64])
    spec = STViTSpec(embed_dim=d, depth=rng.randint(4, 8), num_heads=rng.choice([1, 2, 4]), mlp_ratio=rng.choice([2.0, 4.0]),
                     semantic_layer=rng.randint(0, 2), num_semantic=rng.choice([1, 4, 9]), semantic_layers=rng.randint(1, 2),
                     recovery=rng.random() < 0.5, patch_size=8, resolution=rng.choice([24, 32, 48]),
                     class_token=rng.random() < 0.5, num_classes=rng.choice([0, 10]))
    units = list(stvit_units(spec))
    assert sum(f[1] + f[2] + f[3] for _, f in units) * 1e6 == pytest.approx(macs(spec, with_head=True), rel=1e-12)
    assert sum(f[5] for _, f in units) * 1e6 == pytest.approx(params(spec, with_head=True), rel=1e-12)
    assert sum(u == "st_cross" for u, _ in units) == spec.semantic_layers + int(spec.recovery)


def test_calibrate_an_stvit_space() -> None:
    torch = pytest.importorskip("torch")
    from archsearch.train.latency import calibrate_space

    torch.set_num_threads(1)
    space = get_space("stvit").replace(name="stvit-tiny-lat", embed_dim=32, num_heads=2, resolution=64, num_classes=10,
                                       budget=Budget())
    model = calibrate_space(space, samples=6, runs=2, warmup=1, models=2)
    assert set(model.coefs) == {"patch_embed", "vit_block", "st_cross", "vit_head"}
    assert LatencyModel.load(latency_model_path("stvit-tiny-lat")) == model


def test_stvit_latency_budget_is_exact_and_covered_by_the_bound() -> None:
    from archsearch.solvers.stvit import evaluate_design, solve_stvit, stvit_designs

    space = get_space("stvit")
    model = _vit_model("stvit")
    model.save(latency_model_path("stvit"))
    evs = [evaluate_design(space, s, latency_model=model) for s in stvit_designs(space)]
    limit = sorted(ev.latency_ms for ev in evs)[len(evs) // 2]
    best = max(ev.score for ev in evs if ev.latency_ms <= limit)
    res = solve_stvit(space, Budget(latency_ms=limit), top_k=3)
    assert res.status == OPTIMAL and res.best.score == best and res.bound == best
    assert "latency" in res.stats.extra["bound_covers"]
    assert all(c.extra["latency_ms"] <= limit and c.extra["latency_ms"] == pytest.approx(predict_latency(c.spec, model))
               for c in res.candidates)
    tight = solve_stvit(space, Budget(latency_ms=min(ev.latency_ms for ev in evs) / 2))
    assert tight.status == INFEASIBLE and tight.smallest["latency_ms"] == pytest.approx(min(ev.latency_ms for ev in evs))
