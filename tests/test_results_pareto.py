"""Non-dominated sorting and the 2-D hypervolume against brute force, ties and duplicates included."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.results import front_2d, hypervolume_2d, non_dominated, pareto_ranks


def _better_eq(a: float, b: float, d: str) -> bool:
    return a <= b if d == "min" else a >= b


def _dominates(p: dict, q: dict, objectives: dict) -> bool:
    return (all(_better_eq(p[k], q[k], d) for k, d in objectives.items())
            and any(p[k] != q[k] for k in objectives))


def brute_ranks(points: list[dict], objectives: dict) -> list[int]:
    """Peels fronts by definition: a point is in the next front when no remaining point dominates it."""
    ranks = [0] * len(points)
    remaining = set(range(len(points)))
    front = 1
    while remaining:
        layer = {i for i in remaining if not any(_dominates(points[j], points[i], objectives) for j in remaining)}
        for i in layer:
            ranks[i] = front
        remaining -= layer
        front += 1
    return ranks


def brute_hypervolume(points: list[dict], objectives: dict, reference: dict) -> float:
    """Area of the union of the boxes between each point and the reference, by cells of a grid."""
    names = list(objectives)
    sign = {k: 1.0 if d == "min" else -1.0 for k, d in objectives.items()}
    pts = [tuple(sign[k] * p[k] for k in names) for p in points]
    ref = tuple(sign[k] * reference[k] for k in names)
    xs = sorted({p[0] for p in pts if p[0] < ref[0]} | {ref[0]})
    ys = sorted({p[1] for p in pts if p[1] < ref[1]} | {ref[1]})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:]), zip(ys, ys[1:])):
        if any(p[0] <= x0 and p[1] <= y0 for p in pts):
            area += (x1 - x0) * (y1 - y0)
    return area


DIRECTIONS = st.sampled_from(["max", "min"])


@st.composite
def point_sets(draw: st.DrawFn, max_objectives: int = 4) -> tuple[list[dict], dict]:
    m = draw(st.integers(1, max_objectives))
    objectives = {f"f{j}": draw(DIRECTIONS) for j in range(m)}
    # small integer grids make ties in single objectives and exact duplicates common
    values = st.integers(0, draw(st.sampled_from([2, 5, 50])))
    n = draw(st.integers(0, 30))
    points = [{k: float(draw(values)) for k in objectives} for _ in range(n)]
    if points and draw(st.booleans()):
        points += [dict(points[0]), dict(points[-1])]  # explicit duplicates
    return points, objectives


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_ranks_and_marks_equal_brute_force(data: tuple[list[dict], dict]) -> None:
    points, objectives = data
    ranks = pareto_ranks(points, objectives)
    assert ranks == brute_ranks(points, objectives)
    assert non_dominated(points, objectives) == [r == 1 for r in ranks]
    for i, j in itertools.permutations(range(len(points)), 2):  # a dominated point sits in a later front
        if _dominates(points[i], points[j], objectives):
            assert ranks[i] < ranks[j]


@settings(max_examples=150, deadline=None)
@given(point_sets(max_objectives=2).filter(lambda d: len(d[1]) == 2), st.integers(-3, 60), st.integers(-3, 60))
def test_hypervolume_equals_brute_force(data: tuple[list[dict], dict], rx: int, ry: int) -> None:
    points, objectives = data
    reference = dict(zip(objectives, (float(rx), float(ry))))
    assert hypervolume_2d(points, objectives, reference) == pytest.approx(brute_hypervolume(points, objectives, reference))


def test_seeded_random_fronts_continuous_values() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        raw = rng.random((60, 2))
        points = [{"acc": float(a), "macs": float(c)} for a, c in raw]
        objectives = {"acc": "max", "macs": "min"}
        assert pareto_ranks(points, objectives) == brute_ranks(points, objectives)
        ref = {"acc": 0.0, "macs": 1.0}
        assert hypervolume_2d(points, objectives, ref) == pytest.approx(brute_hypervolume(points, objectives, ref))


def test_known_answers() -> None:
    points = [{"score": 3, "macs": 3}, {"score": 2, "macs": 1}, {"score": 2, "macs": 1}, {"score": 1, "macs": 2},
              {"score": 0, "macs": 5}]
    objectives = {"score": "max", "macs": "min"}
    assert pareto_ranks(points, objectives) == [1, 1, 1, 2, 3]
    # boxes up to (score 0, macs 4): [3-0]x[4-3] + [2-0]x[3-1] = 3 + 4; the last point is at the reference
    assert hypervolume_2d(points, objectives, {"score": 0, "macs": 4}) == 7.0
    front = front_2d(points, x="macs", y="score", reference={"score": 0, "macs": 4})
    assert front.index == [1, 2, 0] and front.xs == [1, 1, 3] and front.hypervolume == 7.0
    assert front_2d(points, x="macs", y="score").reference == (5.0, 0.0)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="direction must be 'max' or 'min'"):
        pareto_ranks([{"a": 1}], {"a": "up"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="exactly 2 objectives"):
        hypervolume_2d([{"a": 1}], {"a": "max"}, {"a": 0})
    with pytest.raises(ValueError, match="no value for the objectives"):
        hypervolume_2d([{"a": 1, "b": 1}], {"a": "max", "b": "min"}, {"a": 0})
    with pytest.raises(ValueError, match="'b': missing"):
        pareto_ranks([{"a": 1}], {"a": "max", "b": "min"})
    with pytest.raises(ValueError, match="NaN"):
        pareto_ranks([{"a": float("nan")}], {"a": "max"})
    assert pareto_ranks([], {"a": "max"}) == [] and hypervolume_2d([], {"a": "max", "b": "min"}, {"a": 0, "b": 1}) == 0.0
