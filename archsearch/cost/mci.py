"""Exact costs of an :class:`~archsearch.space.MCiSpec`: pure functions, no torch.

Conventions (the tests prove them equal to the built module and to timm's ``fastvit_mci*``):

* MACs count convolutions, linear layers and the two attention matmuls (``FlopCounterMode``
  total / 2 with the unfused attention path); norms, activations, pooling, layer scales, biases
  and residual sums are not counted.
* Parameters count weights, biases, BatchNorm affine parameters and layer-scale vectors.
* The training form (``reparameterized=False``) has every reparameterisable branch: a MobileOne
  block is a kxk conv + BN, a 1x1 "scale" conv + BN when k > 1 (stem: if ``stem_scale_branch``)
  and a BN identity when input and output shapes agree; the large-kernel conv has a 3x3 conv +
  BN beside its 7x7 conv + BN; RepMixer adds a BN "norm" and a layer scale; RepCPE is a biased
  depthwise 7x7 conv beside an identity. The inference form fuses each into one biased conv.
* The *backbone* is everything but the linear head (``reset_classifier(0)``); the final conv
  stays.
* Peak activation memory (an estimate): the largest, over the operations of one forward pass, of
  the elements alive at once: the operation's input and output, one partial sum for a
  multi-branch block, the block input a residual holds meanwhile, and for attention q, k, v and
  the per-head score matrices; float32 bytes at batch 1.
"""

from __future__ import annotations

import dataclasses

from archsearch.space.mci import MCiSpec, half_up

__all__ = ["MCiOp", "mci_ops", "mci_params", "mci_macs", "mci_activation_memory", "mci_head_params",
           "mci_head_macs", "se_width_lkc", "se_width_final"]


def _make_divisible(v: float, divisor: int) -> int:
    """``v`` rounded to the nearest multiple of ``divisor``, at least ``divisor`` (timm's rounding
    of squeeze-excitation widths with ``round_limit=0``)."""
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


def se_width_lkc(dim: int) -> int:
    """Squeeze-excitation width of a patch embedding: a quarter of ``dim`` rounded to 8 (>= 8)."""
    return _make_divisible(dim * 0.25, 8)


def se_width_final(dim: int) -> int:
    """Squeeze-excitation width of the final conv: ``dim / 16`` rounded (>= 1)."""
    return _make_divisible(dim / 16, 1)


@dataclasses.dataclass(frozen=True)
class MCiOp:
    """One costed operation of the network (a conv with its branches, a linear, an attention core).

    Attributes:
        role: ``stem.0``, ``down.lkc``, ``down.se``, ``down.pw``, ``cpe``, ``repmixer``, ``ffn.dw``,
            ``ffn.fc1``, ``ffn.fc2``, ``attn.norm``, ``attn.qkv``, ``attn.core``, ``attn.proj``,
            ``scale`` (layer scales), ``final``, ``final.se``.
        stage: Stage index (-1: stem and final conv).
        block: Block index inside the stage (-1: not in a block).
        params: Parameters.
        macs: Multiply-accumulates at batch 1.
        memory: Elements alive while it runs (see the module docstring).
        fan_in: Inputs summed by one output (conv ``c_in k^2 / groups``; attention core: tokens);
            0 for operations off the main path (SE, norms, layer scales).
    """

    role: str
    stage: int
    block: int
    params: int
    macs: int
    memory: int
    fan_in: int = 0


def _mobileone(c_in: int, c_out: int, k: int, groups: int, side_out: int, *, stride: int, scale: bool,
               fused: bool, identity: bool = True) -> tuple[int, int]:
    """(params, MACs) of a MobileOne block with one kxk conv branch."""
    w = c_out * (c_in // groups) * k * k
    hw = side_out * side_out
    if fused:
        return w + c_out, hw * w
    params, macs = w + 2 * c_out, hw * w
    if scale and k > 1:
        w1 = c_out * (c_in // groups)
        params, macs = params + w1 + 2 * c_out, macs + hw * w1
    if identity and c_in == c_out and stride == 1:
        params += 2 * c_in
    return params, macs


def mci_ops(spec: MCiSpec) -> list[MCiOp]:
    """All costed operations of the backbone (every layer but the linear head) in execution order."""
    fused = spec.reparameterized
    ops: list[MCiOp] = []
    c_in, d0, r = spec.in_channels, spec.dims[0], spec.resolution
    scale = spec.stem_scale_branch
    # stem: 3x3 s2, depthwise 3x3 s2, 1x1
    r1 = half_up(r)
    p, m = _mobileone(c_in, d0, 3, 1, r1, stride=2, scale=scale, fused=fused)
    ops.append(MCiOp("stem.0", -1, -1, p, m, c_in * r * r + 2 * d0 * r1 * r1, c_in * 9))
    r2 = half_up(r1)
    p, m = _mobileone(d0, d0, 3, d0, r2, stride=2, scale=scale, fused=fused)
    ops.append(MCiOp("stem.1", -1, -1, p, m, d0 * r1 * r1 + 2 * d0 * r2 * r2, 9))
    p, m = _mobileone(d0, d0, 1, 1, r2, stride=1, scale=scale, fused=fused)
    ops.append(MCiOp("stem.2", -1, -1, p, m, 3 * d0 * r2 * r2, d0))
    side, prev = r2, d0
    for i, d in enumerate(spec.dims):
        if i > 0:
            out = half_up(side)
            hw_in, hw = side * side, out * out
            # large-kernel conv grouped by the input width: 7x7 (+ 3x3 branch) stride 2
            w7, w3 = d * 49, d * 9
            if fused:
                p, m = w7 + d, hw * w7
            else:
                p, m = w7 + w3 + 4 * d, hw * (w7 + w3)
            ops.append(MCiOp("down.lkc", i, -1, p, m, prev * hw_in + 2 * d * hw, 49))
            if spec.se_downsamples[i]:
                rd = se_width_lkc(d)
                ops.append(MCiOp("down.se", i, -1, 2 * d * rd + rd + d, 2 * d * rd, 2 * d * hw))
            p, m = _mobileone(d, d, 1, 1, out, stride=1, scale=True, fused=fused)
            ops.append(MCiOp("down.pw", i, -1, p, m, 3 * d * hw, d))
            side = out
        hw = side * side
        if spec.pos_embs[i]:
            ops.append(MCiOp("cpe", i, -1, 49 * d + d, hw * 49 * d, 2 * d * hw, 49))
        h = spec.hidden(i)
        k = spec.repmixer_kernel
        for j in range(spec.depths[i]):
            if spec.token_mixers[i] == "repmixer":
                if fused:
                    p, m = k * k * d + d, hw * k * k * d
                else:  # norm BN, mixer (BN identity, kxk dw + BN, 1x1 dw + BN when k > 1), layer scale
                    sc = 1 if k > 1 else 0
                    p, m = 2 * d + 2 * d + k * k * d + 2 * d + sc * 3 * d + d, hw * (k * k + sc) * d
                ops.append(MCiOp("repmixer", i, j, p, m, 3 * d * hw, k * k))
            else:
                n_tok = hw
                heads = d // spec.head_dim
                ops.append(MCiOp("attn.norm", i, j, 2 * d, 0, 2 * d * hw))
                ops.append(MCiOp("attn.qkv", i, j, 3 * d * d, n_tok * 3 * d * d, 5 * d * hw, d))
                ops.append(MCiOp("attn.core", i, j, 0, 2 * n_tok * n_tok * d,
                                 4 * d * hw + heads * n_tok * n_tok, n_tok))
                ops.append(MCiOp("attn.proj", i, j, d * d + d, n_tok * d * d, 3 * d * hw, d))
                ops.append(MCiOp("scale", i, j, d, 0, 0))
            ops.append(MCiOp("ffn.dw", i, j, 49 * d + 2 * d, hw * 49 * d, 3 * d * hw, 49))
            ops.append(MCiOp("ffn.fc1", i, j, d * h + h, hw * d * h, 2 * d * hw + h * hw, d))
            ops.append(MCiOp("ffn.fc2", i, j, h * d + d, hw * h * d, 2 * d * hw + h * hw, h))
            ops.append(MCiOp("scale", i, j, d, 0, 0))
        prev = d
    # final conv: 3x3 grouped by the last width, to cls_ratio x width, with SE
    f = spec.num_features
    p, m = _mobileone(prev, f, 3, prev, side, stride=1, scale=True, fused=fused)
    ops.append(MCiOp("final", -1, -1, p, m, prev * side * side + 2 * f * side * side, 9))
    rd = se_width_final(f)
    ops.append(MCiOp("final.se", -1, -1, 2 * f * rd + rd + f, 2 * f * rd, 2 * f * side * side))
    return ops


def mci_head_params(spec: MCiSpec) -> int:
    return spec.num_features * spec.num_classes + spec.num_classes if spec.num_classes else 0


def mci_head_macs(spec: MCiSpec) -> int:
    return spec.num_features * spec.num_classes


def mci_params(spec: MCiSpec, *, with_head: bool = False) -> int:
    """Parameter count of the backbone (``with_head``: of the whole model, the projection included)."""
    total = sum(op.params for op in mci_ops(spec))
    return total + (mci_head_params(spec) if with_head else 0)


def mci_macs(spec: MCiSpec, *, with_head: bool = False) -> int:
    """Multiply-accumulates at batch 1 of the backbone (``with_head``: of the whole model)."""
    total = sum(op.macs for op in mci_ops(spec))
    return total + (mci_head_macs(spec) if with_head else 0)


def mci_activation_memory(spec: MCiSpec) -> int:
    """Peak activation memory in bytes (float32, batch 1); see the module docstring."""
    return 4 * max(op.memory for op in mci_ops(spec))
