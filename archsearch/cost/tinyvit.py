"""Exact costs of a :class:`~archsearch.space.TinyViTSpec`: pure functions, no torch.

Conventions (checked against the built module and timm's ``tiny_vit_*`` in the tests):

* MACs count convolutions, linear layers and the two attention matmuls ``q k^T`` and ``attn v``
  (``FlopCounterMode`` total / 2 with the unfused attention); norms, activations, softmax, the
  query scaling, the relative-bias add, pooling and biases are not counted.
* Window attention runs on the zero-padded map: a stage of side ``r`` with window ``w`` has
  ``ceil(r / w)^2`` windows of ``w^2`` tokens, and ``qkv``, ``proj`` and the matmuls run on the
  padded tokens (the padding is cropped before the local conv and the MLP, which run on ``r^2``).
* Parameters count weights, biases, BatchNorm and LayerNorm affine parameters and the learned
  relative position bias (``heads * w^2`` per block: one entry per head and |offset| pair); the bias
  index table is a buffer, not counted.
* The *backbone* is the model after ``reset_classifier(0)``: everything but the final linear layer
  (the head's LayerNorm stays).
* Peak activation memory (an estimate, float32, batch 1): the largest over the operations of the
  live elements: input + output of every conv; in an attention block the block input (held by the
  residual), the padded tokens, ``qkv`` and the attention scores of all windows; in the MLP the
  block input, its hidden activations and its output.

:func:`tinyvit_ops` lists the same costs operation by operation (with the activation elements each
reads and writes), for the latency predictor; the tests prove its sums equal the totals here.
"""

from __future__ import annotations

import dataclasses

from archsearch.space.tinyvit import TinyViTSpec, conv_side, window_count

__all__ = [
    "TinyViTOp", "tinyvit_ops", "stem_ops", "mbconv_block_ops", "merge_ops", "attention_block_ops", "head_ops",
    "StageCost", "tinyvit_stage_costs", "tinyvit_params", "tinyvit_macs", "tinyvit_activation_memory",
    "stem_costs", "mbconv_stage_costs", "attention_stage_costs", "head_costs",
]


@dataclasses.dataclass(frozen=True)
class StageCost:
    """Params, MACs and peak activation elements of one part of the network."""

    params: int
    macs: int
    peak: int  # elements

    def __add__(self, other: "StageCost") -> "StageCost":
        return StageCost(self.params + other.params, self.macs + other.macs, max(self.peak, other.peak))


def _conv_bn(c_in: int, c_out: int, k: int, groups: int, side_out: int) -> tuple[int, int]:
    """(params, MACs) of a bias-free conv followed by BatchNorm."""
    w = c_out * (c_in // groups) * k * k
    return w + 2 * c_out, w * side_out * side_out


def stem_costs(dim: int, *, in_channels: int, resolution: int) -> StageCost:
    """The stem: 3x3 s2 Conv-BN (in -> dim/2), GELU, 3x3 s2 Conv-BN (dim/2 -> dim)."""
    half = dim // 2
    r1 = conv_side(resolution)
    r2 = conv_side(r1)
    p1, m1 = _conv_bn(in_channels, half, 3, 1, r1)
    p2, m2 = _conv_bn(half, dim, 3, 1, r2)
    peak = max(in_channels * resolution**2 + half * r1**2, half * r1**2 + dim * r2**2)
    return StageCost(p1 + p2, m1 + m2, peak)


def mbconv_stage_costs(dim: int, depth: int, side: int, *, expand_ratio: float) -> StageCost:
    """``depth`` MBConv blocks (1x1 expand, dw 3x3, 1x1 project, residual) at ``side``."""
    mid = int(dim * expand_ratio)
    p = m = 0
    for ci, co, k, g in ((dim, mid, 1, 1), (mid, mid, 3, mid), (mid, dim, 1, 1)):
        pp, mm = _conv_bn(ci, co, k, g, side)
        p, m = p + pp, m + mm
    area = side * side
    peak = dim * area + 2 * mid * area  # block input held + expanded input and output of the dw conv
    return StageCost(p * depth, m * depth, peak)


def attention_stage_costs(
    dim_in: int, dim: int, depth: int, side_in: int, *, heads: int, window: int, mlp_ratio: float,
    local_conv_size: int,
) -> StageCost:
    """Patch merging ``dim_in -> dim`` (side halves) and ``depth`` window-attention blocks."""
    side = conv_side(side_in)
    merge = [_conv_bn(dim_in, dim, 1, 1, side_in), _conv_bn(dim, dim, 3, dim, side), _conv_bn(dim, dim, 1, 1, side)]
    p = sum(x[0] for x in merge)
    m = sum(x[1] for x in merge)
    peak = max(dim_in * side_in**2 + dim * side_in**2, dim * side_in**2 + dim * side**2)

    area = side * side
    n_win = window_count(side, window) ** 2
    tokens = n_win * window * window  # padded
    hidden = int(dim * mlp_ratio)
    head_dim = dim // heads
    # attention: LayerNorm, qkv, proj, relative position bias
    p_attn = 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + heads * window * window
    m_attn = tokens * dim * 3 * dim + tokens * dim * dim + 2 * n_win * heads * (window * window) ** 2 * head_dim
    p_local, m_local = _conv_bn(dim, dim, local_conv_size, dim, side)
    p_mlp = 2 * dim + dim * hidden + hidden + hidden * dim + dim
    m_mlp = area * 2 * dim * hidden
    p += depth * (p_attn + p_local + p_mlp)
    m += depth * (m_attn + m_local + m_mlp)
    attn_peak = dim * area + tokens * dim + 3 * tokens * dim + n_win * heads * (window * window) ** 2
    mlp_peak = dim * area + hidden * area + dim * area
    return StageCost(p, m, max(peak, attn_peak, mlp_peak, 2 * dim * area))


def head_costs(dim: int, num_classes: int) -> tuple[StageCost, StageCost]:
    """The head's LayerNorm (backbone part) and its classifier (params, MACs)."""
    norm = StageCost(2 * dim, 0, 0)
    fc = StageCost(dim * num_classes + num_classes, dim * num_classes, 0) if num_classes else StageCost(0, 0, 0)
    return norm, fc


def tinyvit_stage_costs(spec: TinyViTSpec) -> list[StageCost]:
    """Costs of the stem and of each stage (stage 1 MBConv, the others patch merging + attention)."""
    sides = spec.sides
    out = [stem_costs(spec.embed_dims[0], in_channels=spec.in_channels, resolution=spec.resolution)]
    out.append(mbconv_stage_costs(spec.embed_dims[0], spec.depths[0], sides[0], expand_ratio=spec.mbconv_expand_ratio))
    for i in range(1, spec.n_stages):
        out.append(attention_stage_costs(
            spec.embed_dims[i - 1], spec.embed_dims[i], spec.depths[i], sides[i - 1], heads=spec.num_heads[i],
            window=spec.window_sizes[i], mlp_ratio=spec.mlp_ratio, local_conv_size=spec.local_conv_size,
        ))
    return out


def _total(spec: TinyViTSpec, with_head: bool) -> StageCost:
    total = StageCost(0, 0, 0)
    for part in tinyvit_stage_costs(spec):
        total = total + part
    norm, fc = head_costs(spec.num_features, spec.num_classes)
    total = total + norm
    return total + fc if with_head else total


def tinyvit_params(spec: TinyViTSpec, *, with_head: bool = False) -> int:
    """Parameter count of the backbone (``with_head``: of the whole model)."""
    return _total(spec, with_head).params


def tinyvit_macs(spec: TinyViTSpec, *, with_head: bool = False) -> int:
    """Multiply-accumulates at batch 1 of the backbone (``with_head``: of the whole model)."""
    return _total(spec, with_head).macs


def tinyvit_activation_memory(spec: TinyViTSpec) -> int:
    """Peak activation memory in bytes (float32, batch 1); see the module docstring."""
    return 4 * _total(spec, False).peak


@dataclasses.dataclass(frozen=True)
class TinyViTOp:
    """One costed operation of a TinyViT, with what the latency predictor needs.

    Attributes:
        role: ``<part>.<layer>``, part one of ``stem``, ``mbconv``, ``merge``, ``attn``, ``local``,
            ``mlp``, ``head``.
        kind: MACs kind: ``pw`` (1x1 convolution or linear layer), ``kxk`` (dense kxk convolution),
            ``dw`` (depthwise convolution), ``attn`` (the products ``q k^T`` and ``attn v``), or
            ``none`` (no MACs: norms, pooling).
        stage: Stage index (-1: the stem and the head).
        block: Block index within the stage (-1: the stem, the head, a stage's patch merging).
        params: Parameters (as :func:`tinyvit_params` counts them).
        macs: Multiply-accumulates at batch 1 (as :func:`tinyvit_macs`).
        elements: Activation elements the operation reads and writes, with the norm, activation,
            residual sum, padding and window (un)partition copies that go with it.
    """

    role: str
    kind: str
    stage: int
    block: int
    params: int
    macs: int
    elements: int


def stem_ops(dim: int, *, in_channels: int, resolution: int) -> list[TinyViTOp]:
    """The stem's operations: 3x3 s2 Conv-BN + GELU, 3x3 s2 Conv-BN."""
    half, r1 = dim // 2, conv_side(resolution)
    r2 = conv_side(r1)
    p1, m1 = _conv_bn(in_channels, half, 3, 1, r1)
    p2, m2 = _conv_bn(half, dim, 3, 1, r2)
    a1, a2 = half * r1 * r1, dim * r2 * r2
    return [TinyViTOp("stem.conv1", "kxk", -1, -1, p1, m1, in_channels * resolution**2 + a1 + 2 * a1 + 2 * a1),
            TinyViTOp("stem.conv2", "kxk", -1, -1, p2, m2, a1 + a2 + 2 * a2)]


def mbconv_block_ops(dim: int, side: int, *, expand_ratio: float, block: int = 0) -> list[TinyViTOp]:
    """One MBConv block of stage 0: 1x1 expand, dw 3x3, 1x1 project, residual sum, GELUs."""
    mid, area = int(dim * expand_ratio), side * side
    p1, m1 = _conv_bn(dim, mid, 1, 1, side)
    p2, m2 = _conv_bn(mid, mid, 3, mid, side)
    p3, m3 = _conv_bn(mid, dim, 1, 1, side)
    return [TinyViTOp("mbconv.conv1", "pw", 0, block, p1, m1, (dim + 5 * mid) * area),
            TinyViTOp("mbconv.conv2", "dw", 0, block, p2, m2, 6 * mid * area),
            TinyViTOp("mbconv.conv3", "pw", 0, block, p3, m3, (mid + 8 * dim) * area)]


def merge_ops(dim_in: int, dim: int, side_in: int, *, stage: int = 1) -> list[TinyViTOp]:
    """Patch merging into stage ``stage``: 1x1 Conv-BN, GELU, dw 3x3 s2 Conv-BN, GELU, 1x1 Conv-BN."""
    side = conv_side(side_in)
    a0, a = side_in * side_in, side * side
    p1, m1 = _conv_bn(dim_in, dim, 1, 1, side_in)
    p2, m2 = _conv_bn(dim, dim, 3, dim, side)
    p3, m3 = _conv_bn(dim, dim, 1, 1, side)
    return [TinyViTOp("merge.conv1", "pw", stage, -1, p1, m1, (dim_in + 5 * dim) * a0),
            TinyViTOp("merge.conv2", "dw", stage, -1, p2, m2, dim * a0 + 5 * dim * a),
            TinyViTOp("merge.conv3", "pw", stage, -1, p3, m3, 4 * dim * a)]


def attention_block_ops(dim: int, side: int, *, heads: int, window: int, mlp_ratio: float, local_conv_size: int,
                        stage: int = 1, block: int = 0) -> list[TinyViTOp]:
    """One TinyViT block at ``side``: window partition (zero-padded) and LayerNorm, qkv, the attention
    core with its relative bias and softmax, projection, un-partition and residual sum; the local
    dw Conv-BN; LayerNorm, fc1, GELU, fc2 and residual sum."""
    area, win = side * side, window * window
    n_win = window_count(side, window) ** 2
    tokens = n_win * win
    hidden, head_dim = int(dim * mlp_ratio), dim // heads
    scores = n_win * heads * win * win
    td, ad = tokens * dim, area * dim
    p_loc, m_loc = _conv_bn(dim, dim, local_conv_size, dim, side)
    return [
        TinyViTOp("attn.norm", "none", stage, block, 2 * dim, 0, ad + td + 2 * td),
        TinyViTOp("attn.qkv", "pw", stage, block, 3 * dim * dim + 3 * dim, 3 * td * dim, 4 * td),
        TinyViTOp("attn.core", "attn", stage, block, heads * win, 2 * scores * head_dim,
                  6 * td + 7 * scores + heads * win),
        TinyViTOp("attn.proj", "pw", stage, block, dim * dim + dim, td * dim, 6 * td + 3 * ad),
        TinyViTOp("local.conv", "dw", stage, block, p_loc, m_loc, 4 * ad),
        TinyViTOp("mlp.fc1", "pw", stage, block, 2 * dim + dim * hidden + hidden, ad * hidden,
                  3 * ad + 3 * area * hidden),
        TinyViTOp("mlp.fc2", "pw", stage, block, hidden * dim + dim, ad * hidden, area * hidden + 4 * ad),
    ]


def head_ops(dim: int, side: int, *, num_classes: int) -> list[TinyViTOp]:
    """The head: average pooling and LayerNorm (backbone), the linear classifier (when any)."""
    ops = [TinyViTOp("head.norm", "none", -1, -1, 2 * dim, 0, dim * side * side + 3 * dim)]
    if num_classes:
        ops.append(TinyViTOp("head.fc", "pw", -1, -1, dim * num_classes + num_classes, dim * num_classes,
                             dim + num_classes))
    return ops


def tinyvit_ops(spec: TinyViTSpec) -> list[TinyViTOp]:
    """Every costed operation of the whole model (classifier included) in execution order."""
    sides, dims = spec.sides, spec.embed_dims
    ops = stem_ops(dims[0], in_channels=spec.in_channels, resolution=spec.resolution)
    for j in range(spec.depths[0]):
        ops += mbconv_block_ops(dims[0], sides[0], expand_ratio=spec.mbconv_expand_ratio, block=j)
    for i in range(1, spec.n_stages):
        ops += merge_ops(dims[i - 1], dims[i], sides[i - 1], stage=i)
        for j in range(spec.depths[i]):
            ops += attention_block_ops(dims[i], sides[i], heads=spec.num_heads[i], window=spec.window_sizes[i],
                                       mlp_ratio=spec.mlp_ratio, local_conv_size=spec.local_conv_size, stage=i, block=j)
    return ops + head_ops(dims[-1], sides[-1], num_classes=spec.num_classes)
