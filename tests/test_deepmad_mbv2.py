"""DeepMAD's MobileNetV2-like space as its reference code searches it (TinyNAS,
``configs/classification/MBV2_FLOPs.py``): the head conv, the reference FLOPs of concrete designs counted
by hand from the per-layer rules of ``blocks_basic.ConvKXBN`` / ``ConvKXBNRELU`` and
``super_res_k1dwk1.ResK1DWK1``, the space's rules and its solves.
"""

from __future__ import annotations

import pytest

from archsearch.cost import cnn_layers, cnn_macs, cnn_params, deepmad_flops, deepmad_params
from archsearch.space import CNNSpec, StageSpec, StemSpec


def _spec(rows: list[tuple[int, int, int, int, int, int]], stem: int = 16, head: int = 1280) -> CNNSpec:
    """``rows``: per superblock (in, out, inner width, kernel, stride, depth)."""
    return CNNSpec(stem=StemSpec(out_channels=stem, kernel=3, stride=2),
                   stages=tuple(StageSpec("k1dwk1", *row) for row in rows), head_channels=head)


#: the reference config's initial structure (MBV2_FLOPs.py: every depth 1, k 3, inner width 2 out)
_START = [(16, 24, 48, 3, 2, 1), (24, 48, 96, 3, 2, 1), (48, 64, 128, 3, 2, 1), (64, 96, 192, 3, 1, 1), (96, 192, 384, 3, 2, 1)]


def _conv_bn(c_in: int, c_out: int, k: int, side_out: int, groups: int = 1, relu: bool = True) -> int:
    """One reference ConvKXBN (+ReLU) at its output side: MACs, 2 per BN output, 1 per ReLU output."""
    return (c_in // groups * k * k * c_out + 2 * c_out + (c_out if relu else 0)) * side_out**2


def test_head_conv_is_backbone_and_round_trips() -> None:
    spec = _spec(_START)
    head = cnn_layers(spec)[-1]
    assert (head.role, head.c_in, head.c_out, head.kernel, head.r_out, head.is_main) == ("head", 192, 1280, 1, 7, True)
    assert spec.out_channels == 1280
    assert CNNSpec.from_json(spec.to_json()) == spec
    assert "head_channels" not in _spec(_START, head=0).to_dict()  # earlier specs keep their JSON
    assert cnn_macs(spec) - cnn_macs(_spec(_START, head=0)) == 192 * 1280 * 49
    assert cnn_params(spec, with_head=True) - cnn_params(spec) == 1280 * 1000 + 1000
    assert deepmad_params(spec) == cnn_params(spec) == 425_136
    assert spec.layout()[2][-1] == ("head", "conv", 192, 1280, "-", 1, 1, 1)


def test_reference_start_structure_flops_by_hand() -> None:
    """The config's own initial network: 73 115 840 reference FLOPs (stem, five single-block superblocks,
    the head conv; no width is kept at a stride, so no pooled residual)."""
    sides = [112, 56, 28, 14, 14, 7]
    total = _conv_bn(3, 16, 3, 112)
    for i, (c, out, b, k, s, _) in enumerate(_START):
        total += _conv_bn(c, b, 1, sides[i]) + _conv_bn(b, b, k, sides[i + 1], groups=b) + _conv_bn(b, out, 1, sides[i + 1])
    total += _conv_bn(192, 1280, 1, 7)
    assert deepmad_flops(_spec(_START)) == total == 73_115_840


def test_design_with_repeats_and_a_pooled_residual_by_hand() -> None:
    """A deeper design: repeated blocks (identity residuals, not counted), a stride-2 superblock that keeps
    its width (the reference's 2x2 average-pooled residual adds its input elements), kernels 3 and 5."""
    rows = [(16, 16, 32, 3, 2, 2), (16, 40, 120, 5, 2, 3), (40, 40, 144, 5, 2, 2), (40, 96, 384, 3, 1, 4),
            (96, 160, 800, 5, 2, 4)]
    spec = _spec(rows)
    stem = (27 * 16 + 3 * 16) * 112**2                                     # 6 021 120
    sb1 = ((16 * 32 + 3 * 32) * 112**2 + (32 * 9 + 3 * 32) * 56**2 + (32 * 16 + 3 * 16) * 56**2
           + 16 * 112**2                                                   # pooled residual: in == out at stride 2
           + ((16 * 32 + 3 * 32) + (32 * 9 + 3 * 32) + (32 * 16 + 3 * 16)) * 56**2)
    sb2 = ((16 * 120 + 360) * 56**2 + (120 * 25 + 360) * 28**2 + (120 * 40 + 120) * 28**2
           + 2 * ((40 * 120 + 360) + (120 * 25 + 360) + (120 * 40 + 120)) * 28**2)
    sb3 = ((40 * 144 + 432) * 28**2 + (144 * 25 + 432) * 14**2 + (144 * 40 + 120) * 14**2 + 40 * 28**2
           + ((40 * 144 + 432) + (144 * 25 + 432) + (144 * 40 + 120)) * 14**2)
    sb4 = ((40 * 384 + 1152) + (384 * 9 + 1152) + (384 * 96 + 288)) * 14**2 \
        + 3 * ((96 * 384 + 1152) + (384 * 9 + 1152) + (384 * 96 + 288)) * 14**2
    sb5 = ((96 * 800 + 2400) * 14**2 + (800 * 25 + 2400) * 7**2 + (800 * 160 + 480) * 7**2
           + 3 * ((160 * 800 + 2400) + (800 * 25 + 2400) + (800 * 160 + 480)) * 7**2)
    head = (160 + 3) * 1280 * 7**2
    assert deepmad_flops(spec) == stem + sb1 + sb2 + sb3 + sb4 + sb5 + head == 199_194_016
    # the reference's model size: weights and 2 per BN channel of every conv, the head conv's included
    assert deepmad_params(spec) == cnn_params(spec)


def test_built_module_equals_the_cost_model() -> None:
    from archsearch.models import measured_costs

    spec = _spec([(16, 16, 32, 3, 2, 2), (16, 40, 120, 5, 2, 1), (40, 40, 144, 5, 2, 1), (40, 96, 384, 3, 1, 1),
                  (96, 160, 800, 5, 2, 1)])
    measured = measured_costs(spec)
    assert measured["measured_macs"] == cnn_macs(spec)
    assert measured["measured_params"] == cnn_params(spec)
    assert measured["measured_params_with_head"] == cnn_params(spec, with_head=True)
    assert measured["measured_macs_with_head"] == cnn_macs(spec, with_head=True)
