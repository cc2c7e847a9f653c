"""Latency model: predictor file, NNLS fit, calibration of a tiny space, latency budgets in the DeepMAD solve."""

from __future__ import annotations

import dataclasses
import json
import random
import sys

import pytest

from archsearch.cli.main import build_parser, main
from archsearch.cost.latency import (FEATURES, LatencyModel, block_features, cnn_units, find_latency_model, fit_coefficients,
                                     latency_model_path, predict_latency, stem_features)
from archsearch.errors import SpecError
from archsearch.solvers import DeepMADProgram, solve_deepmad
from archsearch.space import Budget, CNNSpec, SearchSpace, get_space

N = len(FEATURES)


def _model(space: str, **coefs: tuple[float, ...]) -> LatencyModel:
    coefs = coefs or {"stem": (0.05, 0.0, 0.05, 0.0, 0.0, 0.0), "k1kxk1": (0.15, 0.03, 0.02, 0.0, 0.5, 0.2),
                      "k1dwk1": (0.1, 0.03, 0.0, 0.2, 0.4, 0.1), "head": (0.06, 1.0, 0.0, 0.0, 0.0, 0.1)}
    return LatencyModel(space, "cpu", "test cpu", "0", 1, 1, 32, dict(coefs), {u: {"n": 5.0, "rms_rel": 0.01, "max_rel": 0.02} for u in coefs})


def test_predictor_file_round_trips(tmp_path) -> None:
    import dataclasses

    model = _model("deepmad-cifar")
    path = model.save(tmp_path / "m.json")
    assert LatencyModel.load(path) == model
    assert json.loads(path.read_text())["features"] == list(FEATURES)
    blocked = dataclasses.replace(model, channel_block=16, kernel_exponent=0.3)
    assert LatencyModel.load(blocked.save(tmp_path / "b.json")) == blocked
    older = {k: v for k, v in model.to_dict().items() if k != "channel_block"}  # a file from before the field
    (tmp_path / "old.json").write_text(json.dumps(older))
    assert LatencyModel.load(tmp_path / "old.json").channel_block == 1
    assert LatencyModel.load(tmp_path / "old.json").kernel_exponent == 0.0


@pytest.mark.parametrize("change", [{"schema": 99}, {"coefs": {"stem": [1.0]}}, {"coefs": {"stem": [-1.0] * N}},
                                    {"coefs": {"bogus": [1.0] * N}}, {"threads": "many"}, {"channel_block": 0},
                                    {"channel_block": "16"}, {"channel_block": 1.5}, {"kernel_exponent": "0.1"},
                                    {"kernel_exponent": 5.0}])
def test_bad_predictor_files_are_refused(tmp_path, change) -> None:
    obj = _model("x").to_dict() | change
    (tmp_path / "m.json").write_text(json.dumps(obj))
    with pytest.raises(SpecError, match="latency file"):
        LatencyModel.load(tmp_path / "m.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpecError, match="latency file .*bad.json: not valid JSON"):
        LatencyModel.load(tmp_path / "bad.json")


def test_fit_recovers_known_coefficients() -> None:
    rng = random.Random(1)
    true = (0.2, 0.03, 0.01, 0.0, 0.5, 0.3)
    rows = [(1.0, rng.uniform(0, 50), rng.uniform(0, 80), 0.0, rng.uniform(0, 3), rng.uniform(0, 5)) for _ in range(40)]
    times = [sum(a * f for a, f in zip(true, r)) for r in rows]
    coef, fit = fit_coefficients(rows, times)
    assert coef == pytest.approx(true, abs=1e-6)
    assert fit["n"] == 40 and fit["max_rel"] < 1e-6
    noisy = [t * (1 + rng.uniform(-0.02, 0.02)) for t in times]
    coef, fit = fit_coefficients(rows, noisy)
    assert all(c >= 0 for c in coef) and fit["max_rel"] < 0.05


def test_channel_block_rounds_conv_channels_up_in_the_macs_only() -> None:
    """Hand count of a stride-2 bottleneck 24 -> 40 (inner 8, 3x3, 16 px in): at block 16 its convs count
    32 -> 16, 16 -> 16 (3x3), 16 -> 48 and the shortcut 32 -> 48; activations and weights are unrounded."""
    kw = dict(c_in=24, c_out=40, bottleneck=8, kernel=3, stride=2, r_in=16)
    plain, blocked = block_features("k1kxk1", **kw), block_features("k1kxk1", **kw, channel_block=16)
    assert plain[1:3] == pytest.approx(((256 * 24 * 8 + 64 * 8 * 40 + 64 * 24 * 40) / 1e6, 64 * 8 * 8 * 9 / 1e6))
    assert blocked[1:3] == pytest.approx(((256 * 32 * 16 + 64 * 16 * 48 + 64 * 32 * 48) / 1e6, 64 * 16 * 16 * 9 / 1e6))
    assert blocked[0] == plain[0] and blocked[3:] == plain[3:]
    assert block_features("k1kxk1", **kw, channel_block=8) == plain  # every width is a multiple of 8
    # depthwise: one input channel per group, the channels rounded up
    dw = dict(c_in=24, c_out=24, bottleneck=88, kernel=5, stride=1, r_in=8)
    assert block_features("k1dwk1", **dw, channel_block=16)[3] == pytest.approx(64 * 96 * 25 / 1e6)
    assert block_features("k1dwk1", **dw)[3] == pytest.approx(64 * 88 * 25 / 1e6)
    # the stem: the image's 3 channels are not rounded, its output channels are
    assert stem_features(c_in=3, c_out=24, kernel=3, stride=2, r_in=32, channel_block=16)[2] == pytest.approx(256 * 3 * 32 * 9 / 1e6)


def test_kernel_exponent_weighs_kxk_macs_by_a_power_of_the_kernel_area() -> None:
    kw = dict(c_in=32, c_out=32, bottleneck=16, kernel=5, stride=1, r_in=8)
    plain, weighted = block_features("k1kxk1", **kw), block_features("k1kxk1", **kw, kernel_exponent=0.5)
    assert weighted[2] == pytest.approx(plain[2] * (25 / 9) ** -0.5) and weighted[:2] == plain[:2] and weighted[3:] == plain[3:]
    assert block_features("k1kxk1", **(kw | {"kernel": 3}), kernel_exponent=0.5) == block_features("k1kxk1", **(kw | {"kernel": 3}))
    dw = dict(c_in=16, c_out=16, bottleneck=48, kernel=7, stride=1, r_in=8)
    assert block_features("k1dwk1", **dw, kernel_exponent=-0.2)[3] == pytest.approx(64 * 48 * 49 * (49 / 9) ** 0.2 / 1e6)
    assert stem_features(c_in=3, c_out=16, kernel=5, stride=2, r_in=32, kernel_exponent=1.0)[2] == pytest.approx(256 * 3 * 16 * 9 / 1e6)


@pytest.mark.parametrize("channel_block,kernel_exponent", [(1, 0.0), (16, 0.0), (16, 0.3)])
def test_design_latency_equals_spec_predictor(channel_block: int, kernel_exponent: float) -> None:
    import dataclasses

    for name in ("deepmad-cifar", "deepmad-mbv2-plus", "deepmad-r18"):  # r18: the paper's forced projections
        space = get_space(name)
        model = dataclasses.replace(_model(name), channel_block=channel_block, kernel_exponent=kernel_exponent)
        prog = DeepMADProgram(space, Budget())
        prog.latency_model = model
        from archsearch.train.latency import random_cnn_design

        rng = random.Random(0)
        for _ in range(10):
            _, d = random_cnn_design(space, rng)
            spec = prog.to_spec(d)
            assert prog.latency(d) == pytest.approx(predict_latency(spec, model), rel=1e-12)
            units = [u for u, _ in cnn_units(spec)]
            assert units[0] == "stem" and units[-1] == "head" and len(units) == 2 + spec.depth
            if channel_block > 1 and any(st.bottleneck % channel_block for st in spec.stages):
                plain = predict_latency(spec, dataclasses.replace(model, channel_block=1))
                assert predict_latency(spec, model) > plain * (1 + 1e-9)


def _tiny_space() -> SearchSpace:
    return SearchSpace(name="tiny-lat", block="k1kxk1", resolution=16, num_classes=10, strides=(1, 2), stem_widths=(8, 16),
                       widths=(8, 32), kernels=(3, 5), depths=(1, 3), first_depth_max=2, rho0=0.5, penalty_skip=0,
                       bottleneck_ratio=(0.25, 1.0), budget=Budget(macs=600_000, params=20_000))


def test_calibrate_tiny_space_is_fast_and_saved() -> None:
    import time

    from archsearch.train.latency import calibrate_space

    calls = []
    t0 = time.perf_counter()
    model = calibrate_space(_tiny_space(), threads=1, samples=16, runs=3, warmup=1, models=3,
                            progress=lambda d, t: calls.append((d, t)))
    assert time.perf_counter() - t0 < 20
    assert calls[-1][0] == calls[-1][1] == len(calls)
    assert set(model.coefs) == {"stem", "k1kxk1", "head"} and model.threads == 1 and model.batch == 1 and model.runs == 3
    assert model.scale == 1.0 and model.residuals["model"]["n"] == 3  # the joint fit: whole models inside it
    assert LatencyModel.load(latency_model_path("tiny-lat")) == model == find_latency_model("tiny-lat")
    assert predict_latency(DeepMADProgram(_tiny_space(), Budget()).to_spec(_small_design()), model) > 0


def _synthetic_calibration(extra_per_mact: float):
    """Units follow known coefficients; whole models cost that plus ``extra_per_mact`` ms per million
    activations (the in-context memory traffic a unit timed alone does not show)."""
    from archsearch.train.latency import CalibrationData

    rng = random.Random(4)
    true = {"stem": (0.05, 0.0, 0.05, 0.0, 0.1, 0.0), "k1kxk1": (0.1, 0.03, 0.02, 0.0, 0.2, 0.1), "head": (0.02, 1.0, 0.0, 0.0, 0.0, 0.0)}
    units = {}
    for unit, coef in true.items():
        feats = [(1.0, *(rng.uniform(0.1, 3.0) if c else 0.0 for c in coef[1:])) for _ in range(12)]
        units[unit] = (feats, [sum(a * f for a, f in zip(coef, fs)) for fs in feats])
    models = []
    for _ in range(8):
        summed = {u: (float(n), *(n * rng.uniform(0.1, 3.0) if c else 0.0 for c in true[u][1:]))
                  for u, n in (("stem", 1), ("k1kxk1", rng.randint(3, 12)), ("head", 1))}
        t = sum(sum(a * f for a, f in zip(true[u], fs)) for u, fs in summed.items())
        t += extra_per_mact * sum(fs[4] for fs in summed.values())
        models.append((summed, t))
    return CalibrationData("syn", "cpu", "test", "0", 1, 1, 32, 3, units, models)


def test_joint_fit_takes_in_the_in_context_cost_that_blocks_alone_miss() -> None:
    from archsearch.train.latency import fit_calibration

    exact = _synthetic_calibration(0.0)
    for fit in ("joint", "blocks"):
        assert fit_calibration(exact, fit=fit).residuals["model"]["max_rel"] < 1e-6
    data = _synthetic_calibration(0.3)
    joint, blocks = fit_calibration(data, fit="joint"), fit_calibration(data, fit="blocks")
    err = {}
    for name, m in (("joint", joint), ("blocks", blocks)):
        err[name] = max(abs(sum(m.unit_ms(u, f) for u, f in feats.items()) / t - 1) for feats, t in data.models)
    assert err["joint"] < 0.02 < err["blocks"]
    with pytest.raises(SpecError, match="fit: expected"):
        fit_calibration(data, fit="lookup")


def test_joint_fit_keeps_the_unit_timings_when_few_whole_models_are_timed() -> None:
    """With fewer whole models than unknowns, the models alone cannot decide the coefficients; the
    joint fit is one problem over units and models, so the unit timings still pin each type's
    coefficients and the shared in-context cost comes out exactly."""
    import dataclasses

    from archsearch.cost.latency import fit_joint

    data = _synthetic_calibration(0.3)
    coefs, figures = fit_joint(data.units, data.models[:3])
    true = {"stem": (0.05, 0.0, 0.05, 0.0, 0.1, 0.0), "k1kxk1": (0.1, 0.03, 0.02, 0.0, 0.2, 0.1), "head": (0.02, 1.0, 0.0, 0.0, 0.0, 0.0)}
    for unit, c in true.items():
        assert coefs[unit] == pytest.approx(tuple(a + (0.3 if j == 4 else 0.0) for j, a in enumerate(c)), abs=1e-6)
        assert figures[unit]["max_rel"] < 1e-6
    assert figures["model"]["n"] == 3 and figures["model"]["max_rel"] < 1e-6
    held_out = dataclasses.replace(data, models=data.models[3:])
    for feats, t in held_out.models:  # the models it did not see are predicted exactly too
        assert sum(sum(a * f for a, f in zip(coefs[u], fs)) for u, fs in feats.items()) == pytest.approx(t, rel=1e-6)
    with pytest.raises(SpecError, match="no unit timing covers"):
        fit_joint({"stem": data.units["stem"]}, data.models)


def _counted_calibration(truth_block: int, truth_exponent: float, noise: float = 0.01):
    """Timings of real tiny-space units and whole models that follow known coefficients with MACs
    counted at ``truth_block`` and ``truth_exponent`` (plus an in-context cost per activation in the
    whole models and up to ``noise`` relative noise), as :func:`measure_calibration` would record them."""
    from archsearch.cost.latency import model_units, summed_features
    from archsearch.train.latency import CalibrationData, _cnn_unit_features, _random_model_spec, _unit_samples

    rng = random.Random(7)
    space = _tiny_space()
    true = {"stem": (0.02, 0.0, 0.05, 0.0, 0.01, 0.0), "k1kxk1": (0.05, 0.04, 0.03, 0.0, 0.02, 0.01),
            "head": (0.01, 0.1, 0.0, 0.0, 0.01, 0.0)}

    def ms(feats: dict) -> float:
        return sum(sum(a * f for a, f in zip(true[u], fs)) for u, fs in feats.items()) * (1 + rng.uniform(-noise, noise))

    configs = _unit_samples(space, space.resolution, 40, rng, None)
    specs = [_random_model_spec(space, rng, space.resolution, None) for _ in range(10)]
    unit_calls = [[[ms({u: _cnn_unit_features(u, cfg, truth_block, truth_exponent)}) / 1e3]] for u, cfg in configs]
    model_calls = []
    for spec in specs:
        feats = summed_features(list(model_units(spec, truth_block, truth_exponent)))
        model_calls.append([(ms(feats) + 0.01 * sum(f[4] for f in feats.values())) / 1e3])
    data = CalibrationData(space.name, "cpu", "test", "0", 1, 1, space.resolution, 1, {}, [], "median", 1,
                           [(u, _cnn_unit_features(u, cfg)) for u, cfg in configs],
                           [summed_features(list(model_units(spec))) for spec in specs], (unit_calls, model_calls), [],
                           1, 0.0, configs, specs)
    return data.summarised("median")


@pytest.mark.parametrize("block,exponent", [(1, 0.0), (16, 0.0), (16, 0.3), (1, -0.2)])
def test_calibration_picks_how_its_whole_models_count_macs(block: int, exponent: float) -> None:
    from archsearch.train.latency import CHANNEL_BLOCKS, KERNEL_EXPONENTS, fit_calibration

    data = _counted_calibration(block, exponent, noise=0.0)
    model = fit_calibration(data)
    assert (model.channel_block, model.kernel_exponent) == (block, exponent)
    errors = model.residuals["counting"]
    assert len(errors) == len(CHANNEL_BLOCKS) * len(KERNEL_EXPONENTS) and errors[f"{block}/{exponent:g}"] < 1e-6
    # every other pair misfits (8 counts the tiny space's widths, all multiples of 8, as 1 does)
    assert min(e for key, e in errors.items() if key not in (f"{block}/{exponent:g}", f"{8 if block == 1 else -1}/{exponent:g}")) > 1e-4
    fixed = fit_calibration(data, channel_block=32, kernel_exponent=0.1)
    assert (fixed.channel_block, fixed.kernel_exponent) == (32, 0.1) and "counting" not in fixed.residuals
    with pytest.raises(SpecError, match="channel_block"):
        fit_calibration(data, channel_block=0)
    with pytest.raises(SpecError, match="kernel_exponent"):
        fit_calibration(data, kernel_exponent=3.0)


def test_calibration_tells_the_channel_block_through_timing_noise() -> None:
    from archsearch.train.latency import fit_calibration

    for block in (1, 16):
        model = fit_calibration(_counted_calibration(block, 0.0, noise=0.01), kernel_exponent=0.0)
        assert model.channel_block == block and model.residuals["model"]["rms_rel"] < 0.01


def test_only_cnn_calibrations_recount_their_channels() -> None:
    from archsearch.train.latency import fit_calibration

    data = _synthetic_calibration(0.0)  # features without the configs they came from
    model = fit_calibration(data)
    assert (model.channel_block, model.kernel_exponent) == (1, 0.0) and "counting" not in model.residuals
    with pytest.raises(SpecError, match="recounted"):
        data.recounted(16, 0.0)


def _small_design():
    from archsearch.solvers import Design

    return Design(8, (16, 32), (8, 16), (3, 3), (1, 2))


def test_calibrate_rejects_other_families() -> None:
    import types

    from archsearch.train.latency import calibrate_space

    with pytest.raises(SpecError, match="families"):  # every registered family is covered: a stand-in of another
        calibrate_space(types.SimpleNamespace(name="other-space", family="other"), runs=1)


def test_cli_calibrate_json_and_runs_minimum(capsys) -> None:
    args = build_parser().parse_args(["calibrate", "--space", "deepmad-cifar", "--threads", "1", "--samples", "8",
                                      "--runs", "2", "--models", "2", "--fit", "blocks", "--format", "json"])
    args.runs_min = 1  # few repeats in tests only; the CLI itself requires >= 30

    assert args.func(args) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["space"] == "deepmad-cifar" and obj["runs"] == 2 and set(obj["coefs"]) == {"stem", "k1kxk1", "head"}
    assert obj["residuals"]["model"]["n"] == 2 and obj["scale"] > 0
    assert find_latency_model("deepmad-cifar") is not None
    assert main(["calibrate", "--space", "deepmad-cifar", "--runs", "5"]) == 2
    assert "--runs" in capsys.readouterr().err


def test_cli_calibrate_shows_a_progress_bar_on_a_tty(monkeypatch, capsys) -> None:
    from archsearch.cli import calibrate as cli

    seen = []
    real = cli.stderr_console

    def console():
        c = real()
        seen.append(c)
        return c

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(cli, "stderr_console", console)
    args = build_parser().parse_args(["calibrate", "--space", "deepmad-cifar", "--threads", "1", "--samples", "8", "--runs", "2",
                                      "--models", "1", "--statistic", "min"])
    args.runs_min = 1
    assert args.func(args) == 0
    assert len(seen) == 1
    out = capsys.readouterr()
    assert "wrote" in out.err and "latency (min of 2 runs)" in out.out


def test_cli_calibrate_table_says_how_macs_are_counted(monkeypatch, capsys) -> None:
    import dataclasses

    import archsearch.train.latency as lat

    counted = dataclasses.replace(_model("deepmad-cifar"), channel_block=16, kernel_exponent=-0.2)
    monkeypatch.setattr(lat, "calibrate_space", lambda space, **kw: counted)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["calibrate", "--space", "deepmad-cifar"]) == 0
    out = capsys.readouterr().out
    assert "conv channels rounded up to 16 in the MACs" in out and "a kxk MAC counting (k²/9)^0.2" in out
    monkeypatch.setattr(lat, "calibrate_space", lambda space, **kw: _model("deepmad-cifar"))
    assert main(["calibrate", "--space", "deepmad-cifar"]) == 0
    assert "rounded up" not in capsys.readouterr().out


def test_uncalibrated_space_with_latency_budget_names_calibrate(capsys) -> None:
    assert main(["solve", "--space", "deepmad-cifar", "--budget", "latency=3ms"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "archsearch calibrate --space deepmad-cifar" in err


@pytest.mark.parametrize("budget", ["macs=20M,latency={lat}ms"])
def test_solve_with_latency_budget_keeps_candidates_within_it(capsys, budget) -> None:
    space = get_space("deepmad-cifar")
    model = _model("deepmad-cifar")
    model.save(latency_model_path("deepmad-cifar"))
    prog = DeepMADProgram(space, Budget(latency_ms=1.0))
    free = solve_deepmad(space, space.budget, time_limit=10, top_k=1)
    lat_free = prog.latency(prog.from_spec(free.best.spec))
    lat = round(0.8 * lat_free, 3)  # binding: the unconstrained optimum does not fit
    code = main(["solve", "--space", "deepmad-cifar", "--budget", budget.format(lat=lat), "--format", "json", "--time-limit", "5",
                 "--top-k", "3"])
    assert code == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["candidates"] and obj["bound_covers"] == (["macs"] if "macs" in budget else []) + ["latency"]
    for cand in obj["candidates"]:
        spec = CNNSpec.from_dict(cand["spec"])
        assert predict_latency(spec, model) <= lat * (1 + 1e-9)
        assert cand["latency_ms"] == pytest.approx(predict_latency(spec, model))


def test_a_forced_projection_is_counted_as_the_module_runs_it() -> None:
    """A stride-1 bottleneck of equal widths has no projection unless its superblock forces one
    (``shortcut="conv"``, the DeepMAD reference): then the 1x1 conv's MACs, weights and activations count."""
    cfg = dict(c_in=64, c_out=64, bottleneck=16, kernel=3, stride=1, r_in=8)
    plain, forced = block_features("k1kxk1", **cfg), block_features("k1kxk1", **cfg, projection=True)
    assert forced[1] - plain[1] == pytest.approx(64 * 64 * 64 / 1e6)  # pointwise MACs of the projection
    assert forced[5] - plain[5] == pytest.approx(64 * 64 / 1e6)  # its weights
    from archsearch.space import DEEPMAD_R50

    model = _model("deepmad-r50")
    st = list(DEEPMAD_R50.stages)  # superblock 4 (stride 1) made 1024 -> 1024: projected only when forced
    st[2], st[3] = dataclasses.replace(st[2], out_channels=1024), dataclasses.replace(st[3], in_channels=1024)
    forced = dataclasses.replace(DEEPMAD_R50, stages=tuple(st))
    auto = dataclasses.replace(forced, stages=tuple(dataclasses.replace(x, shortcut="auto") for x in st))
    extra = model.unit_ms("k1kxk1", block_features("k1kxk1", c_in=1024, c_out=1024, bottleneck=104, kernel=5, stride=1, r_in=14,
                                                   projection=True))
    extra -= model.unit_ms("k1kxk1", block_features("k1kxk1", c_in=1024, c_out=1024, bottleneck=104, kernel=5, stride=1, r_in=14))
    assert extra > 0 and predict_latency(forced, model) == pytest.approx(predict_latency(auto, model) + extra, rel=1e-12)
