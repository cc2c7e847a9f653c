"""A capacity score for TinyViT specs: DeepMAD's network entropy with each block's spatial mixer as its kernel.

DeepMAD (Shen et al., "DeepMAD: Mathematical Architecture Design for Deep Convolutional Neural
Network", CVPR 2023, Sec. 3) scores a network by the entropy of its feature maps, which for a deep
network grows as ``sum over layers of log(c_i * k_i^2)``: the width times the area a layer mixes.
The TinyViT contraction program maximises the same sum over TinyViT blocks:

* an MBConv block mixes a 3x3 neighbourhood at width ``d``: ``log(9 d)``;
* a TinyViT block's attention mixes the tokens of its window at width ``d``; padding adds no tokens,
  so the area is the part of the window inside the map, ``min(w, r)^2`` on a map of side ``r``:
  ``log(d * min(w, r)^2)``.

Why this score: it rewards exactly the three things the contraction trades (width, depth, window),
in DeepMAD's units, and it is separable over stages, so the program can be solved exactly. It
prefers no window larger than the map (that adds padded compute and no score), and is a proxy for
accuracy, not a prediction of it; ties are broken by lower MACs, then lower params.
"""

from __future__ import annotations

import math

from archsearch.space.tinyvit import TinyViTSpec

__all__ = ["MBCONV_KERNEL", "block_entropy", "stage_entropy", "tinyvit_capacity"]

MBCONV_KERNEL = 3  # the depthwise kernel of TinyViT's MBConv blocks (fixed in the family)


def block_entropy(dim: int, *, stage: int, window: int, side: int) -> float:
    """Entropy of one block of ``stage`` (0: MBConv) at width ``dim`` on a map of side ``side``."""
    if stage == 0:
        return math.log(dim * MBCONV_KERNEL * MBCONV_KERNEL)
    eff = min(window, side)
    return math.log(dim * eff * eff)


def stage_entropy(dim: int, depth: int, *, stage: int, window: int, side: int) -> float:
    """``depth`` times the block entropy."""
    return depth * block_entropy(dim, stage=stage, window=window, side=side)


def tinyvit_capacity(spec: TinyViTSpec) -> float:
    """The contraction objective: the sum of :func:`block_entropy` over all blocks of the spec."""
    return sum(
        stage_entropy(d, depth, stage=i, window=w, side=side)
        for i, (d, depth, w, side) in enumerate(zip(spec.embed_dims, spec.depths, spec.window_sizes, spec.sides))
    )
