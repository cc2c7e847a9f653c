"""Label placement (archsearch.report._layout) on plain rectangles, and the report's plots through it:
no two label boxes overlap, as matplotlib measures them at render time (the browser test checks the
same in the page)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.report import _layout
from archsearch.report._layout import Box, Candidate, around, boxes_overlap, in_rows, place, scan

BOUNDS = Box(0, 0, 600, 300)


def _scene(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], *, bounds: Box = BOUNDS):
    options = [around(x, y, w, h, gap=6, leader_from=10, radii=(14, 24, 36, 52, 72)) for (x, y), (w, h) in zip(anchors, sizes)]
    fallbacks = [lambda x=x, y=y, w=w, h=h: scan(x, y, w, h, bounds=bounds, step=6) for (x, y), (w, h) in zip(anchors, sizes)]
    marks = [Box(x - 5, y - 5, x + 5, y + 5) for x, y in anchors]
    return options, fallbacks, marks


def _check(chosen: list[Candidate | None], marks: list[Box], *, bounds: Box = BOUNDS, pad: float = 2.0) -> None:
    placed = [(i, c) for i, c in enumerate(chosen) if c is not None]
    assert not boxes_overlap([c.box.grown(pad / 2) for _, c in placed])
    for i, c in placed:
        assert c.box.inside(bounds)
        assert not any(c.box.overlaps(m) for j, m in enumerate(marks) if j != i), "a label covers another labelled point"
    legs = [(c.leader, c.box.nearest(*c.leader)) for _, c in placed if c.leader is not None]
    for a, b in itertools.combinations(legs, 2):
        assert not _layout._segments_cross(*a, *b), "two leaders cross"
    for (i, c), leg in itertools.product(placed, legs):
        if leg[0] != c.leader:
            assert not _layout._segment_hits(c.box, *leg), "a leader runs through a label"


def test_a_tight_cluster_fans_out_without_overlaps() -> None:
    """Four published models a few points apart (DeiT-S, TinyViT-21M, DeepMAD-R50, R34 on a log plot): every
    label placed, none overlapping, none over another point, leaders uncrossed."""
    anchors = [(300, 150), (296, 147), (315, 146), (299, 141)]
    sizes = [(70, 10), (100, 10), (95, 10), (95, 10)]
    options, fallbacks, marks = _scene(anchors, sizes)
    chosen = place(options, bounds=BOUNDS, points=marks, fallbacks=fallbacks, orders=[[0, 1, 2, 3], [3, 2, 1, 0]])
    assert all(c is not None for c in chosen)
    _check(chosen, marks)


def test_a_lone_label_sits_right_of_its_point_without_a_leader() -> None:
    (cand,) = place([around(100, 100, 40, 10, gap=6, leader_from=10, radii=(14,))], bounds=BOUNDS)
    assert cand.leader is None and cand.box.x0 == pytest.approx(106) and cand.box.centre[1] == pytest.approx(100)


def test_markers_push_a_label_aside_and_the_axes_hold_it() -> None:
    marker = Box(104, 94, 150, 106)  # a data point right of the labelled one
    (cand,) = place([around(100, 100, 40, 10, gap=6, leader_from=10, radii=(14,))], bounds=BOUNDS, obstacles=[marker])
    assert not cand.box.overlaps(marker)
    (edge,) = place([around(598, 100, 40, 10, gap=6, leader_from=10, radii=(14,))], bounds=BOUNDS)
    assert edge.box.inside(BOUNDS) and edge.box.x1 <= 598  # no room on the right: to the left


def test_no_room_falls_back_to_the_scan_then_to_none() -> None:
    small = Box(0, 0, 60, 40)
    anchors, sizes = [(30, 20), (30, 20), (30, 20)], [(50, 10), (50, 10), (50, 10)]
    options = [around(x, y, w, h, gap=6, leader_from=10) for (x, y), (w, h) in zip(anchors, sizes)]
    fallbacks = [lambda x=x, y=y, w=w, h=h: scan(x, y, w, h, bounds=small, step=2) for (x, y), (w, h) in zip(anchors, sizes)]
    chosen = place(options, bounds=small, fallbacks=fallbacks)
    assert chosen[0] is not None and chosen[-1] is None  # three 10-high labels do not fit 40 high with padding
    assert not boxes_overlap([c.box for c in chosen if c is not None])


def test_labels_of_lines_stack_in_rows() -> None:
    xs = [100, 104, 108]  # three published models at nearly the same cost
    options = [in_rows(x, 290, 60, 10, rows=3, gap=2, row_gap=2) for x in xs]
    chosen = place(options, bounds=BOUNDS)
    assert all(c is not None for c in chosen) and not boxes_overlap([c.box for c in chosen])
    assert sorted(round(c.box.y1) for c in chosen) == [266, 278, 290]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(40, 560), st.floats(30, 270), st.integers(20, 120)), min_size=1, max_size=10),
       st.floats(0, 1))
def test_placements_never_overlap(points: list[tuple[float, float, int]], squeeze: float) -> None:
    """Random scenes, squeezed towards one spot: whatever is placed never overlaps, covers another point or crosses."""
    cx, cy = 300, 150
    anchors = [(cx + (x - cx) * (1 - squeeze), cy + (y - cy) * (1 - squeeze)) for x, y, _ in points]
    sizes = [(float(w), 10.0) for _, _, w in points]
    options, fallbacks, marks = _scene(anchors, sizes)
    chosen = place(options, bounds=BOUNDS, points=marks, fallbacks=fallbacks, orders=[range(len(points)), range(len(points))[::-1]])
    _check(chosen, marks)


# -- the plots ------------------------------------------------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every figure a plot function saves: its label boxes (display units, as matplotlib measures the text),
    its axes' boxes and its legends' boxes, taken just before the SVG is written."""
    from matplotlib.text import Text

    from archsearch.report import plots

    seen: list[dict] = []
    save = plots._svg

    def spy(fig):  # noqa: ANN001, ANN202
        renderer = fig.canvas.get_renderer()
        labels = {}
        for ax in fig.axes:
            for text in ax.texts:
                gid = text.get_gid() or ""
                if gid.startswith("label-"):
                    text.update_positions(renderer)
                    ext = Text.get_window_extent(text, renderer)  # the text alone (an annotation's adds its leader)
                    labels[gid] = (text.get_text(), Box(ext.x0, ext.y0, ext.x1, ext.y1))
        axes = [ax.get_window_extent(renderer) for ax in fig.axes]
        legends = [leg.get_window_extent(renderer) for leg in fig.legends]
        svg = save(fig)
        seen.append({"labels": labels, "axes": axes, "legends": legends, "svg": svg, "notes": [t.get_text() for t in fig.texts]})
        return svg

    monkeypatch.setattr(plots, "_svg", spy)
    return seen


def _crowded_candidates():
    """The first-hour report of issue 19: a CIFAR CNN, NViT designs at DeiT-S's cost (under its star), TinyViT designs."""
    import pandas as pd

    rows = [("cifar", "cnn", "deepmad-bnb", 5618.0 - i, 19.9e6 + i * 1e4, 2.6e5 - i * 1e3, i < 2) for i in range(4)]
    rows += [("nvit", "vit", "nvit-program", 660.9 - i / 5, 4.598e9 + i * 4e5, 22.07e6 + i * 6e4, i < 3) for i in range(5)]
    rows += [("tinyvit", "tinyvit", "tinyvit-contract", 117.42 - i / 20, 1.87e9 + i * 2.5e7, 8.4e6 + i * 6e5, i < 2)
             for i in range(5)]
    return pd.DataFrame(rows, columns=["run", "family", "objective", "score", "macs", "params", "pareto"])


def test_costs_plot_labels_every_published_model_without_overlaps(captured: list[dict]) -> None:
    from archsearch.report.plots import costs_svg
    from archsearch.results import reference_frame

    refs = reference_frame()
    svg = costs_svg(_crowded_candidates(), refs)
    (fig,) = captured
    labels = fig["labels"]
    assert sorted(text.split(" ")[0] for text, _ in labels.values()) == sorted(refs["name"])  # every one labelled, none missed
    assert not fig["notes"]
    boxes = [box for _, box in labels.values()]
    assert boxes_overlap([box.grown(1) for box in boxes]) == []  # 2 points apart at least
    (ax,) = fig["axes"]
    assert all(box.inside(Box(ax.x0, ax.y0, ax.x1, ax.y1)) for box in boxes)
    (legend,) = fig["legends"]
    assert legend.x0 >= ax.x1  # the legend sits right of the data
    for gid in labels:
        assert f'id="{gid}"' in svg
    assert costs_svg(_crowded_candidates(), refs) == svg  # deterministic


def test_front_plots_label_published_lines_above_the_data(captured: list[dict]) -> None:
    from archsearch.report.plots import front_svg
    from archsearch.results import front_2d, reference_frame

    cands = _crowded_candidates()
    fronts = {}
    for objective, group in cands.groupby("objective"):
        for cost in ("macs", "params"):
            fronts[(objective, cost)] = front_2d(group.reset_index(drop=True).to_dict("records"), x=cost, y="score")
    refs = reference_frame(families={"tinyvit"})  # three lines within a factor 2 of the TinyViT designs' params
    front_svg(cands, fronts, objective="tinyvit-contract", references=refs, key="front-1")
    (fig,) = captured
    texts = sorted(text for text, _ in fig["labels"].values())
    assert texts == ["TinyViT-11M", "TinyViT-11M", "TinyViT-21M", "TinyViT-5M", "TinyViT-5M"]  # 2 in MACs, 3 in params
    assert boxes_overlap([box.grown(1) for _, box in fig["labels"].values()]) == []
    assert all(gid.startswith("label-front-1-") for gid in fig["labels"])
    (legend,) = fig["legends"]
    assert all(legend.x0 >= ax.x1 for ax in fig["axes"])


def test_figures_take_the_page_width() -> None:
    import re

    from archsearch.report.plots import PAGE_WIDTH, costs_svg
    from archsearch.results import reference_frame

    svg = costs_svg(_crowded_candidates(), reference_frame())
    width = float(re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"', svg).group(1))
    assert width == pytest.approx(72 * PAGE_WIDTH, rel=0.06)  # bbox "tight" trims a margin at most
    assert math.isclose(PAGE_WIDTH * 96, 1200)  # the report column's width in CSS pixels
