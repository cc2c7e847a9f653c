"""Exact Pareto data over any objectives, each with a direction: non-dominated marks, non-dominated
sorting (front ranks) and the 2-D hypervolume.

Every function takes rows (mappings, e.g. ``frame.to_dict("records")``) and an ordered mapping
objective -> ``"max"`` or ``"min"``. A point dominates another when it is at least as good in every
objective and strictly better in one; equal points (duplicates) never dominate each other, so they
share a front.
"""

from __future__ import annotations

from typing import Literal, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = ["Direction", "Front2D", "front_2d", "hypervolume_2d", "non_dominated", "pareto_ranks"]

Direction = Literal["max", "min"]


def _minimised(points: Sequence[Mapping[str, float]], objectives: Mapping[str, Direction]) -> np.ndarray:
    """The points as an (n, m) float array in which every objective is minimised."""
    if not objectives:
        raise ValueError("objectives: give at least one objective name -> 'max' or 'min'")
    for name, direction in objectives.items():
        if direction not in ("max", "min"):
            raise ValueError(f"objective {name!r}: direction must be 'max' or 'min', got {direction!r}")
    sign = np.array([1.0 if d == "min" else -1.0 for d in objectives.values()])
    try:
        vals = np.array([[float(p[k]) for k in objectives] for p in points], dtype=float).reshape(len(points), len(sign))
    except KeyError as exc:
        raise ValueError(f"objective {exc.args[0]!r}: missing from a point (objectives: {list(objectives)})") from None
    if np.isnan(vals).any():
        bad = [k for j, k in enumerate(objectives) if np.isnan(vals[:, j]).any()]
        raise ValueError(f"objectives {bad}: NaN values cannot be ranked; drop or fill those rows first")
    return vals * sign


def _dominance(vals: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when point i dominates point j (all objectives minimised)."""
    le = (vals[:, None, :] <= vals[None, :, :]).all(axis=2)
    lt = (vals[:, None, :] < vals[None, :, :]).any(axis=2)
    return le & lt


def non_dominated(points: Sequence[Mapping[str, float]], objectives: Mapping[str, Direction]) -> list[bool]:
    """Marks the points no other point dominates (front 1 of :func:`pareto_ranks`).

    Args:
        points: Rows with a value for every objective.
        objectives: Objective name -> ``"max"`` or ``"min"``.
    """
    if not points:
        return []
    dominated = _dominance(_minimised(points, objectives)).any(axis=0)
    return [not bool(d) for d in dominated]


def pareto_ranks(points: Sequence[Mapping[str, float]], objectives: Mapping[str, Direction]) -> list[int]:
    """Exact non-dominated sorting: front 1 holds the non-dominated points, front 2 those only front 1
    dominates, and so on (Deb et al., "A fast and elitist multiobjective genetic algorithm: NSGA-II",
    IEEE TEC 2002).

    Args:
        points: Rows with a value for every objective.
        objectives: Objective name -> ``"max"`` or ``"min"``.

    Returns:
        The front (1-based) of every point, in the order given.
    """
    if not points:
        return []
    dom = _dominance(_minimised(points, objectives))
    count = dom.sum(axis=0)  # how many points dominate each one
    ranks = np.zeros(len(points), dtype=int)
    current = np.flatnonzero(count == 0)
    front = 1
    while current.size:
        ranks[current] = front
        count = count - dom[current].sum(axis=0)
        count[ranks > 0] = -1  # ranked points never come back
        current = np.flatnonzero(count == 0)
        front += 1
    return ranks.tolist()


def hypervolume_2d(points: Sequence[Mapping[str, float]], objectives: Mapping[str, Direction],
                   reference: Mapping[str, float]) -> float:
    """The area dominated by the points and bounded by the reference point (two objectives).

    The reference point is the worst corner (e.g. zero accuracy and the largest MACs of interest);
    a point that is not strictly better than it in both objectives adds nothing.

    Args:
        points: Rows with a value for both objectives.
        objectives: Exactly two objective names -> ``"max"`` or ``"min"``.
        reference: A value for both objectives.

    Raises:
        ValueError: Not two objectives, or the reference lacks one.
    """
    if len(objectives) != 2:
        raise ValueError(f"objectives: the 2-D hypervolume needs exactly 2 objectives, got {list(objectives)}")
    missing = [k for k in objectives if k not in reference]
    if missing:
        raise ValueError(f"reference: no value for the objectives {missing}")
    ref = _minimised([reference], objectives)[0]
    if not points:
        return 0.0
    vals = _minimised(points, objectives)
    vals = vals[(vals < ref).all(axis=1)]
    if not len(vals):
        return 0.0
    order = np.lexsort((vals[:, 1], vals[:, 0]))  # by x, then y, ascending
    area, best_y = 0.0, ref[1]
    for x, y in vals[order]:
        if y < best_y:  # a point with no better y than one at smaller x is dominated (or a duplicate)
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)


class Front2D(NamedTuple):
    """The non-dominated points of two objectives, sorted along the first, and their hypervolume."""

    x: str
    y: str
    index: list[int]
    xs: list[float]
    ys: list[float]
    hypervolume: float
    reference: tuple[float, float]


def front_2d(points: Sequence[Mapping[str, float]], *, x: str, y: str, x_direction: Direction = "min",
             y_direction: Direction = "max", reference: Mapping[str, float] | None = None) -> Front2D:
    """The 2-D Pareto front of ``points`` (e.g. score vs MACs) with its hypervolume.

    Args:
        points: Rows with values ``x`` and ``y``.
        x: Name of the first objective (plotted horizontally).
        y: Name of the second objective.
        x_direction: ``"min"`` (a cost, the default) or ``"max"``.
        y_direction: ``"max"`` (score or accuracy, the default) or ``"min"``.
        reference: Reference point of the hypervolume; default: the worst value of each objective
            over the points (so the front's extreme points add area only along one axis).
    """
    objectives: dict[str, Direction] = {x: x_direction, y: y_direction}
    marks = non_dominated(points, objectives)
    index = sorted((i for i, m in enumerate(marks) if m), key=lambda i: (float(points[i][x]), float(points[i][y])))
    if reference is None and points:
        worst = {k: (max if d == "min" else min)(float(p[k]) for p in points) for k, d in objectives.items()}
        reference = worst
    ref = (float(reference[x]), float(reference[y])) if reference else (float("nan"), float("nan"))
    hv = hypervolume_2d(points, objectives, reference) if reference else 0.0
    return Front2D(x, y, index, [float(points[i][x]) for i in index], [float(points[i][y]) for i in index], hv, ref)
