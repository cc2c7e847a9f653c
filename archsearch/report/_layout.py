"""Label placement for the report's plots: pure geometry on rectangles, no matplotlib.

Each label offers candidate boxes, each with a cost (how far it sits from its point); a greedy pass
takes, for every label in turn, the cheapest admissible candidate. Admissible: inside the axes, clear
of the labels already placed (their boxes and leader lines) and of every labelled point. Covering
another marker, or running a leader over one, adds to the cost rather than ruling the place out, so
a label moves a little farther rather than hide a point, but never leaves the plot for it.
Deterministic: the same input gives the same placement, so the report stays byte-identical.

Coordinates are display units with y pointing up, as matplotlib's transforms give them.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, NamedTuple, Sequence

__all__ = ["Box", "Candidate", "around", "boxes_overlap", "in_rows", "place", "scan"]


class Box(NamedTuple):
    """An axis-aligned rectangle, ``x0 <= x1`` and ``y0 <= y1``."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def centred(cls, cx: float, cy: float, width: float, height: float) -> "Box":
        return cls(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def grown(self, by: float) -> "Box":
        return Box(self.x0 - by, self.y0 - by, self.x1 + by, self.y1 + by)

    def overlaps(self, other: "Box") -> bool:
        """Whether the interiors intersect (touching edges do not count)."""
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def inside(self, other: "Box") -> bool:
        return other.x0 <= self.x0 and self.x1 <= other.x1 and other.y0 <= self.y0 and self.y1 <= other.y1

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    def nearest(self, x: float, y: float) -> tuple[float, float]:
        """The point of the rectangle nearest to ``(x, y)``."""
        return min(max(x, self.x0), self.x1), min(max(y, self.y0), self.y1)


class Candidate(NamedTuple):
    """A place for a label: its box, the point a leader line runs to from the box (None: no line), and
    its cost before penalties (the distance from the point; candidates come cheapest first)."""

    box: Box
    leader: tuple[float, float] | None = None
    cost: float = 0.0


def boxes_overlap(boxes: Sequence[Box]) -> list[tuple[int, int]]:
    """Every pair of indices whose boxes overlap (what the tests assert is empty)."""
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def _segment_hits(box: Box, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the segment a-b passes through the interior of ``box`` (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = a, b
    dx, dy = x1 - x0, y1 - y0
    lo, hi = 0.0, 1.0
    for p, q in ((-dx, x0 - box.x0), (dx, box.x1 - x0), (-dy, y0 - box.y0), (dy, box.y1 - y0)):
        if p == 0:
            if q <= 0:
                return False
            continue
        t = q / p
        if p < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        if lo >= hi:
            return False
    return hi - lo > 1e-9


def _segments_cross(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]) -> bool:
    """Whether the segments a-b and c-d cross (sharing an end point, as leaders to one point do, is no crossing)."""
    def side(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    if a in (c, d) or b in (c, d):
        return False
    return side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0


#: Directions tried around a point, best first: right, up-right, down-right, up, down, left, up-left, down-left.
_DIRECTIONS = (0, 45, -45, 90, -90, 180, 135, -135)
_MORE_DIRECTIONS = (*_DIRECTIONS, 22.5, -22.5, 67.5, -67.5, 157.5, -157.5, 112.5, -112.5)


def _by_preference(angles: Sequence[float], prefer: float | None) -> list[float]:
    """``angles`` (degrees) nearest to ``prefer`` first; in their own order when there is no preference."""
    if prefer is None:
        return list(angles)
    return sorted(angles, key=lambda a: abs((a - prefer + 180) % 360 - 180))


def around(x: float, y: float, width: float, height: float, *, gap: float, leader_from: float,
           radii: Iterable[float] = (), prefer: float | None = None) -> list[Candidate]:
    """Candidate boxes of a ``width`` x ``height`` label for the point ``(x, y)``, cheapest first.

    First the eight places at ``gap`` from the point (right first); then, at each radius of ``radii``,
    places in sixteen directions and a column of places stacked right and left of the point, each with
    a leader line back to the point once its box is farther than ``leader_from``. A candidate costs its
    ring's radius. ``prefer`` (degrees, counter-clockwise from the right) orders each ring by closeness
    to that direction instead: pointing away from a cluster's centre, it fans the cluster's labels out
    so their leaders do not cross.
    """
    out: list[Candidate] = []

    def at(angle: float, r: float) -> Box:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        sx = 0.0 if abs(c) < 1e-9 else math.copysign(1.0, c)
        sy = 0.0 if abs(s) < 1e-9 else math.copysign(1.0, s)
        return Box.centred(x + r * c + sx * width / 2, y + r * s + sy * height / 2, width, height)

    def add(box: Box, cost: float) -> None:
        nx, ny = box.nearest(x, y)
        far = math.hypot(nx - x, ny - y) > leader_from
        out.append(Candidate(box, (x, y) if far else None, cost))

    for angle in _by_preference(_DIRECTIONS, prefer):
        add(at(angle, gap), gap)
    step = height * 1.25
    sides = (1, -1) if prefer is None or math.cos(math.radians(prefer)) >= 0 else (-1, 1)
    signs = (1, -1) if prefer is None or math.sin(math.radians(prefer)) >= 0 else (-1, 1)
    done = 0
    for r in radii:
        for angle in _by_preference(_MORE_DIRECTIONS, prefer):
            add(at(angle, r), r)
        rows = max(1, int(r / step))
        for k in range(done + 1, rows + 1):  # a column beside the point: labels of a tight cluster stack up
            for sign in signs:
                for side in sides:
                    add(Box.centred(x + side * (gap + width / 2), y + sign * k * step, width, height), r)
        done = rows
    return out


def scan(x: float, y: float, width: float, height: float, *, bounds: Box, step: float, cost: float = 1000.0) -> list[Candidate]:
    """Every place on a grid over ``bounds``, nearest to ``(x, y)`` first, each with a leader line and
    costing ``cost`` more than its distance: the last resort when :func:`around` has no place left."""
    out = []
    nx, ny = int((bounds.x1 - bounds.x0 - width) / step) + 1, int((bounds.y1 - bounds.y0 - height) / step) + 1
    for i in range(max(nx, 0)):
        for j in range(max(ny, 0)):
            box = Box(bounds.x0 + i * step, bounds.y0 + j * step, bounds.x0 + i * step + width, bounds.y0 + j * step + height)
            out.append(Candidate(box, (x, y), cost + math.dist(box.nearest(x, y), (x, y))))
    out.sort(key=lambda c: (c.cost, c.box.x0, c.box.y0))
    return out


def in_rows(x: float, top: float, width: float, height: float, *, rows: int, gap: float, row_gap: float) -> list[Candidate]:
    """Candidate boxes beside a vertical line at ``x``, in rows downwards from ``top``: right of the
    line, then left; a row costs its index."""
    out = []
    for k in range(rows):
        y1 = top - k * (height + row_gap)
        out.append(Candidate(Box(x + gap, y1 - height, x + gap + width, y1), None, float(k)))
        out.append(Candidate(Box(x - gap - width, y1 - height, x - gap, y1), None, float(k)))
    return out


def place(candidates: Sequence[Sequence[Candidate]], *, bounds: Box, obstacles: Sequence[Box] = (),
          points: Sequence[Box | None] = (), pad: float = 2.0, cover: float = 40.0, cross: float = 10.0,
          orders: Sequence[Sequence[int]] | None = None,
          fallbacks: Sequence[Callable[[], list[Candidate]]] = ()) -> list[Candidate | None]:
    """Chooses one candidate per label (each label's candidates cheapest first), greedily, label after label.

    Admissible: inside ``bounds``; the box, grown by ``pad``, overlaps no box chosen before and no
    other label's point (``points[i]``: the marker of label ``i``'s point, or None); its leader crosses
    no box and no leader chosen before, and no leader chosen before crosses its box. Among those the
    cheapest wins: its cost, plus ``cover`` for each obstacle (a marker) its box covers and ``cross``
    for each its leader passes over (other than the one it points at); the first of equals.

    The greedy pass runs once for each order of ``orders`` (label indices; default: the order given)
    and the placement that labels the most, then costs the least, wins. A label none of whose
    candidates is admissible tries those ``fallbacks[i]()`` makes (e.g. :func:`scan`; made once, when
    first needed); None for a label with no admissible place at all (the caller lists it elsewhere).
    """
    made: dict[int, list[Candidate]] = {}

    def more(i: int) -> list[Candidate]:
        if i not in made:
            made[i] = fallbacks[i]() if i < len(fallbacks) else []
        return made[i]

    best: tuple[int, float] = (len(candidates) + 1, math.inf)
    result: list[Candidate | None] = [None] * len(candidates)
    for order in orders or [range(len(candidates))]:
        chosen, cost = _greedy(candidates, list(order), bounds, obstacles, points, pad, cover, cross, more)
        key = (sum(c is None for c in chosen), cost)
        if key < best:
            best, result = key, chosen
    return result


def _greedy(candidates: Sequence[Sequence[Candidate]], order: list[int], bounds: Box, obstacles: Sequence[Box],
            points: Sequence[Box | None], pad: float, cover: float, cross: float,
            more: Callable[[int], list[Candidate]]) -> tuple[list[Candidate | None], float]:
    chosen: list[Candidate | None] = [None] * len(candidates)
    placed: list[Candidate] = []
    legs: list[tuple[tuple[float, float], tuple[float, float]]] = []
    total = 0.0
    for i in order:
        others = [p for j, p in enumerate(points) if j != i and p is not None]
        best, best_cost = _cheapest(candidates[i], bounds, obstacles, others, placed, legs, pad, cover, cross)
        if best is None:
            best, best_cost = _cheapest(more(i), bounds, obstacles, others, placed, legs, pad, cover, cross)
        chosen[i] = best
        if best is not None:
            total += best_cost
            placed.append(best)
            if best.leader is not None:
                legs.append((best.leader, best.box.nearest(*best.leader)))
    return chosen, total


def _cheapest(options: Sequence[Candidate], bounds: Box, obstacles: Sequence[Box], others: list[Box], placed: list[Candidate],
              legs: list[tuple[tuple[float, float], tuple[float, float]]], pad: float, cover: float,
              cross: float) -> tuple[Candidate | None, float]:
    best: Candidate | None = None
    best_cost = math.inf
    for cand in options:
        if cand.cost >= best_cost:  # cheapest first: nothing later can win
            break
        box = cand.box
        if not box.inside(bounds):
            continue
        grown = box.grown(pad)
        if any(grown.overlaps(p.box) for p in placed) or any(grown.overlaps(p) for p in others):
            continue
        if any(_segment_hits(grown, a, b) for a, b in legs):
            continue
        cost = cand.cost + cover * sum(box.overlaps(o) for o in obstacles)
        if cand.leader is not None:
            leg = (cand.leader, box.nearest(*cand.leader))
            if any(_segment_hits(p.box.grown(pad / 2), *leg) for p in placed):
                continue
            if any(_segments_cross(*leg, *other) for other in legs):
                continue
            cost += cross * sum(_segment_hits(o, *leg) for o in obstacles if not o.contains(*cand.leader))
        if cost < best_cost:
            best, best_cost = cand, cost
    return best, best_cost
