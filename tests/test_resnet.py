"""The published ResNets (He et al., CVPR 2016) as specs: built exactly as timm's resnet18/34/50, and the
``basic`` block and max-pool stem through JSON, the DeepMAD objective and the latency predictor.

Counting runs on the meta device, so the 224 px models cost no arithmetic.
"""

from __future__ import annotations

import json
import math

import pytest
import timm
import torch

from archsearch.models import build_model, count_macs, count_params, measured_costs
from archsearch.cost import cnn_macs, cnn_params
from archsearch.cost.latency import LatencyModel, block_features, cnn_units, predict_latency, stem_features
from archsearch.errors import SpecError
from archsearch.objectives import deepmad_score, depth_penalty
from archsearch.space import CNNSpec, StageSpec, StemSpec, load_spec, resnet_spec

log = math.log

#: Whole-model parameters and MACs at 224 px, 1000 classes, of timm's models (``FlopCounterMode`` / 2).
TIMM_COUNTS = {18: (11_689_512, 1_814_073_344), 34: (21_797_672, 3_663_761_408), 50: (25_557_032, 4_089_184_256)}


def _timm_counts(depth: int, resolution: int) -> tuple[int, int]:
    with torch.device("meta"):
        model = timm.create_model(f"resnet{depth}", pretrained=False, num_classes=1000)
    return count_params(model), count_macs(model, resolution)


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_resnet_params_and_macs_equal_timm_at_224(depth: int) -> None:
    spec = resnet_spec(depth)
    assert spec.name == f"resnet{depth}" and spec.resolution == 224 and spec.num_classes == 1000
    timm_counts = _timm_counts(depth, 224)
    assert timm_counts == TIMM_COUNTS[depth]
    measured = measured_costs(spec)
    assert (measured["measured_params_with_head"], measured["measured_macs_with_head"]) == timm_counts
    assert (cnn_params(spec, with_head=True), cnn_macs(spec, with_head=True)) == timm_counts
    assert (cnn_params(spec), cnn_macs(spec)) == (measured["measured_params"], measured["measured_macs"])


@pytest.mark.parametrize(("depth", "resolution", "num_classes"), [(18, 65, 10), (50, 97, 0)])
def test_resnet_costs_equal_timm_at_odd_sides(depth: int, resolution: int, num_classes: int) -> None:
    with torch.device("meta"):
        model = timm.create_model(f"resnet{depth}", pretrained=False, num_classes=num_classes)
    spec = resnet_spec(depth, num_classes=num_classes, resolution=resolution)
    assert cnn_params(spec, with_head=True) == count_params(model)
    assert cnn_macs(spec, with_head=True) == count_macs(model, resolution)


def test_resnet_feature_maps_equal_timm() -> None:
    with torch.device("meta"):
        ours = timm.create_model("archsearch_cnn", spec=resnet_spec(18), features_only=True)
        theirs = timm.create_model("resnet18", pretrained=False, features_only=True)
    assert ours.feature_info.channels() == theirs.feature_info.channels() == [64, 64, 128, 256, 512]
    assert ours.feature_info.reduction() == theirs.feature_info.reduction() == [2, 4, 8, 16, 32]
    x = torch.empty(1, 3, 65, 65, device="meta")
    assert [f.shape for f in ours(x)] == [f.shape for f in theirs(x)]


def test_resnet_spec_layout_and_errors() -> None:
    r50 = resnet_spec(50)
    assert [(s.block, s.in_channels, s.out_channels, s.bottleneck, s.stride, s.depth) for s in r50.stages] == [
        ("k1kxk1", 64, 256, 64, 1, 3), ("k1kxk1", 256, 512, 128, 2, 4), ("k1kxk1", 512, 1024, 256, 2, 6),
        ("k1kxk1", 1024, 2048, 512, 2, 3),
    ]
    assert r50.stem == StemSpec(64, kernel=7, stride=2, pool=True) and r50.depth == 16
    assert [s.depth for s in resnet_spec(18).stages] == [2, 2, 2, 2] and resnet_spec(34).depth == 16
    assert {s.block for s in resnet_spec(34).stages} == {"basic"}
    assert r50.layout()[2][0][1] == "conv+maxpool"
    with pytest.raises(SpecError, match=r"resnet depth: expected one of \[18, 34, 50\], got 101"):
        resnet_spec(101)
    with pytest.raises(SpecError, match="stem.pool: expected true or false"):
        StemSpec(8, pool=1)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ JSON
def test_json_round_trip_of_pool_stem_and_basic_blocks(tmp_path) -> None:
    spec = resnet_spec(34, num_classes=10, resolution=64)
    data = json.loads(spec.to_json())
    assert data["stem"]["pool"] is True and data["stages"][0]["block"] == "basic"
    assert CNNSpec.from_json(spec.to_json()) == spec
    path = tmp_path / "r34.json"
    path.write_text(spec.to_json())
    assert load_spec(path) == spec
    assert build_model(path).spec == spec


def test_specs_without_the_pool_keep_their_json() -> None:
    """An old spec's JSON has no ``pool``; it loads, and is written back without one (same candidate keys)."""
    old = {"family": "cnn", "stem": {"out_channels": 8, "in_channels": 3, "kernel": 3, "stride": 2},
           "stages": [{"block": "k1kxk1", "in_channels": 8, "out_channels": 16, "bottleneck": 8, "kernel": 3, "stride": 2,
                       "depth": 1, "se": False}], "resolution": 32, "num_classes": 10, "name": ""}
    spec = CNNSpec.from_dict(old)
    assert spec.stem.pool is False
    assert json.loads(spec.to_json()) == old
    assert CNNSpec.from_json(spec.to_json()) == spec


# ------------------------------------------------------------------------------------- DeepMAD objective
@pytest.mark.parametrize("pool", [False, True])
def test_deepmad_entropy_of_basic_blocks(pool: bool) -> None:
    """Per basic block 1/2 [log(c_in k^2) + log(b k^2)] (DeepMAD's per-conv rule); the stem's stage
    resolution R_1 is the side after the max-pool."""
    spec = CNNSpec(stem=StemSpec(out_channels=8, kernel=3, stride=2, pool=pool),
                   stages=(StageSpec("basic", 8, 16, bottleneck=12, kernel=5, stride=2, depth=2),), resolution=32)
    e_stem = 0.5 * log(3 * 9)
    e_total = e_stem + 0.5 * (log(8 * 25) + log(12 * 25)) + 0.5 * (log(16 * 25) + log(12 * 25))
    r1 = 8 if pool else 16  # 32 -> 16 (conv) -> 8 (pool)
    r2 = r1 // 2
    sc = deepmad_score(spec)
    assert sc.stage_entropy == pytest.approx((e_stem, e_total))
    assert sc.entropy == pytest.approx((log(8) + log(r1**2)) * e_stem + 8 * (log(16) + log(r2**2)) * e_total)
    rho_1 = 1 / (3 * 9)
    rho_2 = 5 / math.exp((log(27) + log(200) + log(300) + log(400) + log(300)) / 5)
    assert sc.rho_prefixes == pytest.approx((rho_1, rho_2))


def test_deepmad_penalty_skip_defaults_to_two_for_basic_networks() -> None:
    spec = resnet_spec(34)
    sc = deepmad_score(spec)
    assert sc.penalty == pytest.approx(depth_penalty((3, 4, 6, 3), skip=2)) == deepmad_score(spec, penalty_skip=2).penalty
    assert sc.penalty != pytest.approx(deepmad_score(spec, penalty_skip=0).penalty)


# ------------------------------------------------------------------------------------- latency predictor
def _latency_model() -> LatencyModel:
    coefs = {"stem": (0.05, 0.0, 0.05, 0.0, 0.1, 0.0), "k1kxk1": (0.15, 0.03, 0.02, 0.0, 0.5, 0.2),
             "head": (0.06, 1.0, 0.0, 0.0, 0.0, 0.1)}
    return LatencyModel("deepmad-r50", "cpu", "test cpu", "0", 1, 1, 224, coefs, {u: {"n": 5.0} for u in coefs})


def test_latency_of_the_pool_stem_and_the_uncalibrated_basic_block() -> None:
    r50 = resnet_spec(50)
    units = list(cnn_units(r50))
    assert [u for u, _ in units] == ["stem"] + ["k1kxk1"] * 16 + ["head"]
    plain = stem_features(c_in=3, c_out=64, kernel=7, stride=2, r_in=224)
    pooled = units[0][1]
    assert pooled[:4] == plain[:4] and pooled[5] == plain[5]
    assert pooled[4] == pytest.approx(plain[4] + 64 * (112**2 + 56**2) / 1e6)  # the pool reads and writes
    assert units[1][1] == block_features("k1kxk1", c_in=64, c_out=256, bottleneck=64, kernel=3, stride=1, r_in=56)
    assert predict_latency(r50, _latency_model()) > 0
    with pytest.raises(SpecError, match="latency predictor is not calibrated for the 'basic' block"):
        predict_latency(resnet_spec(18), _latency_model())
