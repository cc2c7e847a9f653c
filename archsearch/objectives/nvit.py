"""The NViT redistribution objective: DeepMAD's entropy extended to attention, with block priors.

The structures are NViT's (Yang et al., "Global Vision Transformer Pruning with Hessian-Aware
Saliency", CVPR 2023): a global embedding width EMB = d and, per block i, heads H_i, query/key width
per head qk_i, value width per head v_i and MLP hidden width m_i.

**Objective.** DeepMAD (Shen et al., CVPR 2023) scores a CNN layer by ``log`` of its fan-in per
group, ``log(c_in k^2 / g)``. Applied to every product of a pre-norm transformer block:

* the fused Q/K/V projection reads ``d`` inputs;
* ``Q K^T`` is computed per head (H groups) over ``qk`` inputs;
* ``A V`` reads the ``N`` tokens: the same for every design of a space, so it is left out;
* the output projection reads the ``H v`` concatenated head outputs;
* the MLP's two layers read ``d`` and ``m``.

The block entropy is therefore ``2 log d + log qk + log(H v) + log m`` and the score

    S = sum_i w_i [ 2 log d + a_qk log qk_i + a_v log(H_i v_i) + a_mlp log m_i ],

where ``w_i`` (block weights) and ``a`` (structure weights) are priors; with the priors off every
weight is 1 and ``S`` is the plain attention-extended entropy.

**What the objective does by itself (priors off).** Every block sees the same tokens and EMB and
has the same costs, so the objective is symmetric in the blocks and concave in the log-widths: it
cannot produce NViT's less-more-less profile, its optimum spreads the budget evenly (up to the
integer grid). It is also degenerate along the directions that cost nothing in the log-widths:
``H`` and ``qk`` enter the costs only as ``H qk`` but the score rewards ``qk`` alone, so it prefers
one or two wide heads (per-head widths at the menu's maximum); and trading ``d`` against the block
widths is nearly flat (``log`` scores of a bilinear cost), so the menu bounds and the costs that are
not bilinear (attention's ``N^2`` terms, embeddings, head) decide it; the ratio ranges of the priors
close both directions. The redistribution findings enter as:

* **less-more-less** (block weights): the middle half of the blocks weighs ``middle_weight`` (2:
  ReViT's factor epsilon = 2 for blocks 4-9 of 12, Table 6 of the paper), the others 1. With a
  ``log`` score a block's cost share grows with its weight, so middle blocks get wider; where the
  ratio caps bind, the end blocks are the first to leave them as the budget tightens.
* **MLP favoured over H/QK** (structure weights): ``a_mlp = 2``, ``a_qk = a_v = 1``.
* **V per head about constant** and **H, QK, MLP proportional to EMB**: constraints of the program
  (:class:`archsearch.space.nvit_templates.NViTSpace`), not terms of the score.

**What the program produces** (space ``nvit``: 12 blocks, patch 16, 224 px, whole model counted):

* priors on, ``macs=4.6G``: EMB 384; blocks 1-3 and 10-12 (H 4, qk 48, v 64, MLP 1104), blocks
  4-9 (H 8, qk 48, v 64, MLP 2208); 4.598 G MACs, 22.27 M params. That is close to ReViT-S's rule
  (H 4/8, qk 24/40, v 64, MLP 1152/2304), with the QK width at its prior cap (qk = EMB / 8).
* priors on, default budget (4.6 G MACs, 22.1 M params): EMB 320; ends (6, 40, 64, 1712), middle
  (8, 40, 64, 2400); 4.600 G MACs, 22.07 M params.
* priors off, ``macs=4.6G``: EMB 832, every block (2 heads, qk 128, v 128, MLP 560-576); 4.597 G
  MACs, 23.2 M params: uniform over the blocks, the fewest heads with the widest heads of the menu,
  and most of the budget in EMB (the MLP narrower than EMB): no NViT finding appears by itself.
  With the default budget (params binding too): EMB 544, every block (3, 128, 128, 832-848).
* as a MACs budget tightens at a fixed EMB, the end blocks leave the caps of the prior ranges
  first and reach their floors first; the middle blocks follow (``tests/test_nvit_program.py``).
"""

from __future__ import annotations

import math
from typing import Literal

from archsearch.errors import SpecError
from archsearch.space.vit import ViTBlockSpec, ViTSpec

__all__ = ["PROFILES", "block_profile", "nvit_block_entropy", "nvit_entropy"]

PROFILES = ("less-more-less", "uniform")


def block_profile(depth: int, *, kind: Literal["less-more-less", "uniform"] = "less-more-less",
                  middle_weight: float = 2.0) -> tuple[float, ...]:
    """Block weights: ``middle_weight`` for blocks ``[round(depth/4), round(3 depth/4))`` (0-based), else 1.

    For depth 12 the middle blocks are 4-9 (1-based), ReViT's epsilon = 2 blocks.
    """
    if kind not in PROFILES:
        raise SpecError(f"nvit.profile: expected one of {list(PROFILES)}, got {kind!r}")
    if not (isinstance(depth, int) and depth >= 1):
        raise SpecError(f"nvit.depth: expected an integer >= 1, got {depth!r}")
    if not (middle_weight > 0 and math.isfinite(middle_weight)):
        raise SpecError(f"nvit.middle_weight: expected a positive number, got {middle_weight!r}")
    if kind == "uniform":
        return (1.0,) * depth
    lo, hi = round(depth / 4), round(3 * depth / 4)
    return tuple(middle_weight if lo <= i < hi else 1.0 for i in range(depth))


def nvit_block_entropy(block: ViTBlockSpec, embed_dim: int, *, qk_weight: float = 1.0, v_weight: float = 1.0,
                       mlp_weight: float = 1.0) -> float:
    """``2 log d + a_qk log qk + a_v log(H v) + a_mlp log m`` (see the module docstring)."""
    return (2 * math.log(embed_dim) + qk_weight * math.log(block.qk_dim) + v_weight * math.log(block.heads * block.v_dim)
            + mlp_weight * math.log(block.mlp_dim))


def nvit_entropy(spec: ViTSpec, *, block_weights: tuple[float, ...] | None = None, qk_weight: float = 1.0,
                 v_weight: float = 1.0, mlp_weight: float = 1.0) -> float:
    """The score ``S`` of a ViT spec; ``block_weights`` default to 1 (priors off)."""
    w = (1.0,) * spec.depth if block_weights is None else tuple(block_weights)
    if len(w) != spec.depth:
        raise SpecError(f"nvit.block_weights: expected {spec.depth} weights (one per block), got {len(w)}")
    return sum(wi * nvit_block_entropy(b, spec.embed_dim, qk_weight=qk_weight, v_weight=v_weight, mlp_weight=mlp_weight)
               for wi, b in zip(w, spec.blocks))
