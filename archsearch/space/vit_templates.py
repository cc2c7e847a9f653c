"""The ReViT redistribution rule and the ``revit`` spaces built on it.

ReViT (Yang et al., "Global Vision Transformer Pruning with Hessian-Aware Saliency", CVPR 2023,
Table 6) turns the trends NViT's pruning found into a rule: with ``eps = 2`` for blocks 4-9 of 12
and ``eps = 1`` otherwise ("less-more-less"),

* heads ``H = eps EMB / 100``, rounded to an even number;
* query/key width per head ``QK = eps EMB / 20``, rounded to a multiple of 8;
* value width per head ``V = 64`` in every block;
* MLP hidden width ``3 eps EMB``.

Rounding. The paper does not say which way to round. :func:`revit_blocks` offers ``nearest``
(default; exact halves go up) and ``down`` (floor); both keep at least one step (2 heads, 8 query/key
dims). The inputs are exact rationals, so no float noise decides a rounding.

End blocks. The reference code hard-codes blocks 1 and 12 to 10 heads with the ``eps = 2`` query/key
width (MLP and V keep the rule's ``eps = 1`` values). ``end_heads=None`` (default) applies the literal
rule; ``end_heads=10`` reproduces the reference code.

Published sizes vs the rule (whole model, 224 px, 1000 classes, exact counts of
:mod:`archsearch.cost.vit`; the paper: ReViT-S 23 M / 4.7 G, ReViT-T 5.9 M / 1.3 G):

========================  ======================  ======================
variant                   ReViT-S (EMB 384)       ReViT-T (EMB 176)
========================  ======================  ======================
literal, nearest          22.05 M / 4.509 G       4.70 M / 0.987 G
literal, down             20.13 M / 4.035 G       4.36 M / 0.883 G
end heads 10, nearest     23.16 M / 4.783 G       5.16 M / 1.129 G
end heads 10, down        21.36 M / 4.339 G       4.82 M / 1.025 G
========================  ======================  ======================

What explains the gap: for ReViT-S the literal rule is about 4 % short on both counts, and the
reference code's 10-head end blocks close it (23.16 M / 4.78 G: +0.7 % params, +1.7 % MACs, which
matches the paper's 23 M / 4.7 G if the MACs were truncated rather than rounded); rounding down only
widens the gap. So the published ReViT-S size is consistent with the end-block variant and nearest
(or upward) rounding, not with the literal rule. For ReViT-T no variant comes close: the end blocks
add 0.46 M / 0.14 G, leaving 5.16 M / 1.13 G, still 12-13 % short of 5.9 M / 1.3 G; even rounding
every head count and query/key width up (with the 10-head end blocks) gives only 5.31 M / 1.17 G.
The ReViT-T figure cannot be reproduced from the rule as published (a different EMB, V or head rule
for the tiny model would be needed; which one is not stated, so none is guessed here).

Solved with :class:`~archsearch.solvers.revit.ReViTRuleSolver` at the published sizes: ``revit``
(literal) at 23 M / 4.7 G picks EMB 392 (22.85 M / 4.66 G); ``revit-ref`` picks EMB 376 (its EMB 384
model, 4.78 G MACs, exceeds the paper's own 4.7 G); ``revit-t`` at 5.9 M / 1.3 G picks EMB 192
(5.46 M / 1.13 G).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import ClassVar, Literal

from archsearch.errors import SpecError
from archsearch.space.base import check_int
from archsearch.space.budget import Budget
from archsearch.space.search_space import BaseSpace, register_space
from archsearch.space.vit import ViTBlockSpec, ViTSpec

__all__ = ["REVIT_WIDE_BLOCKS", "ReViTSpace", "revit_blocks", "revit_spec", "round_to_multiple"]

Rounding = Literal["nearest", "down"]
ROUNDINGS = ("nearest", "down")
REVIT_WIDE_BLOCKS = (4, 5, 6, 7, 8, 9)  # 1-based blocks with eps = 2 (of 12)
REVIT_DEPTH = 12


def round_to_multiple(x: Fraction | int, multiple: int, rounding: Rounding) -> int:
    """``x`` rounded to a multiple of ``multiple`` (at least ``multiple``).

    Args:
        x: The exact value.
        multiple: The step.
        rounding: ``nearest`` (halves go up) or ``down``.
    """
    if rounding not in ROUNDINGS:
        raise SpecError(f"rounding: expected one of {list(ROUNDINGS)}, got {rounding!r}")
    steps = Fraction(x) / multiple
    n = int(steps + Fraction(1, 2)) if rounding == "nearest" else int(steps)  # int() floors non-negatives
    return max(1, n) * multiple


def revit_blocks(
    embed_dim: int, *, rounding: Rounding = "nearest", end_heads: int | None = None, depth: int = REVIT_DEPTH,
    wide_blocks: tuple[int, ...] = REVIT_WIDE_BLOCKS, v_dim: int = 64,
) -> tuple[ViTBlockSpec, ...]:
    """The blocks the ReViT rule gives for an embedding width (see the module docstring).

    Args:
        embed_dim: EMB.
        rounding: ``nearest`` or ``down`` for the heads (even) and query/key widths (multiples of 8).
        end_heads: ``None`` for the literal rule; otherwise the first and last blocks get this many
            heads and the ``eps = 2`` query/key width (the reference code uses 10).
        depth: Number of blocks (the paper: 12).
        wide_blocks: 1-based blocks with ``eps = 2`` (the paper: 4-9).
        v_dim: Value width per head (the paper: 64).
    """
    check_int("revit", "embed_dim", embed_dim, 1, 1 << 16)
    check_int("revit", "depth", depth, 1, 1024)
    if end_heads is not None:
        check_int("revit", "end_heads", end_heads, 1, 1024)
    if any(not isinstance(b, int) or not 1 <= b <= depth for b in wide_blocks):
        raise SpecError(f"revit.wide_blocks: expected 1-based block numbers in [1, {depth}], got {wide_blocks!r}")

    def dims(eps: int) -> tuple[int, int, int]:
        heads = round_to_multiple(Fraction(eps * embed_dim, 100), 2, rounding)
        qk = round_to_multiple(Fraction(eps * embed_dim, 20), 8, rounding)
        return heads, qk, 3 * eps * embed_dim

    blocks = []
    for i in range(1, depth + 1):
        heads, qk, mlp = dims(2 if i in wide_blocks else 1)
        if end_heads is not None and i in (1, depth):
            heads, qk = end_heads, dims(2)[1]
        blocks.append(ViTBlockSpec(heads, qk, v_dim, mlp))
    return tuple(blocks)


def revit_spec(
    embed_dim: int, *, rounding: Rounding = "nearest", end_heads: int | None = None, depth: int = REVIT_DEPTH,
    wide_blocks: tuple[int, ...] = REVIT_WIDE_BLOCKS, v_dim: int = 64, patch_size: int = 16, resolution: int = 224,
    num_classes: int = 1000, class_token: bool = True, name: str = "",
) -> ViTSpec:
    """The ViT the ReViT rule gives for an embedding width (ReViT-S: 384, ReViT-T: 176)."""
    blocks = revit_blocks(embed_dim, rounding=rounding, end_heads=end_heads, depth=depth, wide_blocks=wide_blocks,
                          v_dim=v_dim)
    return ViTSpec(embed_dim, blocks, patch_size=patch_size, resolution=resolution, class_token=class_token,
                   num_classes=num_classes, name=name or f"revit-{embed_dim}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReViTSpace(BaseSpace):
    """The ReViT rule over a range of embedding widths: a one-dimensional space.

    Attributes:
        embed_dims: Smallest and largest EMB (both multiples of ``embed_multiple``).
        embed_multiple: EMB step; 8 by default, the finest step at which the rule's query/key widths
            (multiples of 8) and even head counts stay well defined, and a divisor of both published
            widths (176, 384).
        rounding: ``nearest`` or ``down`` (see the module docstring).
        end_heads: ``None`` for the literal rule, 10 for the reference code's end blocks.
        depth: Number of blocks.
        wide_blocks: 1-based blocks with ``eps = 2``.
        v_dim: Value width per head.
        patch_size: Patch side.
        class_token: Classify from a class token (DeiT) or the token average.
    """

    family: ClassVar[str] = "vit"
    solver: ClassVar[str] = "revit-rule"
    budget_counts: Literal["backbone", "model"] = "model"
    embed_dims: tuple[int, int] = (64, 2048)
    embed_multiple: int = 8
    rounding: Rounding = "nearest"
    end_heads: int | None = None
    depth: int = REVIT_DEPTH
    wide_blocks: tuple[int, ...] = REVIT_WIDE_BLOCKS
    v_dim: int = 64
    patch_size: int = 16
    class_token: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "embed_dims", tuple(self.embed_dims))
        object.__setattr__(self, "wide_blocks", tuple(self.wide_blocks))
        check_int("space", "embed_multiple", self.embed_multiple, 1, 1024)
        lo, hi = self.embed_dims
        m = self.embed_multiple
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 < lo <= hi and lo % m == 0 and hi % m == 0):
            raise SpecError(f"space.embed_dims: expected 0 < lo <= hi, both multiples of {m}, got {self.embed_dims!r}")
        if self.rounding not in ROUNDINGS:
            raise SpecError(f"space.rounding: expected one of {list(ROUNDINGS)}, got {self.rounding!r}")
        if self.resolution % self.patch_size:
            raise SpecError(f"space.resolution: expected a multiple of patch_size {self.patch_size}, got {self.resolution}")
        revit_blocks(lo, rounding=self.rounding, end_heads=self.end_heads, depth=self.depth,
                     wide_blocks=self.wide_blocks, v_dim=self.v_dim)  # validates the rule's fields

    @property
    def embed_grid(self) -> range:
        """Every EMB of the space, ascending."""
        return range(self.embed_dims[0], self.embed_dims[1] + 1, self.embed_multiple)

    def spec(self, embed_dim: int, *, resolution: int | None = None, name: str = "") -> ViTSpec:
        """The rule's model at one EMB (at the space's resolution unless given)."""
        return revit_spec(embed_dim, rounding=self.rounding, end_heads=self.end_heads, depth=self.depth,
                          wide_blocks=self.wide_blocks, v_dim=self.v_dim, patch_size=self.patch_size,
                          resolution=resolution or self.resolution, num_classes=self.num_classes,
                          class_token=self.class_token, name=name)

    def summary(self) -> dict[str, object]:
        row = super().summary()
        row.update(embed_dims=list(self.embed_dims), rounding=self.rounding, end_heads=self.end_heads)
        return row


# ReViT-S's published size (23 M parameters, 4.7 G MACs, whole model) as the default budget
_REVIT_S = Budget(params=23_000_000, macs=4_700_000_000)

register_space(ReViTSpace(
    name="revit", budget=_REVIT_S,
    description="ReViT rule (NViT, CVPR 2023), literal, nearest rounding: the largest EMB that fits (ReViT-S budget)",
))
register_space(ReViTSpace(
    name="revit-ref", budget=_REVIT_S, end_heads=10,
    description="ReViT rule with the reference code's 10-head end blocks, nearest rounding (ReViT-S budget)",
))
register_space(ReViTSpace(
    name="revit-t", budget=Budget(params=5_900_000, macs=1_300_000_000),
    description="ReViT rule, literal, nearest rounding, at ReViT-T's published size (5.9 M / 1.3 G)",
))
