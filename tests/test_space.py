"""archsearch.space: the budget grammar, CNN specs and their JSON, the search-space registry and its validation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.errors import ArchsearchError, BudgetError, SpecError, UnknownNameError
from archsearch.space import (
    BUDGET_KEYS, Budget, CNNSpec, SearchSpace, StageSpec, StemSpec, get_space, list_families, list_spaces, load_spec,
    spec_from_dict,
)

# DeepMAD-R50 as published (Shen et al., CVPR 2023; see PAPERS.md)
R50 = CNNSpec(
    stem=StemSpec(out_channels=32, in_channels=3, kernel=3, stride=2),
    stages=tuple(
        StageSpec("k1kxk1", cin, cout, b, kernel=5, stride=s, depth=L)
        for cin, cout, b, s, L in [
            (32, 128, 40, 2, 1), (128, 512, 48, 2, 11), (512, 872, 88, 2, 12), (872, 1024, 104, 1, 13),
            (1024, 1232, 120, 2, 15),
        ]
    ),
    resolution=224,
    num_classes=1000,
    name="deepmad-r50",
)

MIXED = CNNSpec(
    stem=StemSpec(out_channels=16, kernel=5, stride=1),
    stages=(
        StageSpec("k1dwk1", 16, 24, 96, kernel=7, stride=2, depth=2, se=True),
        StageSpec("k1dwk1", 24, 24, 72, kernel=3, stride=1, depth=1),
    ),
    resolution=33,
    num_classes=0,
)


# ---------------------------------------------------------------------------------------------- budgets
def test_budget_parses_the_full_grammar() -> None:
    b = Budget.parse("macs=4.13G,params=25.55M,latency=3ms,memory=50M")
    assert (b.macs, b.params, b.latency_ms, b.memory) == (4_130_000_000, 25_550_000, 3.0, 50_000_000)
    assert all(isinstance(v, int) for v in (b.macs, b.params, b.memory))
    assert isinstance(b.latency_ms, float)


@pytest.mark.parametrize("text, expected", [
    ("2K", 2_000), ("2k", 2_000), ("1.5M", 1_500_000), ("3G", 3_000_000_000), ("1T", 1_000_000_000_000),
    ("1000", 1_000), ("12345678", 12_345_678), ("0.5K", 500), ("1e6", 1_000_000), (" 7M ", 7_000_000),
])
def test_budget_count_suffixes_and_bare_numbers(text: str, expected: int) -> None:
    for key in ("macs", "params", "memory"):
        assert getattr(Budget.parse(f"{key}={text}"), key) == expected


@pytest.mark.parametrize("text, ms", [("3ms", 3.0), ("250us", 0.25), ("0.01s", 10.0), ("2s", 2000.0), ("1.5ms", 1.5)])
def test_budget_latency_units(text: str, ms: float) -> None:
    assert Budget.parse(f"latency={text}").latency_ms == pytest.approx(ms, rel=1e-12)


def test_budget_keys_are_case_and_space_insensitive_and_unset_keys_are_none() -> None:
    b = Budget.parse(" MACS = 1G , params=2M ")
    assert (b.macs, b.params, b.latency_ms, b.memory) == (1_000_000_000, 2_000_000, None, None)
    for text in ("macs=1G,,params=2M", "macs=1G,", ",macs=1G"):  # an empty item is a typo, not a default
        with pytest.raises(BudgetError, match="empty field"):
            Budget.parse(text)


@pytest.mark.parametrize("text, needles", [
    ("gflops=1G", ["unknown key 'gflops'", *BUDGET_KEYS]),
    ("macs=1G,speed=2", ["unknown key 'speed'", *BUDGET_KEYS]),
    ("latency=3h", ["'3h'", "'us'", "'ms'", "'s'"]),
    ("latency=3", ["'3'", "'us'", "'ms'", "'s'"]),  # latency needs a unit
    ("macs=1Q", ["'1Q'", "K, M, G or T"]),
    ("params=3MB", ["'3MB'", "K, M, G or T"]),
    ("macs=0", ["macs", "positive"]),
    ("params=0M", ["params", "positive"]),
    ("macs=-1G", ["macs", "positive"]),
    ("latency=0ms", ["latency", "positive"]),
    ("latency=-3ms", ["latency", "positive"]),
    ("macs=1e400", ["macs", "positive"]),
    ("macs", ["'macs'", "key=value"]),
    ("macs=1G;params=2M", ["'macs'", "'1G;params=2M'"]),
    ("macs:1G", ["'macs:1G'", "key=value"]),
    ("macs=", ["macs", "cannot read"]),
    ("macs=1G,macs=2G", ["'macs'", "twice"]),
    ("macs=1G,MACS=2G", ["'macs'", "twice"]),
    ("latency=1ms,latency=2ms", ["'latency'", "twice"]),
    ("", ["empty", *BUDGET_KEYS]),
    ("   ", ["empty"]),
])
def test_budget_errors_state_the_rule_and_the_value(text: str, needles: list[str]) -> None:
    with pytest.raises(BudgetError) as info:
        Budget.parse(text)
    assert isinstance(info.value, ArchsearchError) and isinstance(info.value, ValueError)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_budget_error_is_an_archsearch_error() -> None:
    assert issubclass(BudgetError, ArchsearchError)
    assert not issubclass(BudgetError, SpecError)


@pytest.mark.parametrize("kwargs", [{"macs": 0}, {"params": -5}, {"memory": "1G"}, {"macs": True}, {"latency_ms": 0.0},
                                    {"latency_ms": float("nan")}, {"latency_ms": float("inf")}])
def test_budget_constructor_rejects_non_positive_values(kwargs: dict) -> None:
    with pytest.raises(BudgetError, match="budget field"):
        Budget(**kwargs)


def test_budget_text_and_json_round_trip() -> None:
    b = Budget.parse("macs=4.13G,params=25.55M,latency=3ms,memory=50M")
    assert b.to_text() == "macs=4.13G,params=25.55M,latency=3ms,memory=50M"
    assert Budget.parse(b.to_text()) == b
    assert Budget.from_json(b.to_json()) == b
    assert json.loads(b.to_json()) == {"macs": 4_130_000_000, "params": 25_550_000, "latency_ms": 3.0, "memory": 50_000_000}
    partial = Budget(params=1_000)
    assert partial.to_text() == "params=1K" and Budget.parse(partial.to_text()) == partial
    assert Budget.from_json(partial.to_json()) == partial
    assert Budget().is_empty() and not partial.is_empty() and Budget().to_text() == ""


# Values with at most four significant digits: what ``to_text`` writes without loss.
_SIGNIFICANT = st.builds(lambda m, e: m * 10**e, st.integers(1, 9999), st.integers(0, 9))


@settings(max_examples=200, deadline=None)
@given(macs=st.none() | _SIGNIFICANT, params=st.none() | _SIGNIFICANT, memory=st.none() | _SIGNIFICANT,
       latency=st.none() | st.builds(lambda m, e: m * 10.0**e, st.integers(1, 99999), st.integers(-4, 2)))
def test_budget_round_trips_through_text_and_json(macs, params, memory, latency) -> None:
    b = Budget(macs=macs, params=params, memory=memory, latency_ms=latency)
    if b.is_empty():
        assert b.to_text() == ""
    else:
        back = Budget.parse(b.to_text())
        assert (back.macs, back.params, back.memory) == (b.macs, b.params, b.memory)
        if latency is not None:
            assert back.latency_ms == pytest.approx(b.latency_ms, rel=1e-12)
    assert Budget.from_json(b.to_json()) == b


def test_budget_from_json_rejects_unknown_fields() -> None:
    with pytest.raises(BudgetError, match="gflops"):
        Budget.from_json('{"gflops": 10}')


# ---------------------------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec", [R50, MIXED], ids=["r50", "mixed"])
def test_spec_json_round_trip(spec: CNNSpec, tmp_path: Path) -> None:
    text = spec.to_json()
    data = json.loads(text)
    assert data["family"] == "cnn"
    assert isinstance(data["stages"], list) and set(data["stem"]) == {"out_channels", "in_channels", "kernel", "stride"}
    back = CNNSpec.from_json(text)
    assert back == spec and isinstance(back.stages, tuple)
    assert all(isinstance(s, StageSpec) for s in back.stages) and isinstance(back.stem, StemSpec)
    assert CNNSpec.from_dict(spec.to_dict()) == spec
    assert spec_from_dict(json.loads(text)) == spec
    # load_spec: a JSON string, a path given as str and as Path, and a solve result
    assert load_spec(text) == spec
    path = tmp_path / "spec.json"
    path.write_text(text)
    assert load_spec(path) == spec and load_spec(str(path)) == spec
    result = tmp_path / "candidates.json"
    result.write_text(json.dumps({
        "status": "optimal", "space": "deepmad-r50", "bound": 1.0,
        "candidates": [{"spec": spec.to_dict(), "score": 1.0}, {"spec": R50.to_dict() if spec is MIXED else MIXED.to_dict()}],
    }))
    assert load_spec(result) == spec  # the first candidate
    assert load_spec(result.read_text()) == spec


def test_spec_dict_has_every_field() -> None:
    data = R50.to_dict()
    assert set(data) == {"family", "stem", "stages", "resolution", "num_classes", "name"}
    assert set(data["stages"][0]) == {"block", "in_channels", "out_channels", "bottleneck", "kernel", "stride", "depth", "se"}
    assert R50.depth == 52 and R50.out_channels == 1232


def test_load_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec("{not json")
    with pytest.raises(SpecError, match="no candidates"):
        load_spec(json.dumps({"status": "infeasible", "candidates": []}))
    with pytest.raises(SpecError, match="family"):
        load_spec(json.dumps({k: v for k, v in R50.to_dict().items() if k != "family"}))
    with pytest.raises(UnknownNameError, match="known families"):
        load_spec(json.dumps({**R50.to_dict(), "family": "vit-nope"}))


def _r50_dict(**changes) -> dict:
    return {**R50.to_dict(), **changes}


def _stage_dict(i: int, **changes) -> dict:
    data = R50.to_dict()
    data["stages"][i].update(changes)
    return data


@pytest.mark.parametrize("build, needles", [
    (lambda: StageSpec("k9", 8, 8, 8), ["stage.block", "'k9'", "k1kxk1", "k1dwk1"]),
    (lambda: CNNSpec(StemSpec(16), (StageSpec("k1kxk1", 8, 16, 8),)), ["stages[0].in_channels", "16", "8"]),
    (lambda: CNNSpec(StemSpec(16), (StageSpec("k1kxk1", 16, 32, 8), StageSpec("k1kxk1", 16, 32, 8))),
     ["stages[1].in_channels", "32", "16"]),
    (lambda: StageSpec("k1kxk1", 8, 8, 8, depth=0), ["stage.depth", "0"]),
    (lambda: StageSpec("k1kxk1", 8, 8, 8, depth=2.0), ["stage.depth"]),
    (lambda: StageSpec("k1kxk1", 8, 8, 8, stride=3), ["stage.stride", "3"]),
    (lambda: StageSpec("k1kxk1", 8, 8, 8, kernel=4), ["stage.kernel", "4"]),
    (lambda: StageSpec("k1kxk1", 0, 8, 8), ["stage.in_channels"]),
    (lambda: StageSpec("k1kxk1", 8, 8, -8), ["stage.bottleneck"]),
    (lambda: StageSpec("k1kxk1", 8, 8, 8, se=True), ["stage.se", "k1kxk1"]),
    (lambda: StageSpec("k1dwk1", 8, 8, 8, se=1), ["stage.se"]),
    (lambda: StemSpec(8, stride=3), ["stem.stride", "3"]),
    (lambda: StemSpec(0), ["stem.out_channels"]),
    (lambda: CNNSpec(StemSpec(8), (StageSpec("k1kxk1", 8, 8, 8),), resolution=-1), ["cnn.resolution", "-1"]),
    (lambda: CNNSpec(StemSpec(8), (StageSpec("k1kxk1", 8, 8, 8),), num_classes=-1), ["cnn.num_classes"]),
    (lambda: CNNSpec(StemSpec(8), ()), ["cnn.stages"]),
    (lambda: spec_from_dict(_r50_dict(colour="red")), ["unknown fields", "colour", "stages"]),
    (lambda: spec_from_dict(_stage_dict(2, colour="red")), ["stages[2]", "colour", "bottleneck"]),
    (lambda: spec_from_dict(_stage_dict(1, depth=0)), ["stage.depth"]),
    (lambda: spec_from_dict(_stage_dict(1, block="k2")), ["stage.block"]),
    (lambda: spec_from_dict(_r50_dict(stages="oops")), ["stages", "list"]),
    (lambda: spec_from_dict({"stem": {"out_channels": 8}, "stages": []}), ["family"]),
    (lambda: spec_from_dict(["not", "a", "dict"]), ["family"]),
    (lambda: CNNSpec.from_dict(_r50_dict(family="vit")), ["family", "'vit'"]),
    (lambda: CNNSpec.from_dict({"family": "cnn", "stages": []}), ["stem"]),
])
def test_spec_errors_name_the_field(build, needles: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        build()
    assert isinstance(info.value, ArchsearchError)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_specs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        R50.resolution = 256  # type: ignore[misc]
    assert R50.replace(resolution=256).resolution == 256 and R50.resolution == 224


# ---------------------------------------------------------------------------------------------- spaces
def test_registry_lists_the_builtin_spaces() -> None:
    names = list_spaces()
    assert {"deepmad-r18", "deepmad-r34", "deepmad-r50", "deepmad-mbv2", "deepmad-cifar"} <= set(names)
    assert names == sorted(names)
    for name in names:
        space = get_space(name)
        assert space.name == name and space.family in list_families() and space.solver  # a registered family, a solver
        if name.startswith("deepmad-"):
            assert space.family == "cnn"
        json.loads(space.to_json())  # JSON-serialisable
        assert space.summary()["name"] == name


def test_unknown_space_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_space("nope")
    msg = str(info.value)
    assert "'nope'" in msg and "known spaces" in msg
    assert all(name in msg for name in list_spaces())
    assert isinstance(info.value, ArchsearchError) and isinstance(info.value, KeyError)


@pytest.mark.parametrize("name, macs, params", [
    ("deepmad-r18", 1_820_000_000, 11_690_000), ("deepmad-r34", 3_680_000_000, 21_800_000),
    ("deepmad-r50", 4_130_000_000, 25_550_000),
])
def test_resnet_spaces_follow_the_paper(name: str, macs: int, params: int) -> None:
    space = get_space(name)
    assert (space.budget.flops, space.budget.params, space.budget.macs) == (macs, params, None)  # the paper's FLOPs
    assert space.shortcut == "conv" and space.bottleneck_rule == "deepmad" and space.stem_widths == (16, 32)
    plus = get_space(f"{name}-plus")  # the wider extension, in exact MACs
    assert (plus.budget.macs, plus.budget.params, plus.budget.flops) == (macs, params, None)
    assert plus.shortcut == "auto" and plus.bottleneck_rule == "ratio" and plus.stem_widths == (16, 64)
    assert space.rho0 == 0.3 and space.block == "k1kxk1" and space.strides == (2, 2, 2, 1, 2)
    assert space.kernels == (3, 5) and space.penalty_skip == 2 and space.budget_counts == "backbone"
    assert space.resolution == 224 and space.first_depth_max == 3 and space.last_stage_weight == 8.0


def test_r50_budget_equals_the_published_grammar() -> None:
    assert get_space("deepmad-r50").budget == Budget.parse("flops=4.13G,params=25.55M")
    assert get_space("deepmad-r50-plus").budget == Budget.parse("macs=4.13G,params=25.55M")


def test_mbv2_and_cifar_spaces() -> None:
    mbv2 = get_space("deepmad-mbv2-plus")
    assert mbv2.rho0 == 0.5 and mbv2.block == "k1dwk1" and mbv2.kernels == (3, 5, 7) and mbv2.penalty_skip == 0
    assert mbv2.strides == (1, 2, 2, 2, 1, 2, 1) and not mbv2.se
    cifar = get_space("deepmad-cifar")
    assert cifar.resolution == 32 and cifar.stem_stride == 1 and cifar.num_classes == 10
    assert cifar.strides == (1, 2, 2) and cifar.block == "k1kxk1"


def test_space_normalises_sequences() -> None:
    space = SearchSpace(name="x", strides=[2, 1], kernels=(5, 3))
    assert space.strides == (2, 1) and space.kernels == (3, 5) and space.n_superblocks == 2
    assert space.replace(se=False) == space


@pytest.mark.parametrize("changes, field", [
    ({"strides": (3,)}, "space.strides"),
    ({"strides": ()}, "space.strides"),
    ({"widths": (10, 100)}, "space.widths"),
    ({"widths": (64, 32)}, "space.widths"),
    ({"stem_widths": (12, 64)}, "space.stem_widths"),
    ({"se": True}, "space.se"),
    ({"se": True, "block": "k1kxk1"}, "space.se"),
    ({"block": "k3"}, "space.block"),
    ({"kernels": (4,)}, "space.kernels"),
    ({"kernels": ()}, "space.kernels"),
    ({"depths": (0, 4)}, "space.depths"),
    ({"depths": (5, 4)}, "space.depths"),
    ({"depths": (4, 8), "first_depth_max": 3}, "space.first_depth_max"),
    ({"bottleneck_ratio": (0.0, 1.0)}, "space.bottleneck_ratio"),
    ({"bottleneck_ratio": (1.0, 0.5)}, "space.bottleneck_ratio"),
    ({"rho0": 0}, "space.rho0"),
    ({"rho0": -0.3}, "space.rho0"),
    ({"max_width_ratio": 0.5}, "space.max_width_ratio"),
    ({"resolution": 4}, "space.resolution"),
    ({"budget_counts": "head"}, "space.budget_counts"),
])
def test_invalid_space_fields_raise_spec_error(changes: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        SearchSpace(name="x", **changes)
    assert field in str(info.value)


def test_k1dwk1_space_accepts_se() -> None:
    assert SearchSpace(name="x", block="k1dwk1", se=True).se
    assert get_space("deepmad-mbv2-plus").replace(se=True).se
