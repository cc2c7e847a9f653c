"""Plots of a report as inline SVG strings (matplotlib, Agg backend, text kept as SVG text).

matplotlib escapes every string it writes into SVG (``&``, ``<``, ``>``), and mathtext is off, so a
run named ``$x$`` or ``<script>`` is drawn literally.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import TYPE_CHECKING, Any, Iterator

from archsearch.results import COST_AXES, KINDS, Front2D, ValidatedFront

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KIND_STYLES", "costs_svg", "curves_svg", "front_svg", "kind_style", "sweep_svg", "validated_front_svg"]

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


@contextlib.contextmanager
def _figure(ncols: int, height: float = 3.2) -> Iterator[tuple[Any, list[Any]]]:
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, height), squeeze=False, layout="constrained")
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


def front_svg(candidates: "pd.DataFrame", fronts: dict[tuple[str, str], Front2D], *, objective: str,
              references: "pd.DataFrame | None" = None) -> str:
    """Score against every cost with values, one series per run (Pareto points filled, front drawn),
    published models of the runs' families as labelled vertical lines at their costs (those within a factor 2
    of the candidates' range)."""
    group = candidates[candidates["objective"] == objective]
    costs = [c for c in COST_AXES if (objective, c) in fronts]
    with _figure(len(costs)) as (fig, axes):
        for ax, cost in zip(axes, costs):
            for i, (run, rows) in enumerate(group.groupby("run", sort=False)):
                marker = _MARKERS[i % len(_MARKERS)]
                colour = f"C{i % 10}"
                ax.scatter(rows[cost], rows["score"], marker=marker, s=22, facecolors="none", edgecolors=colour, label=f"{run}")
                best = rows[rows["pareto"]]
                ax.scatter(best[cost], best["score"], marker=marker, s=22, color=colour)
            _step(ax, fronts[(objective, cost)], color="0.3", label="front (all runs)")
            if references is not None and cost in references and len(references):
                lo, hi = group[cost].min(), group[cost].max()
                for ref in references.itertuples():
                    value = getattr(ref, cost)
                    if not lo / 2 <= value <= 2 * hi:  # far off: it would squash the candidates into a line
                        continue
                    ax.axvline(value, color="0.6", linestyle=":", linewidth=1)
                    note = " (backbone)" if ref.counts == "backbone" else ""
                    ax.annotate(f"{ref.name}{note}", (value, 1), xycoords=("data", "axes fraction"), rotation=90,
                                fontsize=7, color="0.4", ha="right", va="top")
            _fmt_axis(ax, cost)
            ax.ticklabel_format(axis="y", useOffset=False)
            ax.set_ylabel(f"score ({objective})")
        axes[0].legend(fontsize=7, loc="best")
        fig.suptitle(f"{objective}: score vs cost (filled: Pareto-optimal)", fontsize=10)
        return _svg(fig)


def costs_svg(candidates: "pd.DataFrame", references: "pd.DataFrame") -> str:
    """MACs against parameters of every candidate of every family and run, with the published models
    (ImageNet top-1 in the label) on the same axes."""
    with _figure(1, height=3.6) as (fig, axes):
        ax = axes[0]
        for i, ((family, run), rows) in enumerate(candidates.groupby(["family", "run"], sort=True)):
            ax.scatter(rows["params"], rows["macs"], marker=_MARKERS[i % len(_MARKERS)], s=22, label=f"{family}: {run}")
        for ref in references.itertuples():
            ax.scatter([ref.params], [ref.macs], marker="*", s=60, color="black", zorder=3)
            note = ", backbone" if ref.counts == "backbone" else ""
            ax.annotate(f"{ref.name} {ref.top1:g}%{note}", (ref.params, ref.macs), textcoords="offset points", xytext=(4, 3),
                        fontsize=7)
        from matplotlib.ticker import EngFormatter, NullFormatter

        for axis, values, label in ((ax.xaxis, [*candidates["params"], *references["params"]], "parameters"),
                                    (ax.yaxis, [*candidates["macs"], *references["macs"]], "MACs")):
            wide = max(values) > 20 * min(values)  # log only where the values span decades
            if wide:
                (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
                axis.set_minor_formatter(NullFormatter())  # log minor ticks would be mathtext strings
            axis.set_major_formatter(EngFormatter(sep=""))
            (ax.set_xlabel if axis is ax.xaxis else ax.set_ylabel)(f"{label} (whole model{', log' if wide else ''})")
        ax.legend(fontsize=7, loc="best")
        fig.set_size_inches(7.5, 4.2)
        return _svg(fig)


def validated_front_svg(front: ValidatedFront) -> str:
    """Mean top-1 (± std over seeds as error bars, where a design has several) against every cost of
    one training: a marker and colour per kind (designed, baseline, random, then any other), published
    models as black stars, the Pareto-optimal designs ringed and each panel's 2-D front as a step line."""
    designs = front.designs
    kinds = list(dict.fromkeys([k for k in KINDS if k in set(designs["kind"])] + list(designs["kind"])))
    others = [k for k in kinds if k not in KIND_STYLES]
    several = bool((designs["seeds"] > 1).any())
    refs = front.references
    with _figure(len(front.costs)) as (fig, axes):
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
            if len(refs) and cost in refs:
                marker, colour = KIND_STYLES["published"]
                ax.scatter(refs[cost], 100 * refs["top1"], marker=marker, s=80, color=colour, label="published", zorder=3)
                for ref in refs.itertuples():
                    note = " (backbone)" if ref.counts == "backbone" else ""
                    ax.annotate(f"{ref.name}{note}", (getattr(ref, cost), 100 * ref.top1), textcoords="offset points",
                                xytext=(4, 3), fontsize=7)
            _fmt_axis(ax, cost)
            ax.ticklabel_format(axis="y", useOffset=False)
            ax.set_ylabel(f"top-1 % on {front.training.get('dataset')}" + (" (mean ± std)" if several else ""))
        handles, labels = axes[0].get_legend_handles_labels()
        last = ("published", "Pareto-optimal", "front")  # after the kinds, in this order
        order = sorted(range(len(labels)), key=lambda i: last.index(labels[i]) + 1 if labels[i] in last else 0)
        axes[0].legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="best")
        seeds = sorted(set(designs["seeds"]))
        counts = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
        fig.suptitle(f"validated front: {front.label} ({len(designs)} design{'s' if len(designs) != 1 else ''}, "
                     f"{counts} seed{'s' if seeds[-1] != 1 else ''} each)", fontsize=10)
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
            axes[0].legend(fontsize=7, loc="best")
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
        ax.legend(fontsize=7, loc="best")
        return _svg(fig)
