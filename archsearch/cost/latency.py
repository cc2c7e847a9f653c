"""Latency predictor of CNN, ViT, STViT and MCi specs: a per-unit-type formula fitted to on-device timings (no torch).

A network is cut into *units*, each of a type: for CNNs the stem (with its max-pool, if any, in its
activations), every block of every superblock (types ``k1kxk1`` and ``k1dwk1``; the ``basic`` block
has no unit type, as the DeepMAD solvers do not search it and no calibration times it, so predicting
a spec with one raises :class:`~archsearch.errors.SpecError`) and the head (global pooling +
classifier); for ViTs (family ``vit``: the NViT/ReViT spaces) the patch embedding, every transformer
block and the head (final LayerNorm + classifier); for STViTs the same plus the cross-attention layers (``st_cross``); for
MCi (FastViT) the stem, each stage's downsampling, every RepMixer or attention block and the final
layers with the head; for TinyViT the stem, every MBConv block, each stage's patch merging, every
window-attention block (attention, local conv and MLP) and the head (pooling, LayerNorm, classifier);
for MCi and TinyViT with features summed over the exact cost model's operations. Each unit's predicted
latency is a non-negative combination of its features (:data:`FEATURES`)::

    t_unit = a + b * 1x1 MACs + c * dense kxk MACs + d * depthwise MACs + e * activations + f * weights

with MACs, activation elements (read and written by its layers) and weights in millions, and the
coefficients fitted per unit type by non-negative least squares on relative errors
(:func:`fit_coefficients`). For a ViT block "1x1 MACs" are its linear layers' (a linear layer over
tokens is a 1x1 convolution), "kxk MACs" the token-mixing products ``Q K^T`` and ``A V``; the patch
embedding is a ``patch x patch`` convolution. A CNN conv's MACs count its channels rounded up to the
calibration's ``channel_block`` (:attr:`LatencyModel.channel_block`: conv kernels compute whole blocks
of channels), and a kxk or depthwise MAC counts ``(k^2 / 9)^-kernel_exponent`` (a 3x3 MAC counts 1;
:attr:`LatencyModel.kernel_exponent`: larger kernels reuse each input more). The model's latency is
the sum over its units. Coefficients come from ``archsearch calibrate`` (measuring code in
:mod:`archsearch.train.latency`), saved as JSON under :func:`latency_cache_dir` ``/<device>/<space>.json``.

Structure the solvers use: for fixed depths and kernels every CNN feature with unrounded channels is a
posynomial in the widths (and in ``k^2`` with the kernel exponent), and no larger than the rounded
one, so the posynomial with the calibrated coefficients never overestimates the prediction (a valid
relaxation of a latency budget); a ViT block's features are sums of an attention part (in the heads
and query/key/value widths) and an MLP part, so its predicted latency is separable in them and
linear in every per-block choice; a TinyViT stage's predicted latency is a sum of its units (the
patch merging in the incoming and outgoing dims, ``depth`` identical blocks), additive over stages
like its MACs and params.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from archsearch.errors import SpecError
from archsearch.space.cnn import CNNSpec, conv_out, pool_out, se_channels
from archsearch.space.mci import MCiSpec
from archsearch.space.stvit import STViTSpec
from archsearch.space.tinyvit import TinyViTSpec
from archsearch.space.vit import ViTSpec

__all__ = ["FEATURES", "UNIT_TYPES", "LATENCY_FAMILIES", "LatencyModel", "block_features", "stem_features", "head_features",
           "cnn_units", "vit_attention_features", "vit_mlp_features", "vit_block_features", "patch_embed_features",
           "vit_head_features", "vit_units", "cross_features", "stvit_units", "mci_units", "mci_unit_keys", "tinyvit_stem_features", "tinyvit_mbconv_features",
           "tinyvit_merge_features", "tinyvit_block_features", "tinyvit_head_features", "tinyvit_unit_keys", "tinyvit_units",
           "model_units", "predict_latency", "fit_coefficients", "latency_cache_dir", "latency_model_path", "load_latency_model",
           "find_latency_model", "require_latency_model", "fit_joint", "summed_features", "STATISTICS"]

FEATURES = ("const", "pw_mmacs", "kxk_mmacs", "dw_mmacs", "mactivations", "mweights")
UNIT_TYPES = ("stem", "k1kxk1", "k1dwk1", "head", "patch_embed", "vit_block", "vit_head", "st_cross",
              "mci_stem", "mci_down", "mci_repmixer", "mci_attention", "mci_final",
              "tinyvit_stem", "tinyvit_mbconv", "tinyvit_merge", "tinyvit_block", "tinyvit_head")
LATENCY_FAMILIES = ("cnn", "vit", "stvit", "mci", "tinyvit")  # families whose specs the predictor covers
STATISTICS = ("median", "p25", "min")  # what a timing keeps of its calls (see archsearch.train.timing)
_SCHEMA = 1


def _padded(channels: int, block: int) -> int:
    """``channels`` rounded up to a multiple of ``block``."""
    return -(-channels // block) * block


def _conv(c_in: int, c_out: int, k: int, stride: int, groups: int, r_in: int, block: int = 1,
          gamma: float = 0.0, pad_in: bool = True) -> tuple[float, ...]:
    """(1x1 MACs, dense kxk MACs, depthwise MACs, activation elements, weights) of one conv at batch 1;
    its MACs count the input (when ``pad_in``) and output channels rounded up to ``block``, and a kxk
    MAC counts ``(k^2 / 9)^-gamma``."""
    r_out = conv_out(r_in, stride)
    p_out = _padded(c_out, block)
    p_in = _padded(c_in, block) if pad_in else c_in
    macs = float(r_out * r_out * p_out * (c_in // groups if groups > 1 else p_in) * k * k)
    if k > 1 and gamma:
        macs *= (k * k / 9.0) ** -gamma
    acts = float(c_in * r_in * r_in + c_out * r_out * r_out)
    weights = float(c_out * (c_in // groups) * k * k)
    if groups > 1:
        return (0.0, 0.0, macs, acts, weights)
    return (macs, 0.0, 0.0, acts, weights) if k == 1 else (0.0, macs, 0.0, acts, weights)


def _features(convs: Sequence[tuple[float, ...]], extra_elems: float = 0.0) -> tuple[float, ...]:
    sums = [sum(c[i] for c in convs) for i in range(5)]
    sums[3] += extra_elems
    return (1.0, *(v / 1e6 for v in sums))


def block_features(block: str, *, c_in: int, c_out: int, bottleneck: int, kernel: int, stride: int, r_in: int,
                   se: bool = False, channel_block: int = 1, kernel_exponent: float = 0.0,
                   projection: bool = False) -> tuple[float, ...]:
    """Features of one block (see :data:`FEATURES`); the residual sum's elements count once. The convs'
    MACs count channels rounded up to ``channel_block`` (:attr:`LatencyModel.channel_block`), a kxk MAC
    ``(k^2 / 9)^-kernel_exponent`` (:attr:`LatencyModel.kernel_exponent`). ``projection``: a bottleneck
    whose shortcut is a 1x1 conv even at stride 1 and equal widths (``StageSpec.shortcut="conv"``, the
    first block of a DeepMAD reference superblock); the conv is counted as the module runs it."""
    b, r_out, cb, g = bottleneck, conv_out(r_in, stride), channel_block, kernel_exponent
    if block == "k1kxk1":
        convs = [_conv(c_in, b, 1, 1, 1, r_in, cb), _conv(b, b, kernel, stride, 1, r_in, cb, g), _conv(b, c_out, 1, 1, 1, r_out, cb)]
        if stride != 1 or c_in != c_out or projection:
            convs.append(_conv(c_in, c_out, 1, stride, 1, r_in, cb))
        return _features(convs, 2.0 * c_out * r_out * r_out)
    if block == "k1dwk1":
        convs = [_conv(c_in, b, 1, 1, 1, r_in, cb), _conv(b, b, kernel, stride, b, r_in, cb, g), _conv(b, c_out, 1, 1, 1, r_out, cb)]
        extra = 2.0 * c_out * r_out * r_out if (stride == 1 and c_in == c_out) else 0.0
        if se:
            rd = se_channels(b)
            convs += [(2.0 * b * rd, 0.0, 0.0, 2.0 * (b + rd), 2.0 * b * rd)]
            extra += 2.0 * b * r_out * r_out
        return _features(convs, extra)
    raise SpecError(f"block: the latency predictor is not calibrated for the {block!r} block; "
                    "it covers ['k1kxk1', 'k1dwk1']")


def stem_features(*, c_in: int, c_out: int, kernel: int, stride: int, r_in: int, pool: bool = False,
                  channel_block: int = 1, kernel_exponent: float = 0.0) -> tuple[float, ...]:
    """The stem conv; its output channels are rounded up to ``channel_block`` in its MACs, the image's are
    not (``kernel_exponent``: as :func:`block_features`). With ``pool`` the max-pool's input and output
    elements are added to the activations (it has no MACs or weights)."""
    conv = _conv(c_in, c_out, kernel, stride, 1, r_in, channel_block, kernel_exponent, pad_in=False)
    r = conv_out(r_in, stride)
    return _features([conv], c_out * (r * r + pool_out(r) ** 2) if pool else 0.0)


def head_features(*, channels: int, side: int, num_classes: int) -> tuple[float, ...]:
    """Global average pooling of ``channels x side^2`` and a linear layer to ``num_classes``."""
    return (1.0, channels * num_classes / 1e6, 0.0, 0.0, (channels * side * side + channels + num_classes) / 1e6,
            channels * num_classes / 1e6)


def cnn_units(spec: CNNSpec, channel_block: int = 1, kernel_exponent: float = 0.0) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of the whole model in execution order (MACs counted at
    ``channel_block`` and ``kernel_exponent``: :func:`block_features`)."""
    stem = spec.stem
    yield "stem", stem_features(c_in=stem.in_channels, c_out=stem.out_channels, kernel=stem.kernel, stride=stem.stride,
                                r_in=spec.resolution, pool=stem.pool, channel_block=channel_block,
                                kernel_exponent=kernel_exponent)
    r = stem.out_side(spec.resolution)
    for st in spec.stages:
        for j in range(st.depth):
            first = j == 0
            stride = st.stride if first else 1
            yield st.block, block_features(st.block, c_in=st.in_channels if first else st.out_channels, c_out=st.out_channels,
                                           bottleneck=st.bottleneck, kernel=st.kernel, stride=stride, r_in=r, se=st.se,
                                           channel_block=channel_block, kernel_exponent=kernel_exponent,
                                           projection=first and st.shortcut == "conv")
            r = conv_out(r, stride)
    if spec.num_classes:
        yield "head", head_features(channels=spec.out_channels, side=r, num_classes=spec.num_classes)


def vit_attention_features(*, embed_dim: int, heads: int, qk_dim: int, v_dim: int, tokens: int) -> tuple[float, ...]:
    """The attention half of a ViT block (its LayerNorm, Q/K/V, ``Q K^T``, softmax, ``A V``, projection,
    residual sum); constant term 0 (the block's constant is in :func:`vit_mlp_features`)."""
    d, n, h = embed_dim, tokens, heads
    qkv = h * (2 * qk_dim + v_dim)
    linear = n * d * qkv + n * h * v_dim * d
    mixing = h * n * n * (qk_dim + v_dim)
    # LayerNorm in/out, qkv in/out, the attention map written, read by softmax, written, read by A V,
    # A V out, projection in/out, residual sum
    acts = 2 * n * d + (n * d + n * qkv) + 4 * h * n * n + n * h * v_dim + (n * h * v_dim + n * d) + 2 * n * d
    weights = (d + 1) * qkv + (h * v_dim + 1) * d + 2 * d
    return (0.0, linear / 1e6, mixing / 1e6, 0.0, acts / 1e6, weights / 1e6)


def vit_mlp_features(*, embed_dim: int, mlp_dim: int, tokens: int) -> tuple[float, ...]:
    """The MLP half of a ViT block (LayerNorm, two linear layers, GELU, residual sum), with the
    block's constant term."""
    d, n, m = embed_dim, tokens, mlp_dim
    acts = 2 * n * d + (n * d + n * m) + 2 * n * m + (n * m + n * d) + 2 * n * d
    weights = (d + 1) * m + (m + 1) * d + 2 * d
    return (1.0, 2 * n * d * m / 1e6, 0.0, 0.0, acts / 1e6, weights / 1e6)


def vit_block_features(*, embed_dim: int, heads: int, qk_dim: int, v_dim: int, mlp_dim: int, tokens: int) -> tuple[float, ...]:
    """Features of one ViT block: the sum of its attention and MLP halves."""
    att = vit_attention_features(embed_dim=embed_dim, heads=heads, qk_dim=qk_dim, v_dim=v_dim, tokens=tokens)
    mlp = vit_mlp_features(embed_dim=embed_dim, mlp_dim=mlp_dim, tokens=tokens)
    return tuple(a + b for a, b in zip(att, mlp))


def patch_embed_features(*, in_channels: int, embed_dim: int, patch_size: int, resolution: int,
                         class_token: bool = True) -> tuple[float, ...]:
    """The patch-embedding convolution, the class token and the position embedding sum."""
    patches = (resolution // patch_size) ** 2
    tokens = patches + int(class_token)
    macs = patches * in_channels * patch_size**2 * embed_dim
    acts = in_channels * resolution**2 + patches * embed_dim + 2 * tokens * embed_dim
    weights = in_channels * patch_size**2 * embed_dim + embed_dim * (1 + int(class_token)) + tokens * embed_dim
    return (1.0, 0.0, macs / 1e6, 0.0, acts / 1e6, weights / 1e6)


def vit_head_features(*, embed_dim: int, tokens: int, num_classes: int) -> tuple[float, ...]:
    """The final LayerNorm over every token and the linear classifier."""
    d = embed_dim
    return (1.0, d * num_classes / 1e6, 0.0, 0.0, (2 * tokens * d + d + num_classes) / 1e6,
            (2 * d + (d + 1) * num_classes * (num_classes > 0)) / 1e6)


def vit_units(spec: ViTSpec) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of a ViT in execution order."""
    n, d = spec.num_tokens, spec.embed_dim
    yield "patch_embed", patch_embed_features(in_channels=spec.in_channels, embed_dim=d, patch_size=spec.patch_size,
                                              resolution=spec.resolution, class_token=spec.class_token)
    for b in spec.blocks:
        yield "vit_block", vit_block_features(embed_dim=d, heads=b.heads, qk_dim=b.qk_dim, v_dim=b.v_dim, mlp_dim=b.mlp_dim,
                                              tokens=n)
    yield "vit_head", vit_head_features(embed_dim=d, tokens=n, num_classes=spec.num_classes)


def cross_features(*, embed_dim: int, mlp_dim: int, queries: int, keys: int) -> tuple[float, ...]:
    """An STViT cross-attention layer (q queries over k keys/values: a semantic-token layer or the
    recovery block): LayerNorms, Q/K/V and output projections, ``Q K^T`` and ``A V``, the MLP."""
    d, q, k, m = embed_dim, queries, keys, mlp_dim
    linear = q * d * d + 2 * k * d * d + q * d * d + 2 * q * d * m
    mixing = 2 * q * k * d
    acts = (2 * q * d + 2 * k * d) + (q * d + k * d + 3 * k * d + q * d) + 4 * q * k + 2 * q * d + 2 * q * d \
        + (q * d + q * m) + 2 * q * m + (q * m + q * d) + 2 * q * d
    weights = 6 * d + (d + 1) * d + (d + 1) * 2 * d + (d + 1) * d + (d + 1) * m + (m + 1) * d
    return (1.0, linear / 1e6, mixing / 1e6, 0.0, acts / 1e6, weights / 1e6)


def stvit_units(spec: STViTSpec) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of an STViT in execution order: the patch embedding, the
    image-token layers, the semantic-token layers (M + c queries over N + c image tokens; the pooling
    that forms them is not a product and is left to the layers' constants), the layers on the
    semantic tokens, the recovery block, the head."""
    d, h, hd, m = spec.embed_dim, spec.num_heads, spec.head_dim, spec.mlp_dim
    n_img, n_sem = spec.image_tokens, spec.semantic_tokens
    yield "patch_embed", patch_embed_features(in_channels=spec.in_channels, embed_dim=d, patch_size=spec.patch_size,
                                              resolution=spec.resolution, class_token=spec.class_token)
    block = dict(embed_dim=d, heads=h, qk_dim=hd, v_dim=hd, mlp_dim=m)
    for _ in range(spec.semantic_layer):
        yield "vit_block", vit_block_features(**block, tokens=n_img)
    for _ in range(spec.semantic_layers):
        yield "st_cross", cross_features(embed_dim=d, mlp_dim=m, queries=n_sem, keys=n_img)
    for _ in range(spec.tail_layers):
        yield "vit_block", vit_block_features(**block, tokens=n_sem)
    final = n_sem
    if spec.recovery:
        yield "st_cross", cross_features(embed_dim=d, mlp_dim=m, queries=spec.num_patches, keys=n_sem)
        final = n_img
    yield "vit_head", vit_head_features(embed_dim=d, tokens=final, num_classes=spec.num_classes)


#: MCi operation roles (:func:`archsearch.cost.mci.mci_ops`) by feature: 1x1 convolutions and linear layers,
#: depthwise / grouped convolutions, and dense kxk convolutions with the attention core (token mixing).
_MCI_PW = ("stem.2", "down.pw", "down.se", "ffn.fc1", "ffn.fc2", "attn.qkv", "attn.proj", "final.se")
_MCI_DW = ("stem.1", "down.lkc", "cpe", "repmixer", "ffn.dw", "final")
_MCI_KXK = ("stem.0", "attn.core")


def _mci_key(spec: MCiSpec, op: Any) -> tuple[str, int, int]:
    if op.stage < 0:
        return ("mci_stem", -1, -1) if op.role.startswith("stem") else ("mci_final", -1, -1)
    if op.block < 0:
        return ("mci_down", op.stage, -1)
    return ("mci_attention" if spec.token_mixers[op.stage] == "attention" else "mci_repmixer", op.stage, op.block)


def mci_unit_keys(spec: MCiSpec) -> list[tuple[str, int, int]]:
    """``(unit type, stage, block)`` of every unit of an MCi spec in execution order (stage -1: the stem;
    block -1: the stage's downsampling and positional encoding; the last unit, the final conv and head)."""
    from archsearch.cost.mci import mci_ops

    keys: list[tuple[str, int, int]] = []
    for op in mci_ops(spec):
        key = _mci_key(spec, op)
        if not keys or keys[-1] != key:
            keys.append(key)
    return keys


def mci_units(spec: MCiSpec) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of an MCi (FastViT) spec: the stem, each stage's
    downsampling and positional encoding, every RepMixer or attention block, the final conv with its SE
    and the projection head. Features come from the exact cost model's operations
    (:func:`archsearch.cost.mci.mci_ops`): their MACs by kind, their live elements and parameters."""
    from archsearch.cost.mci import mci_head_macs, mci_head_params, mci_ops

    acc: dict[tuple[str, int, int], list[float]] = {}
    for op in mci_ops(spec):
        f = acc.setdefault(_mci_key(spec, op), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        slot = 1 if op.role in _MCI_PW else 3 if op.role in _MCI_DW else 2 if op.role in _MCI_KXK else None
        if slot is not None:
            f[slot] += op.macs / 1e6
        f[4] += op.memory / 1e6
        f[5] += op.params / 1e6
    final = acc[("mci_final", -1, -1)]
    final[1] += mci_head_macs(spec) / 1e6
    final[4] += (spec.num_features + spec.num_classes) / 1e6
    final[5] += mci_head_params(spec) / 1e6
    for key in mci_unit_keys(spec):
        yield key[0], tuple(acc[key])


#: TinyViT operation kinds (:class:`archsearch.cost.tinyvit.TinyViTOp`) by feature slot: 1x1 convolutions and
#: linear layers; dense kxk convolutions and the attention products (token mixing); depthwise convolutions.
_TINYVIT_SLOT = {"pw": 1, "kxk": 2, "attn": 2, "dw": 3}


def _tinyvit_features(ops: Iterable[Any]) -> tuple[float, ...]:
    f = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    for op in ops:
        slot = _TINYVIT_SLOT.get(op.kind)
        if slot is not None:
            f[slot] += op.macs / 1e6
        f[4] += op.elements / 1e6
        f[5] += op.params / 1e6
    return tuple(f)


def tinyvit_stem_features(*, dim: int, in_channels: int, resolution: int) -> tuple[float, ...]:
    """The TinyViT stem (two 3x3 stride-2 Conv-BN into ``dim`` channels)."""
    from archsearch.cost.tinyvit import stem_ops

    return _tinyvit_features(stem_ops(dim, in_channels=in_channels, resolution=resolution))


def tinyvit_mbconv_features(*, dim: int, side: int, expand_ratio: float) -> tuple[float, ...]:
    """One MBConv block of the first stage at ``side``."""
    from archsearch.cost.tinyvit import mbconv_block_ops

    return _tinyvit_features(mbconv_block_ops(dim, side, expand_ratio=expand_ratio))


def tinyvit_merge_features(*, dim_in: int, dim: int, side_in: int) -> tuple[float, ...]:
    """A stage's patch merging ``dim_in -> dim`` from a ``side_in`` map."""
    from archsearch.cost.tinyvit import merge_ops

    return _tinyvit_features(merge_ops(dim_in, dim, side_in))


def tinyvit_block_features(*, dim: int, side: int, heads: int, window: int, mlp_ratio: float,
                           local_conv_size: int) -> tuple[float, ...]:
    """One TinyViT block (window attention on the padded map, local conv, MLP) at ``side``."""
    from archsearch.cost.tinyvit import attention_block_ops

    return _tinyvit_features(attention_block_ops(dim, side, heads=heads, window=window, mlp_ratio=mlp_ratio,
                                                 local_conv_size=local_conv_size))


def tinyvit_head_features(*, dim: int, side: int, num_classes: int) -> tuple[float, ...]:
    """The head: pooling of a ``side`` map, LayerNorm, classifier."""
    from archsearch.cost.tinyvit import head_ops

    return _tinyvit_features(head_ops(dim, side, num_classes=num_classes))


def _tinyvit_key(op: Any) -> tuple[str, int, int]:
    part = op.role.split(".", 1)[0]
    if part in ("stem", "head", "merge", "mbconv"):
        return (f"tinyvit_{part}", op.stage, op.block)
    return ("tinyvit_block", op.stage, op.block)


def tinyvit_unit_keys(spec: TinyViTSpec) -> list[tuple[str, int, int]]:
    """``(unit type, stage, block)`` of every unit of a TinyViT in execution order (the stem and the
    head have stage -1; a stage's patch merging has block -1)."""
    from archsearch.cost.tinyvit import tinyvit_ops

    keys: list[tuple[str, int, int]] = []
    for op in tinyvit_ops(spec):
        key = _tinyvit_key(op)
        if not keys or keys[-1] != key:
            keys.append(key)
    return keys


def tinyvit_units(spec: TinyViTSpec) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of a TinyViT: the stem, every MBConv block, each stage's
    patch merging, every window-attention block and the head, with features summed over the exact
    cost model's operations (:func:`archsearch.cost.tinyvit.tinyvit_ops`): their MACs by kind (attention
    products as kxk), their activation elements and parameters. The unit MACs and parameters sum to
    the whole model's."""
    from archsearch.cost.tinyvit import tinyvit_ops

    groups: dict[tuple[str, int, int], list[Any]] = {}
    for op in tinyvit_ops(spec):
        groups.setdefault(_tinyvit_key(op), []).append(op)
    for key, ops in groups.items():
        yield key[0], _tinyvit_features(ops)


def model_units(spec: object, channel_block: int = 1, kernel_exponent: float = 0.0) -> Iterator[tuple[str, tuple[float, ...]]]:
    """The units of a CNN, ViT, STViT, MCi or TinyViT spec (``channel_block``, ``kernel_exponent``: how
    CNN conv MACs are counted, :func:`block_features`; the other families ignore them)."""
    if isinstance(spec, CNNSpec):
        return cnn_units(spec, channel_block, kernel_exponent)
    if isinstance(spec, ViTSpec):
        return vit_units(spec)
    if isinstance(spec, STViTSpec):
        return stvit_units(spec)
    if isinstance(spec, MCiSpec):
        return mci_units(spec)
    if isinstance(spec, TinyViTSpec):
        return tinyvit_units(spec)
    raise SpecError(f"spec: the latency predictor covers the {list(LATENCY_FAMILIES)} families, "
                    f"not {getattr(spec, 'family', type(spec).__name__)!r}")


@dataclasses.dataclass(frozen=True)
class LatencyModel:
    """Fitted per-unit-type coefficients of one space on one device.

    Attributes:
        space: The space calibrated.
        device: ``cpu`` or ``cuda``.
        device_name: Description of the device (CPU model or GPU name).
        torch_version: torch of the measurements.
        threads: Intra-op threads used.
        batch: Batch size of the measurements.
        resolution: Input resolution of the measurements.
        coefs: Unit type -> coefficients in :data:`FEATURES` order (ms per unit of feature).
        residuals: Unit type -> fit figures (``n``, ``rms_rel``, ``max_rel``).
        runs: Timed runs per measurement.
        scale: Factor on the summed unit predictions: 1 for the joint fit (its in-context correction is
            inside the coefficients); for ``fit="blocks"`` the median of measured / summed-block latency
            over whole random models (blocks timed alone run with warm caches; in a network they do not).
        statistic: What each timing kept of its calls (:data:`STATISTICS`): the predictions are of that
            statistic of a forward's time.
        channel_block: CNN conv channels are rounded up to a multiple of it in the MACs features (1:
            none). Convolution kernels compute whole blocks of channels (oneDNN's fp32 kernels on AVX-512
            keep 16 per vector register), so a 24-channel conv costs as much as a 32-channel one; the
            calibration picks the block that fits its whole models best
            (:func:`archsearch.train.latency.fit_calibration`).
        kernel_exponent: A CNN kxk or depthwise MAC counts ``(k^2 / 9)^-kernel_exponent`` in the MACs
            features (0: all alike). A larger kernel reuses each loaded input for more MACs, so its MACs
            run faster; a power of ``k^2`` keeps the prediction a posynomial in the kernel. Picked by
            the calibration with the channel block.
    """

    space: str
    device: str
    device_name: str
    torch_version: str
    threads: int
    batch: int
    resolution: int
    coefs: dict[str, tuple[float, ...]]
    residuals: dict[str, dict[str, float]]
    runs: int = 30
    scale: float = 1.0
    statistic: str = "median"
    channel_block: int = 1
    kernel_exponent: float = 0.0

    def unit_ms(self, unit: str, features: Sequence[float]) -> float:
        try:
            coef = self.coefs[unit]
        except KeyError:
            raise SpecError(f"latency: the calibration of space {self.space!r} has no {unit!r} units; "
                            f"run `archsearch calibrate --space {self.space}` again") from None
        return self.scale * sum(a * f for a, f in zip(coef, features))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["coefs"] = {k: list(v) for k, v in self.coefs.items()}
        return {"schema": _SCHEMA, "features": list(FEATURES), **d}

    @classmethod
    def from_dict(cls, obj: Any) -> "LatencyModel":
        """Validated load (plain JSON values only; bad files raise :class:`SpecError`)."""
        if not isinstance(obj, dict) or obj.get("schema") != _SCHEMA or obj.get("features") != list(FEATURES):
            raise SpecError("latency file: not an archsearch latency calibration of this version")
        try:
            coefs = {}
            for unit, vals in obj["coefs"].items():
                if unit not in UNIT_TYPES or len(vals) != len(FEATURES):
                    raise ValueError(unit)
                vec = tuple(float(v) for v in vals)
                if not all(math.isfinite(v) and v >= 0 for v in vec):
                    raise ValueError(unit)
                coefs[unit] = vec
            if not (0 < float(obj.get("scale", 1.0)) < 100):
                raise ValueError("scale")
            residuals = {str(u): {str(k): float(v) for k, v in r.items()} for u, r in obj["residuals"].items()}
            statistic = str(obj.get("statistic", "median"))
            if statistic not in STATISTICS:
                raise ValueError("statistic")
            channel_block = obj.get("channel_block", 1)  # files written before it was fitted: 1
            if not isinstance(channel_block, int) or isinstance(channel_block, bool) or not 1 <= channel_block <= 256:
                raise ValueError("channel_block")
            kernel_exponent = obj.get("kernel_exponent", 0.0)
            if isinstance(kernel_exponent, bool) or not isinstance(kernel_exponent, (int, float)) or not -2 <= kernel_exponent <= 2:
                raise ValueError("kernel_exponent")
            return cls(str(obj["space"]), str(obj["device"]), str(obj["device_name"]), str(obj["torch_version"]),
                       int(obj["threads"]), int(obj["batch"]), int(obj["resolution"]), coefs, residuals, int(obj.get("runs", 30)),
                       float(obj.get("scale", 1.0)), statistic, channel_block, float(kernel_exponent))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"latency file: malformed field ({exc})") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "LatencyModel":
        from archsearch._jsonio import read_json

        obj = read_json(path, what="latency file")
        try:
            return cls.from_dict(obj)
        except SpecError as exc:
            raise SpecError(f"latency file {path}: {str(exc).removeprefix('latency file: ')}") from None


def predict_latency(spec: Any, model: LatencyModel) -> float:
    """Predicted whole-model latency in milliseconds at the calibration's batch size
    (``scale`` times the sum of the unit predictions)."""
    return sum(model.unit_ms(unit, feats) for unit, feats in model_units(spec, model.channel_block, model.kernel_exponent))


def fit_coefficients(features: Sequence[Sequence[float]], times_ms: Sequence[float]) -> tuple[tuple[float, ...], dict[str, float]]:
    """Non-negative least squares on relative errors: minimise ``sum ((x . a) / t - 1)^2`` over ``a >= 0``.

    Returns the coefficients and the fit figures ``n``, ``rms_rel``, ``max_rel`` (relative residuals).
    """
    import numpy as np
    from scipy.optimize import nnls

    X = np.asarray(features, float)
    t = np.asarray(times_ms, float)
    if X.ndim != 2 or len(t) != len(X) or len(t) == 0 or np.any(t <= 0):
        raise SpecError("fit: expected one positive timing per feature row")
    scale = np.maximum(X.max(axis=0), 1e-12)
    A = (X / scale) / t[:, None]
    coef, _ = nnls(A, np.ones(len(t)))
    coef = coef / scale
    rel = X @ coef / t - 1.0
    return tuple(float(c) for c in coef), {"n": float(len(t)), "rms_rel": float(np.sqrt(np.mean(rel**2))),
                                           "max_rel": float(np.max(np.abs(rel)))}


def summed_features(units: Sequence[tuple[str, Sequence[float]]]) -> dict[str, tuple[float, ...]]:
    """A whole model's features summed per unit type (its predicted latency is linear in them)."""
    out: dict[str, list[float]] = {}
    for unit, feats in units:
        acc = out.setdefault(unit, [0.0] * len(FEATURES))
        for i, v in enumerate(feats):
            acc[i] += v
    return {u: tuple(v) for u, v in out.items()}


def fit_joint(unit_rows: dict[str, tuple[Sequence[Sequence[float]], Sequence[float]]],
              model_rows: Sequence[tuple[dict[str, Sequence[float]], float]],
              ) -> tuple[dict[str, tuple[float, ...]], dict[str, dict[str, float]]]:
    """Per-type coefficients fitted at once to unit timings and whole-model timings.

    One non-negative least-squares problem on relative errors holds every type's coefficients
    ``a_u`` and an in-context cost per feature ``delta`` shared by all types: a unit timed alone is
    predicted by ``a_u . f``; a whole model by ``sum_u (a_u + delta) . F_u`` with ``F_u`` its features
    summed per type (:func:`summed_features`), since a unit timed alone runs with warm caches and none
    of the traffic of the blocks around it. The model rows are weighted by ``sqrt(units / models)``, so
    the two groups of timings weigh alike. The result is one coefficient vector per type,
    ``a_u + delta``.

    Measured (``benchmarks/latency_accuracy.py``: deepmad-r50 calibrated, 60 random r18/r34 designs,
    two calibrations, each fit applied to the same calls): with the ``min`` statistic 85 % and 77 % of
    the designs within +-10 %, against 72 % and 65 % for the earlier two-step fit (unit fits, then a
    factor and ``delta`` from the whole models alone, which left the unit timings almost no weight);
    with the median 55 % and 63 % against 48 % and 60 %. With the test models timed in the calibration's
    own rounds (the benchmark's default protocol; seeds 0 and 1): 88 % and 88 % with ``min``, 83 % and
    92 % with ``p25``, 70 % and 73 % with the median. Weighting the model rows by ``units / models``
    instead gave 97 % on one of these runs but 80 % on the other and less on three earlier dumps, so the
    square root stays. (These figures count MACs plainly; for the counting a calibration picks now,
    see :func:`archsearch.train.latency.fit_calibration`.) Letting ``delta`` take either sign fitted
    the whole models better but the test designs no better, so it stays non-negative.

    Returns:
        Coefficients per type and the fit figures per type (its units, before ``delta``) and for
        ``model`` (``n``, ``rms_rel``, ``max_rel`` over the whole models).
    """
    import numpy as np
    from scipy.optimize import nnls

    n_f = len(FEATURES)
    types = sorted(unit_rows)
    col = {u: i * n_f for i, u in enumerate(types)}
    n_var = (len(types) + 1) * n_f
    rows, weights = [], []
    for unit, (feats, times) in unit_rows.items():
        for f, t in zip(feats, times):
            if t <= 0:
                raise SpecError("fit: expected positive unit timings")
            row = np.zeros(n_var)
            row[col[unit]:col[unit] + n_f] = np.asarray(f, float) / t
            rows.append(row)
            weights.append(1.0)
    n_units = len(rows)
    w_model = math.sqrt(n_units / len(model_rows)) if model_rows else 0.0
    for feats, time_ms in model_rows:
        missing = set(feats) - set(col)
        if missing:
            raise SpecError(f"fit: whole models hold unit types {sorted(missing)} that no unit timing covers")
        if time_ms <= 0:
            raise SpecError("fit: expected positive whole-model timings")
        row = np.zeros(n_var)
        for unit, f in feats.items():
            row[col[unit]:col[unit] + n_f] += np.asarray(f, float) / time_ms
            row[-n_f:] += np.asarray(f, float) / time_ms
        rows.append(row)
        weights.append(w_model)
    A, w = np.asarray(rows, float), np.asarray(weights, float)
    col_scale = np.maximum(np.abs(A).max(axis=0), 1e-12)
    sol, _ = nnls((A / col_scale) * w[:, None], w)
    sol = sol / col_scale
    delta = sol[-n_f:]
    figures: dict[str, dict[str, float]] = {}
    coefs: dict[str, tuple[float, ...]] = {}
    for unit in types:
        a_u = sol[col[unit]:col[unit] + n_f]
        feats, times = unit_rows[unit]
        rel = np.asarray(feats, float) @ a_u / np.asarray(times, float) - 1.0
        figures[unit] = {"n": float(len(times)), "rms_rel": float(np.sqrt(np.mean(rel**2))), "max_rel": float(np.max(np.abs(rel)))}
        coefs[unit] = tuple(float(v) for v in a_u + delta)
    if model_rows:
        rel = A[n_units:] @ sol - 1.0
        figures["model"] = {"n": float(len(model_rows)), "rms_rel": float(np.sqrt(np.mean(rel**2))),
                            "max_rel": float(np.max(np.abs(rel)))}
    return coefs, figures


def latency_cache_dir() -> Path:
    """``$ARCHSEARCH_CACHE/latency`` or ``~/.cache/archsearch/latency`` (``$XDG_CACHE_HOME`` honoured)."""
    root = os.environ.get("ARCHSEARCH_CACHE")
    if root:
        return Path(root) / "latency"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "archsearch" / "latency"


def latency_model_path(space: str, device: str = "cpu") -> Path:
    return latency_cache_dir() / device / f"{space}.json"


def load_latency_model(space: str, device: str = "cpu") -> LatencyModel:
    return LatencyModel.load(latency_model_path(space, device))


def find_latency_model(space: str) -> LatencyModel | None:
    """The space's calibration for ``$ARCHSEARCH_LATENCY_DEVICE`` (default: cpu, else cuda), or None."""
    wanted = os.environ.get("ARCHSEARCH_LATENCY_DEVICE")
    for device in ([wanted] if wanted else ["cpu", "cuda"]):
        path = latency_model_path(space, device)
        if path.is_file():
            return LatencyModel.load(path)
    return None


def require_latency_model(space: str) -> LatencyModel:
    """The space's calibration (see :func:`find_latency_model`); a one-line :class:`SpecError` naming
    the command that makes it when there is none."""
    model = find_latency_model(space)
    if model is None:
        raise SpecError(f"budget.latency: space {space} has no latency calibration on this machine; "
                        f"run `archsearch calibrate --space {space}` first")
    return model
