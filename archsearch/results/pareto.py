"""Exact Pareto (non-dominated) sets over any objectives, each with a direction."""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np

__all__ = ["non_dominated", "Direction"]

Direction = Literal["max", "min"]


def non_dominated(points: Sequence[Mapping[str, float]], objectives: Mapping[str, Direction]) -> list[bool]:
    """Marks the points no other point dominates.

    A point dominates another when it is at least as good in every objective and better in one.

    Args:
        points: Rows with a value for every objective.
        objectives: Objective name -> ``"max"`` or ``"min"``.
    """
    if not points:
        return []
    for name, direction in objectives.items():
        if direction not in ("max", "min"):
            raise ValueError(f"objective {name!r}: direction must be 'max' or 'min', got {direction!r}")
    sign = np.array([1.0 if d == "min" else -1.0 for d in objectives.values()])
    vals = np.array([[float(p[k]) for k in objectives] for p in points]) * sign  # all minimised now
    le = (vals[:, None, :] <= vals[None, :, :]).all(axis=2)
    lt = (vals[:, None, :] < vals[None, :, :]).any(axis=2)
    dominated = (le & lt).any(axis=0)
    return [not bool(d) for d in dominated]
