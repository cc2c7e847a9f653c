"""An item's menu at one EMB: its options with their value and costs, and the Pareto filter.

At a fixed EMB ``d`` a block's attention choice ``(H, qk, v)`` and its MLP choice ``m`` are
independent items, each option ``o`` with a value ``v_o`` (its score at block weight 1) and costs
``c_o`` (MACs, params and, with a latency budget, predicted ms). In a knapsack an option that
another weakly dominates (value >= and every cost <=) is never needed, so a menu keeps the
non-dominated options only: :func:`_pareto` for two costs (a staircase of the kept options, one
bisection per test), :func:`_pareto3` for three.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Menu"]


class Menu(NamedTuple):
    """The options of one kind of item (attention or MLP) at a fixed EMB.

    Attributes:
        dims: One row per option: ``(H, qk, v)`` for attention, ``(m,)`` for MLP.
        value: Score of the option at block weight 1.
        macs: MACs of the option.
        params: Parameters of the option.
        latency: Predicted latency of the option in ms (zeros without a latency budget).
    """

    dims: np.ndarray
    value: np.ndarray
    macs: np.ndarray
    params: np.ndarray
    latency: np.ndarray


def _pareto(value: np.ndarray, macs: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Indices of the options no other option weakly dominates (value >=, both costs <=).

    Options are scanned best value first (cheapest first among equal values); an option survives
    when no earlier one costs at most as much in both costs. The earlier ones are kept as a
    staircase (MACs increasing, params decreasing), so each test is one bisection.
    """
    import bisect

    order = np.lexsort((params, macs, -value))
    stair_m: list[int] = []
    stair_p: list[int] = []
    keep: list[int] = []
    for idx in order.tolist():
        m, p = int(macs[idx]), int(params[idx])
        j = bisect.bisect_right(stair_m, m) - 1  # the cheapest-in-params point with MACs <= m
        if j >= 0 and stair_p[j] <= p:
            continue
        keep.append(idx)
        k = j + 1  # drop staircase points this one dominates in cost (MACs >= m, params >= p)
        end = k
        while end < len(stair_m) and stair_p[end] >= p:
            end += 1
        stair_m[k:end] = [m]
        stair_p[k:end] = [p]
    return np.array(sorted(keep), dtype=np.int64)


def _pareto3(value: np.ndarray, macs: np.ndarray, params: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Like :func:`_pareto` with a third cost: options no other weakly dominates in value and all three costs."""
    order = np.lexsort((latency, params, macs, -value))
    km = np.empty(len(order))
    kp = np.empty(len(order))
    kl = np.empty(len(order))
    n = 0
    keep: list[int] = []
    for idx in order.tolist():
        m, p, lat = macs[idx], params[idx], latency[idx]
        if n and np.any((km[:n] <= m) & (kp[:n] <= p) & (kl[:n] <= lat)):
            continue
        km[n], kp[n], kl[n] = m, p, lat
        n += 1
        keep.append(idx)
    return np.array(sorted(keep), dtype=np.int64)


def _grid(lo: int, hi: int, step: int) -> list[int]:
    first = -(-lo // step) * step
    return list(range(first, hi + 1, step))

