"""DeepMAD's own counting (reference code TinyNAS): the projection-shortcut option, ``deepmad_flops``,
``deepmad_params`` and the published DeepMAD-R50.

The hand counts below follow the per-block rules read from the reference code (see
:func:`archsearch.cost.deepmad_flops`); the module checks measure BatchNorm and ReLU elements on the
built network, independently of those rules' arithmetic.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archsearch.models import build_model
from archsearch.cost import cnn_layers, cnn_macs, cnn_params, deepmad_flops, deepmad_params
from archsearch.cost.cnn import deepmad_se_channels
from archsearch.errors import SpecError
from archsearch.objectives import deepmad_score
from archsearch.solvers.deepmad.program import DeepMADProgram
from archsearch.space import DEEPMAD_R50, Budget, CNNSpec, StageSpec, StemSpec, get_space, load_spec, se_channels


def _auto(spec: CNNSpec) -> CNNSpec:
    return spec.replace(stages=tuple(dataclasses.replace(s, shortcut="auto") for s in spec.stages))


def _stem8() -> StemSpec:
    return StemSpec(out_channels=8, kernel=3, stride=2)


# the published model


def test_deepmad_r50_reference_counts() -> None:
    """Shen et al. (DeepMAD, CVPR 2023), as counted by the reference code: 4 087 263 656 FLOPs, 24 208 144
    parameters (backbone); 4 041 529 408 MACs; 157 conv layers, rho 0.2998, S = 48 919.28 (PAPERS.md)."""
    r50 = DEEPMAD_R50
    assert all(s.shortcut == "conv" for s in r50.stages)
    assert deepmad_flops(r50) == 4_087_263_656
    assert deepmad_params(r50) == cnn_params(r50) == 24_208_144
    assert cnn_macs(r50) == 4_041_529_408
    assert sum(layer.is_main for layer in cnn_layers(r50)) == 157
    score = deepmad_score(r50, depth_penalty_on=False)
    assert score.entropy == pytest.approx(48_919.28, abs=0.01)
    assert round(score.rho, 4) == 0.2998
    # every first block of R50 changes width, so the "auto" rule builds the same network
    assert cnn_layers(_auto(r50)) == cnn_layers(r50)
    assert deepmad_flops(_auto(r50)) == deepmad_flops(r50)


def test_deepmad_r50_json_keeps_the_shortcut_and_round_trips() -> None:
    data = json.loads(DEEPMAD_R50.to_json())
    assert [s["shortcut"] for s in data["stages"]] == ["conv"] * 5
    assert load_spec(DEEPMAD_R50.to_json()) == DEEPMAD_R50
    assert CNNSpec.from_json(DEEPMAD_R50.to_json()) == DEEPMAD_R50


def test_auto_shortcut_is_left_out_of_the_json() -> None:
    """Every spec written before the field existed keeps its JSON (and the keys hashed from it)."""
    auto = _auto(DEEPMAD_R50)
    data = auto.to_dict()
    assert all("shortcut" not in s for s in data["stages"])
    assert CNNSpec.from_dict(data) == auto
    old = json.dumps({"family": "cnn", "stem": {"out_channels": 8, "in_channels": 3, "kernel": 3, "stride": 2},
                      "stages": [{"block": "k1kxk1", "in_channels": 8, "out_channels": 16, "bottleneck": 8,
                                  "kernel": 3, "stride": 2, "depth": 1, "se": False}],
                      "resolution": 32, "num_classes": 10, "name": ""})
    spec = CNNSpec.from_json(old)
    assert spec.stages[0].shortcut == "auto"
    assert json.loads(spec.to_json()) == json.loads(old)


# hand counts from the reference rules


def test_k1kxk1_hand_count() -> None:
    """16 px; stem 3->8 s2 (side 8); a shape-keeping superblock with the forced projection; a stride-2 one."""
    spec = CNNSpec(
        stem=_stem8(),
        stages=(StageSpec("k1kxk1", 8, 8, bottleneck=4, kernel=3, stride=1, depth=2, shortcut="conv"),
                StageSpec("k1kxk1", 8, 16, bottleneck=8, kernel=3, stride=2, depth=1)),
        resolution=16, num_classes=10,
    )
    stem = (3 * 9 + 2 + 1) * 8 * 8**2  # conv MACs, BN, ReLU per output element
    # conv1 (+BN +ReLU), kxk conv2 (+BN +ReLU), conv3 (+BN) and the ReLU after the sum, side 8
    main1 = ((8 * 4 + 3 * 4) + (4 * 4 * 9 + 3 * 4) + (4 * 8 + 3 * 8)) * 8**2
    proj1 = (8 * 8 + 2 * 8 + 8) * 8**2  # the forced projection: conv, BN and the sum it feeds
    # stride 2: conv1 at side 8, the rest at side 4, the residual's average pool over the block input
    main2 = (8 * 8 + 3 * 8) * 8**2 + (8 * 8 * 9 + 3 * 8) * 4**2 + (8 * 16 + 3 * 16) * 4**2
    pool2 = 8 * 8**2
    proj2 = (8 * 16 + 2 * 16 + 16) * 4**2
    assert deepmad_flops(spec) == stem + main1 + proj1 + main1 + main2 + pool2 + proj2 == 75_136
    assert deepmad_flops(_auto(spec)) == 75_136 - proj1
    assert deepmad_params(spec) == cnn_params(spec)


def test_k1dwk1_hand_count() -> None:
    """The reference inverted residual: ReLU after all three convs, an average-pooled identity residual
    at stride 2 when the width is kept, no residual otherwise, no cost for the identity sum or SE."""
    spec = CNNSpec(
        stem=_stem8(),
        stages=(StageSpec("k1dwk1", 8, 8, bottleneck=16, kernel=3, stride=2, depth=1),
                StageSpec("k1dwk1", 8, 16, bottleneck=32, kernel=5, stride=1, depth=2)),
        resolution=16, num_classes=10,
    )
    stem = (3 * 9 + 3) * 8 * 8**2
    sb1 = (8 * 16 + 3 * 16) * 8**2 + (16 * 9 + 3 * 16) * 4**2 + (16 * 8 + 3 * 8) * 4**2 + 8 * 8**2  # + avg pool
    sb2_first = ((8 * 32 + 3 * 32) + (32 * 25 + 3 * 32) + (32 * 16 + 3 * 16)) * 4**2
    sb2_second = ((16 * 32 + 3 * 32) + (32 * 25 + 3 * 32) + (32 * 16 + 3 * 16)) * 4**2
    assert deepmad_flops(spec) == stem + sb1 + sb2_first + sb2_second == 94_592
    assert deepmad_params(spec) == cnn_params(spec)
    with_se = spec.replace(stages=tuple(dataclasses.replace(s, se=True) for s in spec.stages))
    assert deepmad_flops(with_se) == 94_592  # the reference leaves SE out of its FLOPs


@pytest.mark.parametrize(("b", "ref", "ours"), [(72, 16, 16), (88, 16, 24), (10, 8, 8), (100, 24, 24), (30, 8, 8),
                                                (128, 32, 32), (60, 8, 16)])
def test_reference_se_width(b: int, ref: int, ours: int) -> None:
    assert deepmad_se_channels(b) == ref and se_channels(b) == ours


def test_se_parameters_follow_the_reference_se() -> None:
    """Reference SE: two bias-free 1x1 convs with BatchNorm, width 16 for b = 88 (archsearch: biases, 24)."""
    spec = CNNSpec(stem=_stem8(), stages=(StageSpec("k1dwk1", 8, 8, bottleneck=88, stride=1, depth=2, se=True),),
                   resolution=16, num_classes=0)
    ref_se = 88 * 16 + 2 * 16 + 16 * 88 + 2 * 88
    ours_se = 88 * 24 + 24 + 24 * 88 + 88
    assert deepmad_params(spec) == cnn_params(spec) - 2 * (ours_se - ref_se)
    assert deepmad_params(spec.replace(stages=(dataclasses.replace(spec.stages[0], se=False),))) == cnn_params(
        spec.replace(stages=(dataclasses.replace(spec.stages[0], se=False),)))


def test_odd_sides_use_the_reference_real_valued_side() -> None:
    """The reference scales by (resolution / stride)^2 as a real number: 16.5^2 at 33 px, not 17^2."""
    spec = CNNSpec(stem=StemSpec(out_channels=6, kernel=3, stride=2),
                   stages=(StageSpec("k1kxk1", 6, 6, bottleneck=3, kernel=1, stride=1),), resolution=33, num_classes=0)
    per_unit_side = (3 * 9 + 3) * 6 + (6 * 3 + 3 * 3) + (3 * 3 + 3 * 3) + (3 * 6 + 3 * 6)  # 261
    assert deepmad_flops(spec) == round(per_unit_side * 16.5**2) == 71_057


# the rules against the built module


def _measured_reference_flops(spec: CNNSpec) -> int:
    """Measured MACs plus per-element terms counted on the built module's tensors: 2 per BatchNorm
    output, 1 per ReLU output, the residual average pool's input at stride 2, the projected sums, and
    for k1dwk1 the reference's ReLU after the last conv (archsearch's block has none there). SE is
    built out: the reference leaves it out of its FLOPs."""
    spec = spec.replace(stages=tuple(dataclasses.replace(s, se=False) for s in spec.stages), num_classes=0)
    with torch.device("meta"):
        model = build_model(spec)
    counts = {"bn": 0, "relu": 0, "extra": 0}
    handles = []

    def add(key: str, factor: int = 1, use_input: bool = False):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            counts[key] += factor * (args[0] if use_input else out).numel()
        return hook

    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_hook(add("bn", 2)))
        elif isinstance(m, nn.ReLU):
            handles.append(m.register_forward_hook(add("relu")))
    for i, stage in enumerate(spec.stages):
        for j, blk in enumerate(model.stages[i]):
            stride = stage.stride if j == 0 else 1
            c_in = stage.in_channels if j == 0 else stage.out_channels
            if stage.block == "k1kxk1":
                if stride == 2:
                    handles.append(blk.register_forward_hook(add("extra", use_input=True)))
                if not isinstance(blk.shortcut, nn.Identity):
                    handles.append(blk.shortcut.register_forward_hook(add("extra")))
            else:
                handles.append(blk.conv3.register_forward_hook(add("extra")))
                if stride == 2 and c_in == stage.out_channels:
                    handles.append(blk.register_forward_hook(add("extra", use_input=True)))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as flops:
            model.eval()(torch.empty(1, spec.stem.in_channels, spec.resolution, spec.resolution, device="meta"))
    finally:
        for h in handles:
            h.remove()
    macs = flops.get_total_flops() // 2
    assert macs == cnn_macs(spec)
    return macs + counts["bn"] + counts["relu"] + counts["extra"]


@pytest.mark.parametrize("spec", [
    pytest.param(DEEPMAD_R50, id="deepmad-r50-224px"),
    pytest.param(CNNSpec(stem=_stem8(), stages=(
        StageSpec("k1kxk1", 8, 8, bottleneck=4, kernel=3, stride=1, depth=2, shortcut="conv"),
        StageSpec("k1kxk1", 8, 8, bottleneck=8, kernel=5, stride=2, depth=2),
        StageSpec("k1kxk1", 8, 24, bottleneck=8, kernel=3, stride=1, depth=1)), resolution=32), id="k1kxk1-mixed"),
    pytest.param(CNNSpec(stem=_stem8(), stages=(
        StageSpec("k1dwk1", 8, 8, bottleneck=24, kernel=3, stride=2, depth=2),
        StageSpec("k1dwk1", 8, 16, bottleneck=48, kernel=5, stride=2, depth=2, se=True),
        StageSpec("k1dwk1", 16, 16, bottleneck=64, kernel=7, stride=1, depth=1)), resolution=32), id="k1dwk1-mixed"),
])
def test_deepmad_flops_equal_measured_macs_plus_elementwise_terms(spec: CNNSpec) -> None:
    assert deepmad_flops(spec) == _measured_reference_flops(spec)


# refusals


def test_specs_without_a_reference_counterpart_are_refused() -> None:
    basic = CNNSpec(stem=_stem8(), stages=(StageSpec("basic", 8, 8, bottleneck=8),), resolution=16)
    with pytest.raises(SpecError, match=r"deepmad_flops: stages\[0\] is a basic block"):
        deepmad_flops(basic)
    assert deepmad_params(basic) == cnn_params(basic)


def test_a_max_pool_stem_counts_zero_and_resnet50_sits_beside_deepmad_r50() -> None:
    """An extension of the reference count (it has no max-pool): the pool costs nothing, the blocks after
    it run at the pooled side, so ResNet-50 can be set beside DeepMAD-R50 in DeepMAD's own count."""
    from archsearch.space import resnet_spec

    r50 = resnet_spec(50)
    assert deepmad_flops(r50) == _measured_reference_flops(r50) == 4_121_883_136
    assert deepmad_params(r50) == cnn_params(r50)


def test_deepmad_program_takes_only_the_shortcuts_of_its_space() -> None:
    space = get_space("deepmad-r50-plus")
    prog = DeepMADProgram(space, space.budget)
    with pytest.raises(SpecError, match="every stage of space 'deepmad-r50-plus' has shortcut='auto'"):
        prog.from_spec(DEEPMAD_R50)
    forced = DeepMADProgram(get_space("deepmad-r50"), Budget(flops=5_000_000_000))
    ev = forced.evaluate(forced.from_spec(DEEPMAD_R50))
    assert ev.flops == 4_087_263_656 and ev.macs == 4_041_529_408 and ev.params == 24_208_144
    design = prog.from_spec(_auto(DEEPMAD_R50))
    assert design.L == (1, 11, 12, 13, 15)


@pytest.mark.parametrize("name", ["deepmad-r50", "deepmad-r18", "deepmad-mbv2", "deepmad-mbv2-plus", "deepmad-cifar", "deepmad-fmnist"])
def test_program_flops_equal_deepmad_flops_on_random_designs(name: str) -> None:
    """The program's closed form (integer numerators over one denominator) equals the reference count of the
    built spec, for random designs of every template (28 px and 32 px sides are odd after a few strides), and
    so does :meth:`evaluate`'s, summed from its per-superblock cache."""
    from archsearch.solvers.designs import sample

    space = get_space(name)
    prog = DeepMADProgram(space, Budget(flops=10**15))
    for cand in sample(space, n=4, seed=3):
        d = prog.from_spec(cand.spec)
        assert prog.flops(d) == deepmad_flops(cand.spec) == prog.evaluate(d).flops


@pytest.mark.parametrize("name, flops, params, score", [
    ("deepmad-r18", 1_837_323_208, 11_153_088, 32_085.40),
    ("deepmad-r34", 3_675_274_792, 21_073_160, 43_107.87),
])
def test_published_deepmad_r18_r34_in_the_reference_count(name: str, flops: int, params: int, score: float) -> None:
    """Known answers for the published DeepMAD-R18/R34 (TinyNAS model files): the reference FLOPs equal the
    built module's measured count, and their penalised score in archsearch's paper-space program. Both end
    on a superblock narrower than the one before, which the reference space allows and ours does not, and
    R18 is 0.95 % over its own 1.82 G FLOPs budget."""
    from archsearch.space import DEEPMAD_R18, DEEPMAD_R34

    spec = DEEPMAD_R18 if name == "deepmad-r18" else DEEPMAD_R34
    assert deepmad_flops(spec) == flops and deepmad_params(spec) == params == cnn_params(spec)
    if name == "deepmad-r18":
        assert _measured_reference_flops(spec) == flops
    space = get_space(name)
    prog = DeepMADProgram(space, space.budget)
    d = prog.from_spec(spec)
    ev = prog.evaluate(d)
    assert ev.score == pytest.approx(score, abs=0.01) and ev.flops == flops
    assert not prog.is_valid(d)  # the narrower last superblock
    assert ev.feasible == (flops <= space.budget.flops)
