"""TinyViT latency: units against the exact cost model and the built module, the predictor, the
contraction solver under a latency budget against brute force, a tiny calibration end to end."""

from __future__ import annotations

import json
import random
import time

import pytest

from archsearch.cli.main import main
from archsearch.cost import tinyvit_macs, tinyvit_params
from archsearch.cost.latency import (LATENCY_FAMILIES, UNIT_TYPES, LatencyModel, latency_model_path, model_units,
                                     predict_latency, tinyvit_block_features, tinyvit_head_features,
                                     tinyvit_mbconv_features, tinyvit_merge_features, tinyvit_stem_features,
                                     tinyvit_unit_keys, tinyvit_units)
from archsearch.cost.tinyvit import tinyvit_ops
from archsearch.solvers import INFEASIBLE, OPTIMAL, ContractionProgram, TinyViTContractionSolver, brute_force_contraction
from archsearch.space import TINYVIT_5M, TINYVIT_11M, TINYVIT_21M, Budget, TinyViTSpec, get_space
from archsearch.space.tinyvit_templates import TinyViTSpace

SEED = TinyViTSpec(embed_dims=(64, 96, 128), depths=(2, 2, 3), window_sizes=(7, 4, 7), num_classes=10)
# sides 16, 8, 4 at 64 px: windows 7 > 4 pad; 1728 designs before the monotone rule
SMALL = TinyViTSpace(name="tiny-lat", seed=SEED, resolution=64, num_classes=10, windows=(2, 4, 7),
                     depths=((1, 2), (1, 2), (1, 3)))
TYPES = ("tinyvit_stem", "tinyvit_mbconv", "tinyvit_merge", "tinyvit_block", "tinyvit_head")
# different per-type coefficients, attention products dearest: latency is not proportional to MACs
COEFS = {"tinyvit_stem": (0.05, 0.0, 0.02, 0.0, 0.1, 0.0), "tinyvit_mbconv": (0.03, 0.02, 0.0, 0.06, 0.15, 0.05),
         "tinyvit_merge": (0.04, 0.02, 0.0, 0.05, 0.1, 0.02), "tinyvit_block": (0.08, 0.015, 0.09, 0.05, 0.3, 0.1),
         "tinyvit_head": (0.02, 0.01, 0.0, 0.0, 0.05, 0.01)}


def _model(space: str, scale: float = 1.0) -> LatencyModel:
    return LatencyModel(space, "cpu", "test cpu", "0", 1, 1, 64, dict(COEFS), {u: {"n": 4.0} for u in COEFS}, 30, scale)


def _random_specs(count: int, seed: int = 0) -> list[TinyViTSpec]:
    """Random valid specs with small dims: 2-4 stages, any window (padding or not), ratios, classes."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(2, 4)
        hd = rng.choice((8, 16))
        dims = sorted(hd * rng.randint(1, 4) for _ in range(n))
        out.append(TinyViTSpec(embed_dims=tuple(dims), depths=tuple(rng.randint(1, 3) for _ in range(n)), head_dim=hd,
                               window_sizes=tuple(rng.randint(1, 9) for _ in range(n)), mlp_ratio=rng.choice((1.5, 2.0, 4.0)),
                               mbconv_expand_ratio=rng.choice((2.0, 4.0)), local_conv_size=rng.choice((1, 3, 5)),
                               resolution=rng.randint(24, 80), in_channels=rng.choice((1, 3)),
                               num_classes=rng.choice((0, 10))))
    return out


SPECS = [TINYVIT_5M, TINYVIT_11M, TINYVIT_21M, *_random_specs(50)]


def test_tinyvit_is_a_latency_family() -> None:
    assert "tinyvit" in LATENCY_FAMILIES and set(TYPES) <= set(UNIT_TYPES)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name or f"{s.embed_dims}-{s.resolution}")
def test_units_sum_to_the_cost_model(spec: TinyViTSpec) -> None:
    ops = tinyvit_ops(spec)
    assert sum(op.params for op in ops) == tinyvit_params(spec, with_head=True)
    assert sum(op.macs for op in ops) == tinyvit_macs(spec, with_head=True)
    units = list(tinyvit_units(spec))
    keys = tinyvit_unit_keys(spec)
    assert [u for u, _ in units] == [k[0] for k in keys] and list(model_units(spec)) == units
    assert len(units) == 2 + sum(spec.depths) + spec.n_stages - 1
    assert keys[0] == ("tinyvit_stem", -1, -1) and keys[-1] == ("tinyvit_head", -1, -1)
    assert all(f[0] == 1.0 and all(v >= 0 for v in f) for _, f in units)
    assert sum(f[1] + f[2] + f[3] for _, f in units) * 1e6 == pytest.approx(tinyvit_macs(spec, with_head=True), rel=1e-12)
    assert sum(f[5] for _, f in units) * 1e6 == pytest.approx(tinyvit_params(spec, with_head=True), rel=1e-12)
    # the per-part features the solver's tables use are the units' own
    sides, dims = spec.sides, spec.embed_dims
    by_key = dict(zip(keys, (f for _, f in units)))
    assert by_key[keys[0]] == tinyvit_stem_features(dim=dims[0], in_channels=spec.in_channels, resolution=spec.resolution)
    assert by_key[("tinyvit_mbconv", 0, 0)] == tinyvit_mbconv_features(dim=dims[0], side=sides[0],
                                                                       expand_ratio=spec.mbconv_expand_ratio)
    for i in range(1, spec.n_stages):
        assert by_key[("tinyvit_merge", i, -1)] == tinyvit_merge_features(dim_in=dims[i - 1], dim=dims[i], side_in=sides[i - 1])
        assert by_key[("tinyvit_block", i, spec.depths[i] - 1)] == tinyvit_block_features(
            dim=dims[i], side=sides[i], heads=spec.num_heads[i], window=spec.window_sizes[i], mlp_ratio=spec.mlp_ratio,
            local_conv_size=spec.local_conv_size)
    assert by_key[keys[-1]] == tinyvit_head_features(dim=dims[-1], side=sides[-1], num_classes=spec.num_classes)


@pytest.mark.parametrize("spec", SPECS[3:8], ids=lambda s: f"{s.embed_dims}-{s.window_sizes}-{s.resolution}")
def test_units_are_the_built_modules_on_the_inputs_a_forward_pass_gives_them(spec: TinyViTSpec) -> None:
    """Every unit's MACs equal FlopCounterMode's on the submodule the calibration times, run on the
    input a forward pass gave it."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archsearch.models import build_model
    from archsearch.train.latency import _tinyvit_modules

    model = build_model(spec).eval()
    mods = _tinyvit_modules(model, spec)
    keys = tinyvit_unit_keys(spec)
    assert set(mods) == set(keys)
    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, k=key: inputs.__setitem__(k, args[0]))
             for key, (m,) in mods.items()]
    with torch.no_grad():
        model(torch.randn(1, spec.in_channels, spec.resolution, spec.resolution))
    for h in hooks:
        h.remove()
    for key, (_, f) in zip(keys, tinyvit_units(spec)):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            mods[key][0](inputs[key])
        assert counter.get_total_flops() // 2 == pytest.approx((f[1] + f[2] + f[3]) * 1e6, abs=0.5), key


def test_prediction_is_the_scaled_sum_of_unit_predictions() -> None:
    for spec in SPECS[:10]:
        for scale in (1.0, 1.3):
            model = _model("x", scale)
            expect = scale * sum(sum(a * f for a, f in zip(COEFS[u], feats)) for u, feats in tinyvit_units(spec))
            assert predict_latency(spec, model) == pytest.approx(expect, rel=1e-12)


def test_stage_tables_add_up_to_the_predictor() -> None:
    model = _model(SMALL.name)
    prog = ContractionProgram(SMALL, Budget(), latency_model=model)
    rng = random.Random(3)
    for _ in range(40):
        picks, a = [], 0
        for i, t in enumerate(prog.tables):
            c = rng.choice([c for c in range(len(t.dims)) if t.latency[a, c] < float("inf")])
            picks.append(c)
            a = int(t.out_index[c])
        total = sum(prog.tables[i].latency[(0 if i == 0 else prog.tables[i - 1].out_index[picks[i - 1]]), c]
                    for i, c in enumerate(picks))
        assert total == pytest.approx(predict_latency(prog.design(tuple(picks)), model), rel=1e-12)


@pytest.fixture(scope="module")
def small_latencies() -> list[float]:
    return sorted(c.extra["latency_ms"] for c in brute_force_contraction(SMALL, Budget(), latency_model=_model(SMALL.name)))


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_solver_equals_brute_force_under_a_latency_budget(q: float, small_latencies: list[float]) -> None:
    model = _model(SMALL.name)
    model.save(latency_model_path(SMALL.name))
    free = brute_force_contraction(SMALL, Budget(), latency_model=model)
    limit = small_latencies[int(q * (len(small_latencies) - 1))] * (1 + 1e-9)
    budget = Budget(latency_ms=limit)
    brute = brute_force_contraction(SMALL, budget)  # the saved calibration
    assert brute and brute[0].score < free[0].score  # the latency budget binds
    res = TinyViTContractionSolver().solve(SMALL, budget, top_k=4)
    assert res.status == OPTIMAL and res.gap == 0.0 and res.bound >= brute[0].score - 1e-12
    assert [round(c.score, 9) for c in res.candidates] == [round(c.score, 9) for c in brute[:4]]
    assert res.stats.extra["bound_covers"] == ["latency"] and res.stats.extra["latency_device"] == "cpu"
    for c in res.candidates:
        assert c.extra["latency_ms"] == pytest.approx(predict_latency(c.spec, model), rel=1e-12) and c.extra["latency_ms"] <= limit
    # with MACs and params too: every budget at once
    mid = brute[len(brute) // 2]
    both = Budget(latency_ms=limit, macs=mid.macs, params=mid.params)
    ref = brute_force_contraction(SMALL, both)
    res = TinyViTContractionSolver().solve(SMALL, both, top_k=2)
    assert [round(c.score, 9) for c in res.candidates] == [round(c.score, 9) for c in ref[:2]]
    assert res.stats.extra["bound_covers"] == ["macs", "params", "latency"]


def test_infeasible_latency_budget_names_the_smallest_latency(small_latencies: list[float], capsys) -> None:
    _model(SMALL.name).save(latency_model_path(SMALL.name))
    for extra in ({}, {"memory": 10**9}):  # a memory budget makes smallest() rebuild the tables without it
        res = TinyViTContractionSolver().solve(SMALL, Budget(latency_ms=small_latencies[0] * 0.999, **extra), top_k=1)
        assert res.status == INFEASIBLE and not res.candidates
        assert res.smallest["latency_ms"] == pytest.approx(small_latencies[0], rel=1e-12)
    # end to end through the CLI on a registered space
    space = get_space("tinyvit")
    _model(space.name).save(latency_model_path(space.name))
    lowest = ContractionProgram(space, Budget(), latency_model=_model(space.name)).min_latency[0][0]
    assert main(["solve", "--space", "tinyvit", "--budget", f"latency={lowest * 0.99:.6g}ms"]) == 2
    message = capsys.readouterr().err
    assert "infeasible" in message and f"latency={lowest:.3g}ms" in message
    assert main(["solve", "--space", "tinyvit", "--budget", f"latency={lowest * 1.5:.6g}ms,params=11M", "--format", "json",
                 "--top-k", "2"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["status"] == "optimal" and obj["bound_covers"] == ["params", "latency"]
    assert all(c["latency_ms"] <= lowest * 1.5 for c in obj["candidates"])


def test_random_specs_of_the_space_fit_its_budget() -> None:
    from archsearch.train.latency import random_tinyvit_spec

    space = get_space("tinyvit-depth")
    rng = random.Random(0)
    for _ in range(20):
        spec = random_tinyvit_spec(space, rng, resolution=112)
        assert spec.resolution == 112 and list(spec.embed_dims) == sorted(spec.embed_dims)
        full = space.make_spec(spec.embed_dims, spec.depths, spec.window_sizes)
        assert tinyvit_params(full, with_head=True) <= space.budget.params and tinyvit_macs(full, with_head=True) <= space.budget.macs


def test_calibrate_a_tinyvit_space_times_units_inside_built_models() -> None:
    torch = pytest.importorskip("torch")
    from archsearch.train.latency import calibrate_space

    torch.set_num_threads(1)
    space = TinyViTSpace(name="tiny-lat-cal", seed=SEED, resolution=32, num_classes=10, windows=(2, 4),
                         depths=((1, 2), (1, 2), (1, 3)))
    t0 = time.perf_counter()
    model = calibrate_space(space, threads=1, samples=12, runs=2, warmup=1, models=2, seed=1)
    assert time.perf_counter() - t0 < 20
    assert set(model.coefs) == set(TYPES) and model.threads == 1 and model.resolution == 32
    assert model.residuals["model"]["n"] == 2.0
    assert LatencyModel.load(latency_model_path("tiny-lat-cal")) == model
    assert predict_latency(space.make_spec((32, 32, 32), (1, 1, 1), (7, 2, 2)), model) > 0


@pytest.mark.slow  # about 9 s (224 px models); the calibration above is the fast default check
def test_cli_calibrate_a_registered_tinyvit_space_then_solve(capsys) -> None:
    """`archsearch calibrate --space tinyvit-depth` end to end (full size, few repeats), then a latency solve."""
    torch = pytest.importorskip("torch")
    from archsearch.cli.main import build_parser

    torch.set_num_threads(1)
    args = build_parser().parse_args(["calibrate", "--space", "tinyvit-depth", "--threads", "1", "--samples", "8",
                                      "--runs", "2", "--models", "2", "--format", "json"])
    args.runs_min = 1  # few repeats in tests only; the CLI itself requires >= 30
    assert args.func(args) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["space"] == "tinyvit-depth" and obj["resolution"] == 224 and set(obj["coefs"]) == set(TYPES)
    assert latency_model_path("tinyvit-depth").is_file()
    assert main(["solve", "--space", "tinyvit-depth", "--budget", "latency=1s", "--format", "json", "--top-k", "1"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["bound_covers"] == ["latency"] and 0 < res["candidates"][0]["latency_ms"] <= 1000
