"""Forward timing shared by calibration, validation and the benchmarks (archsearch.train.timing)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from archsearch.cli.main import build_parser, main
from archsearch.cost.latency import LatencyModel
from archsearch.errors import SpecError
from archsearch.train.timing import STATISTICS, forward_samples, summarise_ms, time_forwards


class _Recorder(nn.Module):
    """Records its name in a shared log on every call, and whether it ran in eval mode."""

    def __init__(self, name: str, log: list) -> None:
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append((self.name, self.training, torch.is_grad_enabled()))
        return x


def test_statistics_of_known_calls() -> None:
    times = [0.004, 0.001, 0.003, 0.002, 0.005]  # seconds
    assert summarise_ms(times, "median") == pytest.approx(3.0)
    assert summarise_ms(times, "min") == pytest.approx(1.0)
    assert summarise_ms(times, "p25") == pytest.approx(2.0)  # inclusive quartile of 1..5 ms
    assert summarise_ms([0.001, 0.002], "p25") == pytest.approx(1.25)
    assert summarise_ms([0.007], "p25") == pytest.approx(7.0)
    assert set(STATISTICS) == {"median", "p25", "min"}
    with pytest.raises(SpecError, match=r"statistic: expected one of \['median', 'p25', 'min'\]"):
        summarise_ms(times, "mean")
    with pytest.raises(SpecError, match="no timed calls"):
        summarise_ms([], "median")


def test_calls_are_interleaved_in_rounds_after_warmup_in_eval_mode_without_grad() -> None:
    log: list = []
    a, b = _Recorder("a", log), _Recorder("b", log)
    b.eval()
    x = torch.zeros(1)
    samples = forward_samples([(a, x), (b, x)], runs=5, warmup=2, rounds=2)
    names = [n for n, _, _ in log]
    assert names[:4] == ["a", "a", "b", "b"]  # warm-up of each module first
    # two rounds of ceil(5 / 2) timed calls each, and no call the timer makes of its own
    assert names[4:] == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert [len(s) for s in samples] == [6, 6] and all(t > 0 for s in samples for t in s)
    assert not any(training or grad for _, training, grad in log)
    assert a.training and not b.training  # modes restored


def test_time_forwards_keeps_the_statistic_and_checks_it_first() -> None:
    log: list = []
    mod = _Recorder("m", log)
    (ms,) = time_forwards([(mod, torch.zeros(1))], runs=4, warmup=0, rounds=1, statistic="min")
    assert ms > 0 and len(log) == 4
    with pytest.raises(SpecError, match="statistic"):
        time_forwards([(mod, torch.zeros(1))], runs=4, statistic="p99")
    assert len(log) == 4  # refused before any call
    with pytest.raises(SpecError, match="rounds"):
        forward_samples([(mod, torch.zeros(1))], runs=4, rounds=0)


def test_a_slow_phase_is_spread_over_all_modules_and_p25_ignores_it(monkeypatch) -> None:
    """Four identical modules; the machine is 'slow' for one stretch of calls. Back to back, the
    module timed during that stretch looks 10x slower at the median; interleaved it does not, and
    the lower quartile of every module stays at the fast figure."""
    calls = {"n": 0}

    class Clocked:  # stands in for torch.utils.benchmark.Timer: a slow phase from call 30 to call 60
        def __init__(self, stmt: str, globals: dict, num_threads: int) -> None:
            self.forward = globals["forward"]

        def timeit(self, number: int):
            self.forward()
            calls["n"] += 1
            return type("M", (), {"median": 0.010 if 30 <= calls["n"] < 60 else 0.001})()

    items = [(nn.Identity(), torch.zeros(1)) for _ in range(4)]
    monkeypatch.setattr("torch.utils.benchmark.Timer", Clocked)
    back_to_back = time_forwards(items, runs=30, warmup=0, rounds=1)
    calls["n"] = 0
    interleaved = time_forwards(items, runs=30, warmup=0, rounds=6)
    calls["n"] = 0
    lower = time_forwards(items, runs=30, warmup=0, rounds=6, statistic="p25")
    assert back_to_back[1] == pytest.approx(10.0) and back_to_back[0] == pytest.approx(1.0)
    assert max(interleaved) == pytest.approx(1.0)  # 30 slow calls over 4 x 30: a quarter of each module's
    assert lower == pytest.approx([1.0] * 4)


def test_calibration_keeps_its_calls_and_each_statistic_refits() -> None:
    from archsearch.space import SearchSpace
    from archsearch.train.latency import fit_calibration, measure_calibration

    space = SearchSpace(name="tiny-timing", resolution=16, num_classes=4, stem_stride=1, strides=(1, 2), stem_widths=(8, 16),
                        widths=(8, 32), kernels=(3,), depths=(1, 2), penalty_skip=0)
    log: list = []
    extra = [(_Recorder(name, log), torch.zeros(1)) for name in ("test-a", "test-b")]
    data = measure_calibration(space, threads=1, samples=8, runs=4, warmup=1, rounds=2, models=2, statistic="p25",
                               extra=extra)
    assert data.statistic == "p25" and data.rounds == 2
    # extra modules (a benchmark's test models) are timed in the calibration's own rounds
    assert len(data.extra_calls) == 2 and all(len(c) == 4 for c in data.extra_calls)
    names = [name for name, _, _ in log]
    assert names.count("test-a") == names.count("test-b") > 4  # warm-up and the timer's own calls besides
    assert data.summarised("median").extra_calls == data.extra_calls
    median = data.summarised("median")
    for unit, (_, times) in data.units.items():
        assert all(lo <= hi + 1e-12 for lo, hi in zip(times, median.units[unit][1]))  # p25 <= median, same calls
    assert all(a <= b + 1e-12 for (_, a), (_, b) in zip(data.models, median.models))
    assert data.summarised("p25") == data
    model = fit_calibration(data)
    assert model.statistic == "p25"
    assert LatencyModel.from_dict(json.loads(json.dumps(model.to_dict()))) == model
    with pytest.raises(SpecError, match="latency file"):
        LatencyModel.from_dict(model.to_dict() | {"statistic": "mean"})
    assert LatencyModel.from_dict({k: v for k, v in model.to_dict().items() if k != "statistic"}).statistic == "median"


def test_train_refuses_a_bad_latency_statistic_before_training() -> None:
    from archsearch.train import get_dataset, get_recipe, train

    log: list = []
    model = _Recorder("m", log)
    model.pretrained_cfg = {"input_size": (1, 8, 8)}
    with pytest.raises(SpecError, match=r"latency_statistic: expected one of \['median', 'p25', 'min'\], got 'p99'"):
        train(model, get_dataset("digits"), get_recipe("quick"), latency_statistic="p99")
    assert not log  # nothing ran


def test_cli_calibrate_statistic_and_rounds(capsys) -> None:
    args = build_parser().parse_args(["calibrate", "--space", "deepmad-cifar", "--threads", "1", "--samples", "8",
                                      "--runs", "2", "--models", "1", "--rounds", "2", "--statistic", "p25", "--format", "json"])
    args.runs_min = 1
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["statistic"] == "p25"
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--space", "deepmad-cifar", "--statistic", "mean"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["validate", "nowhere", "--latency-statistic", "mean"])
    assert exc.value.code == 2
    assert "--latency-statistic" in capsys.readouterr().err
