"""An architecture as a row of units (stages or blocks) with a width and a depth: the data of the
report's diagrams (per-stage widths and depths for CNNs and hierarchical models, per-block dims for ViTs)."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Unit", "arch_units"]


class Unit(NamedTuple):
    """One stage or block.

    Attributes:
        label: Short name (``stem``, ``1``, ``b3`` ...).
        kind: Block type (``k1kxk1``, ``attention`` ...).
        width: Output channels / embedding width, or an MLP's hidden width for a ViT block.
        inner: A second width drawn inside (a bottleneck, a ViT block's attention width
            heads x V), or 0 when there is none.
        depth: Blocks in the unit.
        detail: One line with the rest (kernel, stride, heads, window ...).
    """

    label: str
    kind: str
    width: int
    inner: int
    depth: int
    detail: str


def arch_units(spec: Any) -> list[Unit]:
    """The units of ``spec`` for a diagram; an empty list for a family without one (the report then
    shows the spec's ``layout()`` table only)."""
    family = getattr(spec, "family", "")
    if family == "cnn":
        units = [Unit("stem", "conv", spec.stem.out_channels, 0, 1, f"k{spec.stem.kernel} s{spec.stem.stride}")]
        for i, s in enumerate(spec.stages):
            units.append(Unit(str(i + 1), s.block + ("+se" if s.se else ""), s.out_channels, s.bottleneck, s.depth,
                              f"b{s.bottleneck} k{s.kernel} s{s.stride}"))
        return units
    if family == "vit":
        return [Unit(f"b{i + 1}", "block", b.mlp_dim, b.heads * b.v_dim, 1,
                     f"{b.heads} heads, qk {b.qk_dim}, v {b.v_dim}, mlp {b.mlp_dim}") for i, b in enumerate(spec.blocks)]
    if family == "tinyvit":
        return [Unit(str(i + 1), "mbconv" if i == 0 else "attention", d, 0, depth,
                     "mbconv" if i == 0 else f"{h} heads, window {w}")
                for i, (d, depth, h, w) in enumerate(zip(spec.embed_dims, spec.depths, spec.num_heads, spec.window_sizes))]
    if family == "mci":
        return [Unit(str(i + 1), spec.token_mixers[i], d, 0, depth, f"{spec.token_mixers[i]}, mlp x{spec.mlp_ratios[i]:g}")
                for i, (d, depth) in enumerate(zip(spec.dims, spec.depths))]
    if family == "stvit":
        tail = spec.depth - spec.semantic_layer - spec.semantic_layers
        units = []
        if spec.semantic_layer:
            units.append(Unit("image", "image-token", spec.embed_dim, 0, spec.semantic_layer, f"{spec.num_heads} heads"))
        units.append(Unit("semantic", "semantic", spec.embed_dim, 0, spec.semantic_layers, f"{spec.num_semantic} tokens"))
        if tail > 0:
            units.append(Unit("tail", "semantic-only", spec.embed_dim, 0, tail, f"{spec.num_semantic} tokens"))
        return units
    return []
