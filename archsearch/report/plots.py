"""Plots of a report as inline SVG strings (matplotlib, Agg backend, text kept as SVG text).

Every figure is drawn at the page's width (the HTML scales it to the column) with its legend outside
the axes. Labels of published models are placed by :mod:`archsearch.report._layout` once the layout is
fixed, so no two overlap; each label's SVG group has the id ``label-<figure>-<n>``, which the browser
test reads back. Published models are hollow stars drawn under the candidates, whose markers are
hollow (filled where Pareto-optimal, translucently), so coinciding points all stay visible.

matplotlib escapes every string it writes into SVG (``&``, ``<``, ``>``), and mathtext is off, so a
run named ``$x$`` or ``<script>`` is drawn literally.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import re
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from archsearch.report import _layout
from archsearch.results import COST_AXES, KINDS, Front2D, ValidatedFront

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KIND_STYLES", "PAGE_WIDTH", "costs_svg", "curves_svg", "front_png", "front_svg", "kind_style", "sweep_svg",
           "validated_front_svg"]

_RC = {
    "svg.fonttype": "none",  # text as <text>, not paths: small files, selectable and searchable in the page
    "svg.hashsalt": "archsearch",  # deterministic element ids: the same report twice is the same file
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 72,
}
_MARKERS = "osD^v<>pP*Xh"

#: Width of every figure in inches: the report's column (1 200 px at 96 px an inch), so text keeps its size.
PAGE_WIDTH = 12.5
_LABEL_SIZE = 8  # points
_LABEL_BOX = {"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
_LEADER = {"arrowstyle": "-", "color": "0.35", "linewidth": 0.7, "shrinkA": 0, "shrinkB": 3}
_REF_SIZE = 80  # points²: published models' stars
_REF_STYLE = {"marker": "*", "facecolors": "none", "edgecolors": "black", "linewidths": 0.9, "zorder": 2}

#: Marker and colour of each kind of validated design; published models are black stars.
KIND_STYLES = {"designed": ("o", "C0"), "baseline": ("s", "C1"), "random": ("^", "C2"), "published": ("*", "black")}
_OTHER_KINDS = (("D", "C3"), ("v", "C4"), ("P", "C5"), ("X", "C6"), ("h", "C8"))


def kind_style(kind: str, others: list[str] | None = None) -> tuple[str, str]:
    """The (marker, colour) of a kind; a kind outside :data:`KIND_STYLES` takes the next free style
    by its place in ``others`` (the extra kinds of the figure, in order)."""
    if kind in KIND_STYLES:
        return KIND_STYLES[kind]
    index = (others or [kind]).index(kind) if kind in (others or []) else 0
    return _OTHER_KINDS[index % len(_OTHER_KINDS)]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("archsearch report needs matplotlib: pip install 'archsearch' (or pip install matplotlib)") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: the SVG goes inline into HTML
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _png(fig: Any, *, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    return buf.getvalue()


@contextlib.contextmanager
def _figure(ncols: int, height: float = 3.6) -> Iterator[tuple[Any, list[Any]]]:
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, axes = plt.subplots(1, ncols, figsize=(PAGE_WIDTH, height), squeeze=False, layout="constrained")
        try:
            yield fig, list(axes[0])
        finally:
            plt.close(fig)


def _step(ax: Any, front: Front2D, **kwargs: Any) -> None:
    """The front as a staircase: each point's value holds until the next, cheaper-to-costlier."""
    if len(front.xs) > 1:
        ax.step(front.xs, front.ys, where="post", linewidth=1, alpha=0.6, **kwargs)


def _fmt_axis(ax: Any, cost: str) -> None:
    ax.set_xlabel(COST_AXES.get(cost, cost))
    if cost in ("macs", "params"):
        from matplotlib.ticker import EngFormatter

        ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _legend_outside(fig: Any, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """The figure's legend right of the axes, where it covers no data."""
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)


def _lay_out(fig: Any) -> Any:
    """Runs the figure's layout (constrained) and returns the renderer that measured it."""
    fig.draw_without_rendering()
    return fig.canvas.get_renderer()


def _freeze(fig: Any) -> Any:
    """Lays the figure out and fixes it there, so display coordinates hold while labels are placed
    (labels are then drawn inside the axes, and move nothing); returns the renderer."""
    renderer = _lay_out(fig)
    fig.set_layout_engine("none")
    return renderer


def _label_size(fig: Any, renderer: Any, text: str) -> tuple[float, float]:
    """The display size of a label's box: its text and the white box around it."""
    probe = fig.text(0, 0, text, fontsize=_LABEL_SIZE)
    ext = probe.get_window_extent(renderer)
    probe.remove()
    pad = 2 * 0.15 * _LABEL_SIZE * fig.dpi / 72
    return ext.width + pad, ext.height + pad


def _marker_boxes(ax: Any) -> list[_layout.Box]:
    """Display boxes of every marker drawn on ``ax`` (scatter points and line markers)."""
    import numpy as np

    scale = ax.figure.dpi / 72
    boxes = []
    for coll in ax.collections:
        sizes = coll.get_sizes() if hasattr(coll, "get_sizes") else []
        offsets = coll.get_offsets()
        if not len(sizes) or not len(offsets):
            continue
        pts = coll.get_offset_transform().transform(offsets)
        for k, (x, y) in enumerate(pts):
            half = (float(np.sqrt(sizes[k % len(sizes)])) / 2 + 1) * scale
            if np.isfinite(x) and np.isfinite(y):
                boxes.append(_layout.Box(x - half, y - half, x + half, y + half))
    for line in ax.lines:
        if line.get_marker() in (None, "", "None", " "):
            continue
        half = (line.get_markersize() / 2 + 1) * scale
        for x, y in line.get_transform().transform(line.get_xydata()):
            if np.isfinite(x) and np.isfinite(y):
                boxes.append(_layout.Box(x - half, y - half, x + half, y + half))
    return boxes


def _draw_label(ax: Any, text: str, xy: tuple[float, float], anchor: tuple[float, float], cand: _layout.Candidate,
                gid: str, xycoords: Any = "data") -> None:
    """Draws ``text`` centred in the chosen box, with a leader line to ``xy`` where the box is away from it."""
    to_points = 72 / ax.figure.dpi
    cx, cy = cand.box.centre
    ann = ax.annotate(text, xy, xycoords=xycoords, xytext=((cx - anchor[0]) * to_points, (cy - anchor[1]) * to_points),
                      textcoords="offset points", ha="center", va="center", fontsize=_LABEL_SIZE, color="0.15",
                      bbox=_LABEL_BOX, arrowprops=_LEADER if cand.leader is not None else None, annotation_clip=False,
                      zorder=5)
    ann.set_gid(gid)


def _label_points(fig: Any, renderer: Any, ax: Any, points: Sequence[tuple[float, float, str]], *, key: str,
                  marker_size: float, start: int = 0) -> list[str]:
    """Labels each ``(x, y, text)`` (data coordinates; a marker of area ``marker_size`` points² there)
    beside its point, with no two labels overlapping; returns the texts that found no room."""
    if not points:
        return []
    box = ax.get_window_extent(renderer)
    scale = fig.dpi / 72
    bounds = _layout.Box(box.x0 + 2 * scale, box.y0 + 2 * scale, box.x1 - 2 * scale, box.y1 - 2 * scale)
    anchors = [tuple(float(v) for v in ax.transData.transform((x, y))) for x, y, _ in points]
    half = (math.sqrt(marker_size) / 2 + 1) * scale
    marks = [_layout.Box(x - half, y - half, x + half, y + half) for x, y in anchors]
    sizes = [_label_size(fig, renderer, text) for _, _, text in points]
    options, fallbacks = [], []
    for i in range(len(points)):
        (x, y), (w, h) = anchors[i], sizes[i]
        near = [a for j, a in enumerate(anchors) if j != i and math.dist(a, anchors[i]) < 40 * scale]
        prefer = None  # away from the neighbours' centre: a cluster's labels fan out
        if near:
            dx, dy = x - sum(a[0] for a in near) / len(near), y - sum(a[1] for a in near) / len(near)
            prefer = math.degrees(math.atan2(dy, dx)) if math.hypot(dx, dy) > 1e-6 else None
        options.append(_layout.around(x, y, w, h, gap=half + 1.5 * scale, leader_from=half + 5 * scale, prefer=prefer,
                                      radii=[r * scale for r in (14, 24, 36, 52, 72, 96, 128)]))
        fallbacks.append(functools.partial(_layout.scan, x, y, w, h, bounds=bounds, step=6 * scale))
    # the labelled points' own markers are kept clear as ``points`` (a hard rule), the other markers as obstacles
    obstacles = [b for b in _marker_boxes(ax) if not any(b.inside(m.grown(0.5)) for m in marks)]
    index = range(len(points))
    orders = [sorted(index, key=lambda i: (-anchors[i][1], anchors[i][0], i)),  # top to bottom, and the other ways
              sorted(index, key=lambda i: (anchors[i][1], anchors[i][0], i)),
              sorted(index, key=lambda i: (anchors[i][0], -anchors[i][1], i)),
              sorted(index, key=lambda i: (-anchors[i][0], -anchors[i][1], i))]
    chosen = _layout.place(options, bounds=bounds, obstacles=obstacles, points=marks, pad=2 * scale, orders=orders,
                           fallbacks=fallbacks)
    missed = []
    for i, cand in enumerate(chosen):
        x, y, text = points[i]
        if cand is None:
            missed.append(text)
        else:
            _draw_label(ax, text, (x, y), anchors[i], cand, f"label-{key}-{start + i}")
    return missed


def _note_missed(fig: Any, missed: list[str]) -> None:
    """Labels with no room anywhere in their axes (a crowded plot) are listed under the figure instead."""
    if missed:
        fig.text(0.01, -0.01, "not labelled for want of room: " + "; ".join(missed), fontsize=_LABEL_SIZE, va="top")


def _reserve_rows(fig: Any, lines: dict[Any, list[tuple[float, str]]]) -> None:
    """Raises the top of each axes with published-model lines by a band that holds one row of labels a
    line, so the labels sit above the data rather than on it."""
    if not any(lines.values()):
        return
    renderer = _lay_out(fig)
    scale = fig.dpi / 72
    for ax, items in lines.items():
        if not items:
            continue
        height = max(_label_size(fig, renderer, text)[1] for _, text in items)
        band = len(items) * (height + 2 * scale) + 6 * scale
        full = ax.get_window_extent(renderer).height
        band = min(band * 1.15, 0.6 * full)  # a little slack: the final layout may shrink the axes a little
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, lo + (hi - lo) * full / (full - band))


def _label_lines(fig: Any, renderer: Any, ax: Any, items: list[tuple[float, str]], *, key: str, start: int) -> list[str]:
    """Labels vertical lines at x = value in the band at the top of ``ax`` (:func:`_reserve_rows`),
    beside their line, a row lower where the row above is taken; returns the texts that found no room."""
    scale = fig.dpi / 72
    box = ax.get_window_extent(renderer)
    bounds = _layout.Box(box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1)
    xs = [float(ax.transData.transform((value, 0))[0]) for value, _ in items]
    posts = [_layout.Box(x - 0.5 * scale, bounds.y0, x + 0.5 * scale, bounds.y1) for x in xs]
    options = []
    for i in range(len(items)):
        w, h = _label_size(fig, renderer, items[i][1])
        options.append(_layout.in_rows(xs[i], bounds.y1 - 2 * scale, w, h, rows=len(items), gap=2 * scale, row_gap=2 * scale))
    obstacles = _marker_boxes(ax) + posts
    orders = [sorted(range(len(items)), key=lambda i: (xs[i], i)), sorted(range(len(items)), key=lambda i: (-xs[i], i))]
    chosen = _layout.place(options, bounds=bounds, obstacles=obstacles, pad=2 * scale, orders=orders)
    missed = []
    for i, cand in enumerate(chosen):
        value, text = items[i]
        if cand is None:
            missed.append(text)
        else:
            _draw_label(ax, text, (value, 1), (xs[i], box.y1), cand, f"label-{key}-{start + i}",
                        xycoords=("data", "axes fraction"))
    return missed


def front_svg(candidates: "pd.DataFrame", fronts: dict[tuple[str, str], Front2D], *, objective: str,
              references: "pd.DataFrame | None" = None, key: str = "front") -> str:
    """Score against every cost with values, one series per run (hollow markers, translucently filled
    where Pareto-optimal, the front drawn), published models of the runs' families as dotted vertical
    lines at their costs (those within a factor 2 of the candidates' range), labelled above the data.
    ``key`` names the figure in its labels' SVG ids (``label-<key>-<n>``)."""
    return _front(candidates, fronts, objective=objective, references=references, key=key, save=_svg)


def front_png(candidates: "pd.DataFrame", fronts: dict[tuple[str, str], Front2D], *, objective: str,
              references: "pd.DataFrame | None" = None, dpi: int = 144) -> bytes:
    """The figure of :func:`front_svg` as a PNG (``dpi`` pixels an inch; the same bytes for the same input),
    for pages that cannot inline SVG (the README's picture)."""
    return _front(candidates, fronts, objective=objective, references=references, key="front",
                  save=functools.partial(_png, dpi=dpi))


def _front(candidates: "pd.DataFrame", fronts: dict[tuple[str, str], Front2D], *, objective: str,
           references: "pd.DataFrame | None", key: str, save: Callable[[Any], Any]) -> Any:
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D

    group = candidates[candidates["objective"] == objective]
    costs = [c for c in COST_AXES if (objective, c) in fronts]
    with _figure(len(costs)) as (fig, axes):
        lines: dict[Any, list[tuple[float, str]]] = {}
        for ax, cost in zip(axes, costs):
            for i, (run, rows) in enumerate(group.groupby("run", sort=False)):
                marker = _MARKERS[i % len(_MARKERS)]
                colour = f"C{i % 10}"
                ax.scatter(rows[cost], rows["score"], marker=marker, s=30, facecolors="none", edgecolors=colour,
                           linewidths=1.1, label=f"{run}", zorder=3)
                best = rows[rows["pareto"]]
                ax.scatter(best[cost], best["score"], marker=marker, s=30, facecolors=to_rgba(colour, 0.45),
                           edgecolors=colour, linewidths=1.1, zorder=3)
            _step(ax, fronts[(objective, cost)], color="0.3", label="front (all runs)")
            lines[ax] = []
            if references is not None and cost in references and len(references):
                lo, hi = group[cost].min(), group[cost].max()
                for ref in references.itertuples():
                    value = getattr(ref, cost)
                    if not lo / 2 <= value <= 2 * hi:  # far off: it would squash the candidates into a line
                        continue
                    ax.axvline(value, color="0.55", linestyle=":", linewidth=1, zorder=1)
                    note = " (backbone)" if ref.counts == "backbone" else ""
                    lines[ax].append((value, f"{ref.name}{note}"))
            _fmt_axis(ax, cost)
            ax.ticklabel_format(axis="y", useOffset=False)
            ax.set_ylabel(f"score ({objective})")
        handles, labels = axes[0].get_legend_handles_labels()
        if any(lines.values()):
            handles.append(Line2D([], [], color="0.55", linestyle=":", linewidth=1))
            labels.append("published model (at its cost)")
        _legend_outside(fig, handles, labels)
        fig.suptitle(f"{objective}: score vs cost (filled: Pareto-optimal)", fontsize=10)
        _reserve_rows(fig, lines)
        renderer = _freeze(fig)
        missed, start = [], 0
        for ax, items in lines.items():
            missed += _label_lines(fig, renderer, ax, items, key=key, start=start)
            start += len(items)
        _note_missed(fig, missed)
        return save(fig)


def costs_svg(candidates: "pd.DataFrame", references: "pd.DataFrame") -> str:
    """MACs against parameters of every candidate of every family and run (hollow markers), with the
    published models (hollow stars underneath, ImageNet top-1 in the label, labels placed without overlaps)
    on the same axes."""
    with _figure(1, height=4.8) as (fig, axes):
        ax = axes[0]
        for i, ((family, run), rows) in enumerate(candidates.groupby(["family", "run"], sort=True)):
            ax.scatter(rows["params"], rows["macs"], marker=_MARKERS[i % len(_MARKERS)], s=30, facecolors="none",
                       edgecolors=f"C{i % 10}", linewidths=1.2, label=f"{family}: {run}", zorder=3)
        if len(references):
            ax.scatter(references["params"], references["macs"], s=_REF_SIZE, label="published (ImageNet top-1)", **_REF_STYLE)
        from matplotlib.ticker import EngFormatter, NullFormatter

        for axis, values, label in ((ax.xaxis, [*candidates["params"], *references["params"]], "parameters"),
                                    (ax.yaxis, [*candidates["macs"], *references["macs"]], "MACs")):
            wide = max(values) > 20 * min(values)  # log only where the values span decades
            if wide:
                (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
                axis.set_minor_formatter(NullFormatter())  # log minor ticks would be mathtext strings
            axis.set_major_formatter(EngFormatter(sep=""))
            (ax.set_xlabel if axis is ax.xaxis else ax.set_ylabel)(f"{label} (whole model{', log' if wide else ''})")
        handles, labels = ax.get_legend_handles_labels()
        _legend_outside(fig, handles, labels)
        renderer = _freeze(fig)
        # no ", backbone" in the labels (shorter ones fit a crowded plot): the caption says which models count it only
        points = [(ref.params, ref.macs, f"{ref.name} {ref.top1:g}%") for ref in references.itertuples()]
        _note_missed(fig, _label_points(fig, renderer, ax, points, key="costs", marker_size=_REF_SIZE))
        return _svg(fig)


def validated_front_svg(front: ValidatedFront, *, key: str = "validated") -> str:
    """Mean top-1 (± std over seeds as error bars, where a design has several) against every cost of
    one training: a marker and colour per kind (designed, baseline, random, then any other), published
    models as hollow black stars (labels placed without overlaps; SVG ids ``label-<key>-<n>``), the
    Pareto-optimal designs ringed and each panel's 2-D front as a step line."""
    designs = front.designs
    kinds = list(dict.fromkeys([k for k in KINDS if k in set(designs["kind"])] + list(designs["kind"])))
    others = [k for k in kinds if k not in KIND_STYLES]
    several = bool((designs["seeds"] > 1).any())
    refs = front.references
    with _figure(len(front.costs)) as (fig, axes):
        labels_of: dict[Any, list[tuple[float, float, str]]] = {}
        for ax, cost in zip(axes, front.costs):
            for kind in kinds:
                rows = designs[designs["kind"] == kind]
                marker, colour = kind_style(kind, others)
                err = (100 * rows["top1_std"]).where(rows["seeds"] > 1) if several else None
                ax.errorbar(rows[cost], 100 * rows["top1"], yerr=err, fmt=marker, color=colour, markersize=5, capsize=2,
                            elinewidth=0.8, label=f"{kind} ({len(rows)})", zorder=3)
            best = designs[designs["pareto"]]
            ax.scatter(best[cost], 100 * best["top1"], s=140, facecolors="none", edgecolors="black", linewidths=1.1,
                       label="Pareto-optimal", zorder=4)
            line = front.fronts[cost]
            _step(ax, line._replace(ys=[100 * y for y in line.ys]), color="0.3", label="front", zorder=2)
            labels_of[ax] = []
            if len(refs) and cost in refs:
                ax.scatter(refs[cost], 100 * refs["top1"], s=_REF_SIZE, label="published", **_REF_STYLE)
                labels_of[ax] = [(getattr(ref, cost), 100 * ref.top1,
                                  ref.name + (" (backbone)" if ref.counts == "backbone" else "")) for ref in refs.itertuples()]
            _fmt_axis(ax, cost)
            ax.ticklabel_format(axis="y", useOffset=False)
            lo, hi = ax.get_ylim()
            if hi > 100:  # top-1 stops at 100 %: no axis (or tick) above it; markers at 100 drawn whole
                ax.set_ylim(lo, 100)
                for artist in (*ax.lines, *ax.collections):
                    artist.set_clip_on(False)
            ax.set_ylabel(f"top-1 % on {front.training.get('dataset')}" + (" (mean ± std)" if several else ""))
        handles, labels = axes[0].get_legend_handles_labels()
        last = ("published", "Pareto-optimal", "front")  # after the kinds, in this order
        order = sorted(range(len(labels)), key=lambda i: last.index(labels[i]) + 1 if labels[i] in last else 0)
        _legend_outside(fig, [handles[i] for i in order], [labels[i] for i in order])
        seeds = sorted(set(designs["seeds"]))
        counts = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
        fig.suptitle(f"validated front: {front.label} ({len(designs)} design{'s' if len(designs) != 1 else ''}, "
                     f"{counts} seed{'s' if seeds[-1] != 1 else ''} each)", fontsize=10)
        renderer = _freeze(fig)
        missed, start = [], 0
        for ax, points in labels_of.items():
            missed += _label_points(fig, renderer, ax, points, key=key, marker_size=_REF_SIZE, start=start)
            start += len(points)
        _note_missed(fig, missed)
        return _svg(fig)


def curves_svg(curves: "pd.DataFrame") -> str:
    """Test top-1 and training loss per epoch of every validated candidate and seed (a legend up to 12
    lines; more would cover the plot)."""
    seeded = "seed" in curves and curves.groupby(["run", "name"])["seed"].nunique().gt(1).any()
    with _figure(2) as (fig, axes):
        lines = curves.groupby(["run", "name", "key"], sort=True)
        for (run, name, key), rows in lines:
            rows = rows.sort_values("epoch")
            label = f"{name} ({run})" if curves["run"].nunique() > 1 else str(name)
            if seeded:
                label += f" seed {rows['seed'].iloc[0]}"
            tested = rows[rows["top1"].notna()]  # with --eval-every K, epochs between evaluations have no top-1
            axes[0].plot(tested["epoch"], 100 * tested["top1"], marker="o", markersize=3, label=label)
            axes[1].plot(rows["epoch"], rows["train_loss"], marker="o", markersize=3, label=label)
        axes[0].set_ylabel("test top-1 %")
        axes[1].set_ylabel("training loss")
        from matplotlib.ticker import MaxNLocator

        for ax in axes:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if lines.ngroups <= 12:
            _legend_outside(fig, *axes[0].get_legend_handles_labels())
        return _svg(fig)


def sweep_svg(sweeps: "pd.DataFrame") -> str:
    """Best score against the swept budget of each ``--sweep`` run."""
    keys = [c for c in sweeps.columns if c.startswith("budget_") and sweeps[c].nunique(dropna=True) > 1] or \
        [c for c in sweeps.columns if c.startswith("budget_")][:1]
    key = keys[0]
    with _figure(1) as (fig, axes):
        ax = axes[0]
        for i, (run, rows) in enumerate(sweeps.groupby("run", sort=False)):
            ax.plot(rows[key], rows["score"], marker=_MARKERS[i % len(_MARKERS)], markersize=4, label=str(run))
        _fmt_axis(ax, key.removeprefix("budget_"))
        ax.set_xlabel(f"budget: {key.removeprefix('budget_')}")
        ax.set_ylabel("best score")
        _legend_outside(fig, *ax.get_legend_handles_labels())
        return _svg(fig)
