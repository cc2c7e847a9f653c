"""DeepMAD's entropy score and effectiveness: pure functions of a CNN spec.

Shen et al., "DeepMAD: Mathematical Architecture Design for Deep Convolutional Neural Network",
CVPR 2023; constants and the 1/2 factor follow the reference code (TinyNAS), the paper's variant
(no 1/2) is ``entropy="paper"``.

* Block entropy: ``1/2 * sum over the block's main-path convs of log(c_in * k^2 / groups)``
  (k1kxk1: ``1/2 [log c_in + log(b k^2) + log b]``; k1dwk1: ``1/2 [log c_in + log k^2 + log b]``;
  basic: ``1/2 [log(c_in k^2) + log(b k^2)]``; SE and shortcut convs are ignored). The stem
  contributes ``1/2 log(c_in k^2)``; its max-pool (if any) adds nothing but halves the side.
* Stages: the stem (with any stride-1 superblocks that follow it) is stage 1; each stride-2
  superblock opens a new stage; a stride-1 superblock belongs to the stage before it.
* Score: ``S = sum_s alpha_s [log C_s + log R_s^2] * sum_{j <= end of stage s} e_j`` with
  ``alpha = 1`` for every stage but the last (8); ``R_s`` is the side of the stage's output map
  (after the stem's max-pool for a stage the stem ends).
* Depth penalty: ``10 * exp(std(L))``, population std over superblock depths, the first
  ``penalty_skip`` superblocks left out.
* Effectiveness: ``rho = max over stage prefixes of L / geomean(c_i k_i^2 / g_i)`` over the
  main-path convs so far (shortcut projections excluded).
* The reference code's older ``madnas`` score (TinyNAS ``scores/compute_madnas.py``, the score of its
  MobileNetV2-like config): ``sum_s r_s (E_s + log C_s)``, a sum where DeepMAD's is a product, with no side
  term and no depth penalty; the config's ``multi_block_ratio`` is ``(0, 0, 0, 0, 1)``. A head conv
  (``CNNSpec.head_channels``) belongs to the last stage: its entropy ``1/2 log c_in`` and its width ``C``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np

from archsearch.cost.cnn import cnn_layers
from archsearch.space.cnn import CNNSpec

__all__ = ["DeepMADScore", "deepmad_score", "madnas_score", "stage_ends", "depth_penalty", "DEPTH_PENALTY_SCALE"]

DEPTH_PENALTY_SCALE = 10.0


class DeepMADScore(NamedTuple):
    """Result of :func:`deepmad_score`.

    Attributes:
        score: The objective: ``entropy - penalty`` when the penalty is on, else ``entropy``.
        entropy: The network score S.
        penalty: The depth penalty (0 when off).
        rho: Effectiveness.
        rho_prefixes: Effectiveness of each stage prefix.
        stage_entropy: Cumulative entropy at the end of each stage.
    """

    score: float
    entropy: float
    penalty: float
    rho: float
    rho_prefixes: tuple[float, ...]
    stage_entropy: tuple[float, ...]


def stage_ends(strides: tuple[int, ...] | list[int]) -> list[int]:
    """Index of the last superblock of each stage (-1: the stem) from the superblock strides."""
    ends = [-1]
    for i, s in enumerate(strides):
        if s == 1:
            ends[-1] = i
        else:
            ends.append(i)
    return ends


def depth_penalty(depths: tuple[int, ...] | list[int], *, skip: int, scale: float = DEPTH_PENALTY_SCALE) -> float:
    """``scale exp(pstd(depths[skip:]))``; DeepMAD's reference search uses ``scale = 10``."""
    d = [float(x) for x in depths[skip:]]
    if not d:
        return scale
    mean = sum(d) / len(d)  # plain floats: the solvers call this ~10^5 times per solve, numpy's std is 20x slower here
    return scale * math.exp(math.sqrt(sum((x - mean) ** 2 for x in d) / len(d)))


def deepmad_score(
    spec: CNNSpec,
    *,
    last_stage_weight: float = 8.0,
    penalty_skip: int | None = None,
    depth_penalty_on: bool = True,
    entropy: Literal["code", "paper"] = "code",
) -> DeepMADScore:
    """Scores a CNN spec with DeepMAD's entropy, depth penalty and effectiveness.

    Args:
        spec: The network.
        last_stage_weight: alpha of the last stage.
        penalty_skip: Superblocks excluded from the depth std; default 2 when the first superblock
            is a ResNet block (``k1kxk1`` bottleneck or ``basic``: the skip of DeepMAD's ResNet
            search), 0 for depthwise (``k1dwk1``) ones.
        depth_penalty_on: Subtract the depth penalty from ``score``.
        entropy: ``code`` (1/2 factor, reference code) or ``paper`` (no 1/2).
    """
    factor = 0.5 if entropy == "code" else 1.0
    if penalty_skip is None:
        penalty_skip = 2 if spec.stages[0].block in ("k1kxk1", "basic") else 0
    layers = [layer for layer in cnn_layers(spec) if layer.is_main]
    ends = stage_ends([s.stride for s in spec.stages])
    # cumulative entropy and layer log-widths at the end of each superblock (-1: stem)
    cum_e: dict[int, float] = {}
    cum_log: dict[int, float] = {}
    cum_n: dict[int, int] = {}
    side: dict[int, int] = {}
    channels: dict[int, int] = {}
    e = logsum = 0.0
    n = 0
    for idx, layer in enumerate(layers):
        term = math.log(layer.c_in * layer.kernel**2 / layer.groups)
        e += factor * term
        logsum += term
        n += 1
        nxt = layers[idx + 1].superblock if idx + 1 < len(layers) else None
        if nxt != layer.superblock:
            cum_e[layer.superblock], cum_log[layer.superblock], cum_n[layer.superblock] = e, logsum, n
            side[layer.superblock], channels[layer.superblock] = layer.r_out, layer.c_out
    side[-1] = spec.stem.out_side(spec.resolution)  # the stem conv's side, or the pooled one
    weights = [1.0] * (len(ends) - 1) + [last_stage_weight]
    total = 0.0
    rhos = []
    stage_e = []
    for alpha, end in zip(weights, ends):
        total += alpha * (math.log(channels[end]) + math.log(side[end] ** 2)) * cum_e[end]
        rhos.append(cum_n[end] / math.exp(cum_log[end] / cum_n[end]))
        stage_e.append(cum_e[end])
    penalty = depth_penalty([s.depth for s in spec.stages], skip=penalty_skip) if depth_penalty_on else 0.0
    return DeepMADScore(total - penalty, total, penalty, max(rhos), tuple(rhos), tuple(stage_e))


def madnas_score(
    spec: CNNSpec, *, multi_block_ratio: tuple[float, ...] | None = None, entropy: Literal["code", "paper"] = "code",
) -> float:
    """The reference code's ``madnas`` score of a CNN spec: ``sum_s r_s (E_s + log C_s)``.

    ``E_s`` is the cumulative block entropy (as :func:`deepmad_score`'s) up to the end of stage ``s`` and ``C_s``
    the stage's output width (the head conv's in the last stage when there is one).

    Args:
        spec: The network.
        multi_block_ratio: The weights ``r_s``, one per stage; default 1 for the last stage, 0 for the others
            (the reference MobileNetV2-like config's ``[0, 0, 0, 0, 1]``).
        entropy: ``code`` (1/2 factor, reference code) or ``paper`` (no 1/2).
    """
    factor = 0.5 if entropy == "code" else 1.0
    ends = stage_ends([s.stride for s in spec.stages])
    ratio = tuple(multi_block_ratio) if multi_block_ratio is not None else (0.0,) * (len(ends) - 1) + (1.0,)
    if len(ratio) != len(ends):
        raise ValueError(f"multi_block_ratio: expected {len(ends)} weights (one per stage), got {len(ratio)}")
    cum_e: dict[int, float] = {}
    channels: dict[int, int] = {}
    e = 0.0
    for layer in (layer for layer in cnn_layers(spec) if layer.is_main):
        e += factor * math.log(layer.c_in * layer.kernel**2 / layer.groups)
        cum_e[layer.superblock], channels[layer.superblock] = e, layer.c_out
    return sum(r * (cum_e[end] + math.log(channels[end])) for r, end in zip(ratio, ends) if r)
