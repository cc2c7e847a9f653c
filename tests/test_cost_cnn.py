"""The CNN cost model equals the built module: params, MACs, the layer list and activation memory.

Every registered block (``basic``, ``k1kxk1``, ``k1dwk1``), both shortcut rules (``auto``, and
``conv`` for the ResNet blocks) and both stems (with and without the ResNet max-pool) are covered by
the parametrized and the random specs.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from archsearch.models import build_model, list_blocks, measured_costs
from archsearch.cost import cnn_activation_memory, cnn_layers, cnn_macs, cnn_params, costs
from archsearch.space import BLOCK_TYPES, CNNSpec, StageSpec, StemSpec, pool_out, resnet_spec


def _cost_keys(spec: CNNSpec) -> dict[str, int]:
    c = costs(spec)
    return {
        "measured_params": c["params"], "measured_macs": c["macs"],
        "measured_params_with_head": c["params_with_head"], "measured_macs_with_head": c["macs_with_head"],
    }


@dataclasses.dataclass
class ConvRecord:
    """One conv call of a forward pass, with what a residual branch holds meanwhile (measured)."""

    name: str
    conv: nn.Conv2d
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    held: int

    @property
    def elems(self) -> int:
        return _numel(self.in_shape) + _numel(self.out_shape)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _role(name: str) -> str:
    """``stem.conv`` -> stem, ``stages.0.1.conv2.conv`` -> conv2, ``stages.0.1.se.fc1`` -> fc1."""
    parts = name.split(".")
    if parts[0] == "stem":
        return "stem"
    return parts[4] if parts[3] == "se" else parts[3]


def trace_convs(model: nn.Module, resolution: int, in_channels: int = 3) -> list[ConvRecord]:
    """Runs a batch-1 forward on the meta device and records every conv call in order.

    ``held`` is measured from the module, independently of the cost model: the block input while a
    block with a residual path runs its later convs, the main-branch output (the last main conv's:
    conv2 of a basic block, conv3 otherwise) while the shortcut conv runs, and the SE input (the
    depthwise output, multiplied by the gate afterwards) during SE.
    """
    records: list[ConvRecord] = []
    state: dict[str, Any] = {}
    handles = []

    def block_pre(module: nn.Module, args: tuple) -> None:
        state.update(block_in=args[0].numel() if module.has_residual else 0, main_out=0, se_in=0,
                     last_main="conv2" if module.block_type == "basic" else "conv3")

    def on_conv(name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            role = _role(name)
            held = {
                "stem": 0, "conv1": 0, "conv2": state.get("block_in", 0), "conv3": state.get("block_in", 0),
                "shortcut": state.get("main_out", 0),
                "fc1": state.get("block_in", 0) + state.get("se_in", 0),
                "fc2": state.get("block_in", 0) + state.get("se_in", 0),
            }[role]
            records.append(ConvRecord(name, module, tuple(args[0].shape), tuple(out.shape), held))
            if role == state.get("last_main"):
                state["main_out"] = out.numel()
        return hook

    def se_pre(module: nn.Module, args: tuple) -> None:
        state["se_in"] = args[0].numel()

    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(on_conv(name)))
        elif hasattr(m, "has_residual"):
            handles.append(m.register_forward_pre_hook(block_pre))
        elif name.endswith(".se") and not isinstance(m, nn.Identity):
            handles.append(m.register_forward_pre_hook(se_pre))
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, in_channels, resolution, resolution, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return records


def trace_pools(model: nn.Module, resolution: int, in_channels: int = 3) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Input and output shapes of every max-pool call of a batch-1 forward on the meta device."""
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        shapes.append((tuple(args[0].shape), tuple(out.shape)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, in_channels, resolution, resolution, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return shapes


def _meta_model(spec: CNNSpec) -> nn.Module:
    with torch.device("meta"):
        return build_model(spec)


def _check_layers(spec: CNNSpec) -> None:
    """The cost model's layer list is the module's conv calls: geometry, params, MACs and held elements."""
    records = trace_convs(_meta_model(spec), spec.resolution, spec.stem.in_channels)
    layers = cnn_layers(spec)
    assert [_role(r.name) for r in records] == [
        {"se_reduce": "fc1", "se_expand": "fc2"}.get(layer.role, layer.role) for layer in layers
    ]
    for rec, layer in zip(records, layers):
        conv = rec.conv
        got = (conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.groups, conv.bias is not None)
        assert got == (layer.c_in, layer.c_out, layer.kernel, layer.stride, layer.groups, layer.bias), rec.name
        assert rec.in_shape[1:] == (layer.c_in, layer.r_in, layer.r_in), rec.name
        assert rec.out_shape[1:] == (layer.c_out, layer.r_out, layer.r_out), rec.name
        assert sum(p.numel() for p in conv.parameters()) + (2 * layer.c_out if layer.bn else 0) == layer.params
        assert rec.held == layer.residual_held, rec.name


def _spec(block: str, *, c_in: int, c_out: int, stride: int, se: bool = False, resolution: int = 33,
          depth: int = 2, kernel: int = 3, num_classes: int = 5, shortcut: str = "auto") -> CNNSpec:
    # bottleneck 72: se_channels rounds 72 / 4 = 18 to 16
    return CNNSpec(
        stem=StemSpec(out_channels=c_in, kernel=3, stride=2),
        stages=(StageSpec(block, c_in, c_out, bottleneck=72, kernel=kernel, stride=stride, depth=depth, se=se,
                          shortcut=shortcut),),
        resolution=resolution, num_classes=num_classes,
    )


def _block_cases() -> list:
    cases = []
    for block in list_blocks():
        for se, stride, (c_in, c_out), res in itertools.product((False, True), (1, 2), ((16, 16), (8, 24)), (33, 35)):
            if se and block != "k1dwk1":
                continue
            kernel = 5 if res == 35 else 3
            cases.append(pytest.param(block, se, stride, c_in, c_out, res, kernel, "auto",
                                      id=f"{block}-se{int(se)}-s{stride}-{c_in}to{c_out}-r{res}-k{kernel}"))
            if block != "k1dwk1" and res == 33:  # the forced projection, with and without a shape change
                cases.append(pytest.param(block, se, stride, c_in, c_out, res, kernel, "conv",
                                          id=f"{block}-proj-s{stride}-{c_in}to{c_out}-r{res}-k{kernel}"))
    return cases


def test_every_spec_block_type_has_a_module() -> None:
    assert list_blocks() == sorted(BLOCK_TYPES)


@pytest.mark.parametrize(("block", "se", "stride", "c_in", "c_out", "resolution", "kernel", "shortcut"), _block_cases())
def test_block_costs_equal_module(block: str, se: bool, stride: int, c_in: int, c_out: int, resolution: int,
                                  kernel: int, shortcut: str) -> None:
    spec = _spec(block, c_in=c_in, c_out=c_out, stride=stride, se=se, resolution=resolution, kernel=kernel,
                 shortcut=shortcut)
    assert measured_costs(spec) == _cost_keys(spec)
    _check_layers(spec)


@pytest.mark.parametrize("block", ["k1kxk1", "basic"])
def test_forced_projection_costs_one_1x1_conv_on_the_first_block(block: str) -> None:
    """``shortcut="conv"`` on a shape-keeping superblock adds exactly one 1x1 conv + BN (in the first block)."""
    auto = _spec(block, c_in=16, c_out=16, stride=1, depth=3)
    conv = _spec(block, c_in=16, c_out=16, stride=1, depth=3, shortcut="conv")
    side = 17  # the stem's output side at 33 px
    assert cnn_params(conv) - cnn_params(auto) == 16 * 16 + 2 * 16
    assert cnn_macs(conv) - cnn_macs(auto) == 16 * 16 * side * side
    assert [(layer.role, layer.block) for layer in cnn_layers(conv) if layer.role == "shortcut"] == [("shortcut", 0)]
    assert cnn_activation_memory(conv) >= cnn_activation_memory(auto)
    # where the shape changes the rules agree
    changed = dict(c_in=8, c_out=24, stride=1)
    assert cnn_layers(_spec(block, **changed, shortcut="conv")) == cnn_layers(_spec(block, **changed))


@pytest.mark.parametrize(("stem_kernel", "stem_stride", "resolution", "pool"), [
    (7, 4, 37, False), (1, 1, 9, False), (5, 2, 31, False), (7, 2, 37, True), (3, 1, 9, True), (7, 4, 30, True),
])
def test_stem_and_head_costs_equal_module(stem_kernel: int, stem_stride: int, resolution: int, pool: bool) -> None:
    spec = CNNSpec(
        stem=StemSpec(out_channels=8, in_channels=1, kernel=stem_kernel, stride=stem_stride, pool=pool),
        stages=(StageSpec("k1kxk1", 8, 8, bottleneck=4, stride=2),), resolution=resolution, num_classes=3,
    )
    assert measured_costs(spec) == _cost_keys(spec)
    assert measured_costs(spec.replace(num_classes=0))["measured_params_with_head"] == cnn_params(spec)
    _check_layers(spec)


@st.composite
def cnn_specs(draw: st.DrawFn) -> CNNSpec:
    """Valid CNN specs: every block type, kernel, stride, SE and shortcut option, stems with and without
    the max-pool, odd and even sides.

    Widths cost nothing on the meta device; depths and resolutions stay small to keep it fast.
    """
    width = st.integers(1, 160)
    prev = draw(width)
    stem = StemSpec(out_channels=prev, in_channels=draw(st.integers(1, 4)), kernel=draw(st.sampled_from((1, 3, 5, 7))),
                    stride=draw(st.sampled_from((1, 2, 4))), pool=draw(st.booleans()))
    stages = []
    for _ in range(draw(st.integers(1, 3))):
        block = draw(st.sampled_from(BLOCK_TYPES))
        out = draw(st.one_of(st.just(prev), width))
        stages.append(StageSpec(
            block, prev, out, bottleneck=draw(width), kernel=draw(st.sampled_from((1, 3, 5, 7))),
            stride=draw(st.sampled_from((1, 2))), depth=draw(st.integers(1, 3)),
            se=block == "k1dwk1" and draw(st.booleans()),
            shortcut="auto" if block == "k1dwk1" else draw(st.sampled_from(("auto", "conv"))),
        ))
        prev = out
    return CNNSpec(stem=stem, stages=tuple(stages), resolution=draw(st.integers(8, 64)),
                   num_classes=draw(st.integers(0, 12)))


@settings(max_examples=200, deadline=None)
@given(spec=cnn_specs())
def test_random_specs_costs_equal_module(spec: CNNSpec) -> None:
    assert measured_costs(spec) == _cost_keys(spec)
    _check_layers(spec)


DEEPMAD_R50 = CNNSpec(
    stem=StemSpec(out_channels=32, kernel=3, stride=2),
    stages=tuple(
        StageSpec("k1kxk1", c_in, c_out, bottleneck=b, kernel=5, stride=s, depth=d)
        for c_in, c_out, b, s, d in [
            (32, 128, 40, 2, 1), (128, 512, 48, 2, 11), (512, 872, 88, 2, 12), (872, 1024, 104, 1, 13),
            (1024, 1232, 120, 2, 15),
        ]
    ),
    resolution=224, num_classes=1000, name="DeepMAD-R50",
)


def test_deepmad_r50_published_backbone_costs() -> None:
    """Shen et al. (DeepMAD, CVPR 2023) report 24.2M backbone params and 4.04 GMACs for DeepMAD-R50."""
    measured = measured_costs(DEEPMAD_R50)
    assert cnn_params(DEEPMAD_R50) == measured["measured_params"] == 24_208_144
    assert cnn_macs(DEEPMAD_R50) == measured["measured_macs"] == 4_041_529_408
    assert measured == _cost_keys(DEEPMAD_R50)


def _activation_specs() -> list:
    residual_peak = CNNSpec(  # the peak is a stride-1 bottleneck's kxk conv with its input held
        stem=StemSpec(out_channels=8, stride=1),
        stages=(StageSpec("k1kxk1", 8, 8, bottleneck=8, stride=1), StageSpec("k1dwk1", 8, 16, bottleneck=8, stride=2)),
        resolution=33, num_classes=4,
    )
    se_peak = CNNSpec(
        stem=StemSpec(out_channels=4, stride=2),
        stages=(StageSpec("k1dwk1", 4, 4, bottleneck=24, kernel=5, stride=1, depth=2, se=True),),
        resolution=35, num_classes=0,
    )
    basic_peak = CNNSpec(  # the peak is a stride-1 basic block's second conv with the block input held
        stem=StemSpec(out_channels=16, stride=1),
        stages=(StageSpec("basic", 16, 16, bottleneck=16, stride=1, depth=2), StageSpec("basic", 16, 32, bottleneck=24, stride=2)),
        resolution=34, num_classes=3,
    )
    return [pytest.param(residual_peak, True, id="residual-peak"), pytest.param(se_peak, True, id="se-block"),
            pytest.param(DEEPMAD_R50.replace(resolution=65), True, id="deepmad-r50-65px"),
            pytest.param(basic_peak, True, id="basic-block"),
            pytest.param(resnet_spec(18, resolution=64), False, id="resnet18-pool-peak")]


@pytest.mark.parametrize(("spec", "residual_matters"), _activation_specs())
def test_activation_memory_matches_measured_conv_tensors(spec: CNNSpec, residual_matters: bool) -> None:
    model = _meta_model(spec)
    records = trace_convs(model, spec.resolution, spec.stem.in_channels)
    pools = [_numel(i) + _numel(o) for i, o in trace_pools(model, spec.resolution, spec.stem.in_channels)]
    assert len(pools) == int(spec.stem.pool)
    plain_peak = max(r.elems for r in records)  # conv input + output, as the hooks see them
    held_peak = max([r.elems + r.held for r in records] + pools)
    memory = cnn_activation_memory(spec)
    assert memory >= 4 * plain_peak
    assert memory == 4 * held_peak
    if residual_matters:  # the residual term is exercised, not vacuously zero
        assert memory > 4 * max([plain_peak] + pools)
    elif spec.stem.pool:  # the stem's max-pool is the peak: leaving it out would under-count
        assert memory > 4 * max(r.elems + r.held for r in records)


def test_pool_out_is_torch_max_pool_side() -> None:
    """``floor((s + 2 - 3) / 2) + 1`` (3x3, stride 2, padding 1) on odd and even sides: ``ceil(s / 2)``."""
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    for side in range(1, 70):
        assert pool(torch.empty(1, 1, side, side, device="meta")).shape[-1] == pool_out(side) == -(-side // 2), side


def test_tiny_spec_activation_memory(tiny_cnn_spec: CNNSpec) -> None:
    records = trace_convs(_meta_model(tiny_cnn_spec), tiny_cnn_spec.resolution)
    assert cnn_activation_memory(tiny_cnn_spec) == 4 * max(r.elems + r.held for r in records)
    _check_layers(tiny_cnn_spec)
