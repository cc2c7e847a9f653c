"""One pruning event: the lowest-ranked groups go until the costs meet the event's goal.

The ranking is global over the active groups of all structures of all blocks, latency-aware (NViT):

    I^L_S = I_S - eta * dLat(S)

with ``I_S`` the smoothed saliency (:mod:`archsearch.train.prune.gated`) and ``dLat(S)`` in
milliseconds, the drop of the predicted latency when the group goes, recomputed after every removal
since a group's cost depends on the other dims. The prediction is a calibrated ViT latency model
(:func:`archsearch.cost.latency.predict_latency`: its per-block formula takes any dims and token
count) or the GMACs proxy (:func:`gmacs_proxy`: MACs times the dense model's measured milliseconds
per MAC; ``eta`` keeps its unit either way). A layer's last group never goes. The costs (MACs,
params and predicted latency of the whole model) are those of the spec of the kept groups
(:mod:`archsearch.cost.vit`), so an event stops at the first removal that meets its goal.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch

from archsearch.cost.vit import vit_macs, vit_params
from archsearch.errors import SpecError
from archsearch.space.budget import Budget
from archsearch.space.vit import ViTSpec
from archsearch.train.prune.config import STRUCTURES
from archsearch.train.prune.gated import GatedViT

__all__ = ["LatencyFn", "gmacs_proxy", "prune_schedule"]

LatencyFn = Callable[[ViTSpec], float]


def gmacs_proxy(ms_per_mac: float) -> LatencyFn:
    """Predicted latency = whole-model MACs times ``ms_per_mac``."""
    return lambda spec: vit_macs(spec, with_head=True) * ms_per_mac


def _costs(spec: ViTSpec, latency: LatencyFn | None) -> dict[str, float]:
    return {"macs": vit_macs(spec, with_head=True), "params": vit_params(spec, with_head=True),
            "latency": latency(spec) if latency is not None else 0.0}


def _targets(budget: Budget) -> dict[str, float]:
    if budget.memory is not None:
        raise SpecError("--budget: memory is not a pruning target; accepted: macs, params, latency")
    t = {"macs": budget.macs, "params": budget.params, "latency": budget.latency_ms}
    t = {k: float(v) for k, v in t.items() if v is not None}
    if not t:
        raise SpecError("--budget: give at least one of macs, params, latency")
    return t


def _fits(costs: Mapping[str, float], goal: Mapping[str, float]) -> bool:
    return all(costs[k] <= v for k, v in goal.items())


def prune_schedule(gated: GatedViT, scores: Mapping[str, Sequence[torch.Tensor]], goal: Mapping[str, float], *,
                   eta: float, latency: LatencyFn | None) -> list[tuple[str, int, int]]:
    """Removes the lowest-ranked groups until the costs meet ``goal`` (one pruning event).

    The ranking is global over the active groups of all structures: ``I^L = I - eta * dLat`` with
    ``dLat`` the drop of ``latency`` (ms) when the group goes, recomputed after every removal since a
    group's cost depends on the other dims (without ``latency`` the ranking is the saliency alone). A
    group is skipped when it is its layer's last one.

    Returns:
        The removed groups ``(structure, layer, group)`` in order.
    """
    removed: list[tuple[str, int, int]] = []
    counts = gated.counts()
    sizes = {s: [torch.bincount(o).tolist() for o in gated.owners[s]] for s in STRUCTURES}
    spec = gated.pruned_spec(counts)
    while not _fits(_costs(spec, latency), goal):
        base = latency(spec) if eta and latency is not None else 0.0
        best, best_val = None, math.inf
        for s in STRUCTURES:
            for i, gates in enumerate(gated.gates[s]):
                active = torch.nonzero(gates.detach() != 0).flatten().tolist()
                if len(active) <= 1:
                    continue  # never a layer's last group
                for gi in active:
                    val = float(scores[s][i][gi])
                    if eta and latency is not None:
                        counts[s][i] -= sizes[s][i][gi]
                        val -= eta * (base - latency(gated.pruned_spec(counts)))
                        counts[s][i] += sizes[s][i][gi]
                    if val < best_val:
                        best, best_val = (s, i, gi), val
        if best is None:
            break  # nothing removable: the caller reports the target as unreachable
        s, i, gi = best
        with torch.no_grad():
            gated.gates[s][i][gi] = 0.0
        counts[s][i] -= sizes[s][i][gi]
        spec = gated.pruned_spec(counts)
        removed.append(best)
    return removed
