"""Budgets, specs and spaces: grammar, validation, JSON round trips, registries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archsearch.errors import ArchsearchError, BudgetError, SpecError, UnknownNameError
from archsearch.space import Budget, CNNSpec, SearchSpace, StageSpec, StemSpec, get_space, list_spaces, load_spec, spec_from_dict

R50 = CNNSpec(
    stem=StemSpec(32),
    stages=tuple(StageSpec("k1kxk1", a, b, c, 5, s, L) for a, b, c, s, L in
                 [(32, 128, 40, 2, 1), (128, 512, 48, 2, 11), (512, 872, 88, 2, 12), (872, 1024, 104, 1, 13), (1024, 1232, 120, 2, 15)]),
)


def test_budget_grammar() -> None:
    b = Budget.parse("macs=4.13G,params=25.55M,latency=3ms,memory=50M")
    assert (b.macs, b.params, b.latency_ms, b.memory) == (4_130_000_000, 25_550_000, 3.0, 50_000_000)
    assert Budget.parse("macs=512K").macs == 512_000 and Budget.parse("params=1000").params == 1000
    assert Budget.parse("latency=250us").latency_ms == pytest.approx(0.25)
    assert Budget.parse("latency=0.01s").latency_ms == pytest.approx(10.0)
    assert Budget.parse(b.to_text()) == b
    assert Budget.from_json(b.to_json()) == b


@pytest.mark.parametrize("text, needle", [
    ("flops=1G", "accepted keys"), ("macs=1Q", "K, M, G or T"), ("latency=3h", "unit"), ("macs=0", "positive"),
    ("macs=-1G", "macs"), ("macs", "key=value"), ("macs=1G,macs=2G", "twice"), ("", "empty"),
])
def test_budget_errors_name_the_rule(text: str, needle: str) -> None:
    with pytest.raises(BudgetError, match=needle) as info:
        Budget.parse(text)
    assert isinstance(info.value, ArchsearchError)


def test_spec_json_round_trip(tmp_path: Path) -> None:
    text = R50.to_json()
    assert json.loads(text)["family"] == "cnn"
    assert CNNSpec.from_json(text) == R50 and load_spec(text) == R50
    path = tmp_path / "spec.json"
    path.write_text(text)
    assert load_spec(path) == R50
    path.write_text(json.dumps({"status": "optimal", "candidates": [{"spec": R50.to_dict()}]}))
    assert load_spec(path) == R50


@pytest.mark.parametrize("build, field", [
    (lambda: StageSpec("k9", 8, 8, 8), "stage.block"),
    (lambda: CNNSpec(StemSpec(16), (StageSpec("k1kxk1", 8, 16, 8),)), "in_channels"),
    (lambda: StageSpec("k1kxk1", 8, 8, 8, depth=0), "stage.depth"),
    (lambda: StageSpec("k1kxk1", 8, 8, 8, stride=3), "stage.stride"),
    (lambda: CNNSpec(StemSpec(8), (StageSpec("k1kxk1", 8, 8, 8),), resolution=-1), "resolution"),
    (lambda: spec_from_dict({**R50.to_dict(), "colour": "red"}), "unknown fields"),
    (lambda: spec_from_dict({"stem": {}}), "family"),
])
def test_spec_errors_name_the_field(build, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        build()


def test_space_registry() -> None:
    assert {"deepmad-r18", "deepmad-r34", "deepmad-r50", "deepmad-mbv2", "deepmad-cifar"} <= set(list_spaces())
    r50 = get_space("deepmad-r50")
    assert (r50.budget.macs, r50.budget.params, r50.rho0, r50.strides) == (4_130_000_000, 25_550_000, 0.3, (2, 2, 2, 1, 2))
    assert get_space("deepmad-mbv2").block == "k1dwk1" and get_space("deepmad-mbv2").rho0 == 0.5
    cifar = get_space("deepmad-cifar")
    assert cifar.resolution == 32 and cifar.stem_stride == 1 and cifar.strides == (1, 2, 2)
    with pytest.raises(UnknownNameError, match="known spaces"):
        get_space("nope")


@pytest.mark.parametrize("changes, field", [
    ({"strides": (3,)}, "strides"), ({"widths": (10, 100)}, "widths"), ({"se": True}, "se"), ({"rho0": 0}, "rho0"),
])
def test_space_validation(changes: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        SearchSpace(name="x", **changes)
