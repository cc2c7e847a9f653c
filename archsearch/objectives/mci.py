"""A DeepMAD-style entropy score of an MCi / FastViT network: a pure function of the spec.

Shen et al., "DeepMAD: Mathematical Architecture Design for Deep Convolutional Neural Network",
CVPR 2023, model a network as an information-processing system whose entropy grows with the log
of every layer's width; the score weighs each stage's cumulative entropy by the log-size of its
output feature map. Carried over to MetaFormer blocks:

* Each main-path operation contributes ``log(fan_in)``, the number of inputs one of its outputs
  sums (a conv's ``c_in k^2 / groups``; a linear layer's input width). Token mixers count the
  tokens one output mixes: ``k^2`` for RepMixer's depthwise conv, the ``N`` tokens of a stage for
  attention (its ``attn @ v``), plus ``log d`` for each of qkv and proj. The ConvFFN counts
  ``log 49 + log d + log(hidden)``. Squeeze-excitation, norms and layer scales are left out, as
  DeepMAD leaves out SE and shortcuts. The fan-ins are the same in the training and inference
  forms, so is the score.
* ``E_s`` is the entropy accumulated from the stem to the end of stage ``s`` (the stem counts in
  stage 1, the final conv in the last stage).
* ``S = sum_s alpha_s log(d_s r_s^2) E_s`` with ``alpha_s = 1`` and ``alpha_last``
  (``last_stage_weight``, DeepMAD's 8) for the last stage.

Every block adds a positive term, so ``S`` grows with each depth; for fixed widths it is affine in
the depths, which the MCi solver uses.

Effectiveness (DeepMAD's rho, over the whole network): ``rho = N / exp(mean log fan_in)`` over the
``N`` main-path operations counted above, depth over geometric-mean width. Maximising ``S``
alone makes networks as deep as allowed; DeepMAD bounds ``rho <= rho0``. The templates have
rho 1.06 (MCi0), 1.93 (MCi1) and 1.87 (MCi2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from archsearch.cost.mci import mci_ops
from archsearch.space.mci import MCiSpec

__all__ = ["MCiScore", "mci_score"]


class MCiScore(NamedTuple):
    """Result of :func:`mci_score`.

    Attributes:
        score: ``S``.
        stage_entropy: ``E_s`` for each stage (cumulative).
        stage_factor: ``log(d_s r_s^2)`` for each stage.
        layers: ``N``, the main-path operations counted.
        log_fan_in: Their summed ``log(fan_in)`` (the last stage's ``E``).
        rho: Effectiveness ``N / exp(log_fan_in / N)``.
    """

    score: float
    stage_entropy: tuple[float, ...]
    stage_factor: tuple[float, ...]
    layers: int
    log_fan_in: float
    rho: float


def mci_score(spec: MCiSpec, *, last_stage_weight: float = 8.0) -> MCiScore:
    """The entropy score ``S`` and effectiveness ``rho`` of a spec (see the module docstring)."""
    n = spec.n_stages
    per_stage = [0.0] * n
    layers = 0
    for op in mci_ops(spec):
        if op.fan_in <= 0:
            continue
        layers += 1
        stage = op.stage if op.stage >= 0 else (0 if op.role.startswith("stem") else n - 1)
        per_stage[stage] += math.log(op.fan_in)
    cum, total = [], 0.0
    for e in per_stage:
        total += e
        cum.append(total)
    factors = [math.log(d * side * side) for d, side in zip(spec.dims, spec.sides())]
    weights = [1.0] * (n - 1) + [last_stage_weight]
    score = sum(a * f * e for a, f, e in zip(weights, factors, cum))
    return MCiScore(score, tuple(cum), tuple(factors), layers, total, layers / math.exp(total / layers))
