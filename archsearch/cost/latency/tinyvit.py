"""The units of a TinyViT: the stem, every MBConv block, each stage's patch merging, every
window-attention block, the head.

Units are the exact cost model's operations (:func:`archsearch.cost.tinyvit.tinyvit_ops`) grouped by
the module that runs them; a unit's features sum its operations' MACs by kind (the attention
products count as kxk), activation elements and parameters, so the units' MACs and parameters sum
to the whole model's. A stage's predicted latency is the sum of its units (the patch merging in the
incoming and outgoing dims, ``depth`` identical blocks), additive over stages like its MACs and
params: the structure the TinyViT solver uses.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from archsearch.space.tinyvit import TinyViTSpec

__all__ = ["tinyvit_block_features", "tinyvit_head_features", "tinyvit_mbconv_features", "tinyvit_merge_features",
           "tinyvit_stem_features", "tinyvit_unit_keys", "tinyvit_units"]


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
