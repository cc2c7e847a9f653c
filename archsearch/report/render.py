"""One self-contained HTML file from a report's data: Jinja2 (autoescape on), inline CSS, inline SVG
plots, a few lines of inline JavaScript that sort the tables. Nothing is fetched when it is viewed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from archsearch import __version__
from archsearch.errors import SpecError
from archsearch.report import plots
from archsearch.results import COST_AXES, KINDS, ReportData, arch_units, duration, grouped, human, report_data
from archsearch.space import spec_from_dict
from archsearch.space.budget import format_count

__all__ = ["render_report", "write_front_png", "write_report"]

_TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> Any:
    try:
        import jinja2
    except ImportError as exc:  # pragma: no cover - jinja2 is a dependency
        raise ImportError("archsearch report needs Jinja2: pip install jinja2") from exc
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(count=_count, num=_num, human=human, grouped=grouped, duration=duration, pct=_pct, pct_pm=_pct_pm,
                       ms=_ms, sortkey=_sortkey)
    return env


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _count(value: Any) -> str:
    return "-" if _missing(value) else format_count(value)


def _num(value: Any, digits: int = 4) -> str:
    return "-" if _missing(value) else f"{float(value):.{digits}g}"


def _pct(value: Any) -> str:
    return "-" if _missing(value) else f"{100 * float(value):.2f}%"


def _pct_pm(mean: Any, std: Any) -> str:
    """A mean accuracy and its standard deviation over seeds, ``87.21 ± 0.35%`` (the mean alone for one seed)."""
    if _missing(mean):
        return "-"
    return f"{100 * float(mean):.2f}%" if _missing(std) else f"{100 * float(mean):.2f} ± {100 * float(std):.2f}%"


def _ms(value: Any) -> str:
    return "-" if _missing(value) else f"{float(value):.3g} ms"


def _sortkey(value: Any) -> str:
    """The ``data-sort`` value of a numeric cell (empty for a missing value, which sorts last)."""
    if isinstance(value, bool) or _missing(value):
        return "" if _missing(value) else str(int(value))
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return ""


def _diagram(units: list[Any], *, width: int = 640, height: int = 150) -> dict[str, Any]:
    """Geometry of an architecture diagram: one box per unit, box width growing with depth and
    height with the square root of the unit's width (so narrow early stages stay visible); an inner
    box for a bottleneck or a ViT block's attention width."""
    top, base, gap = 18, height - 34, 4
    widest = max(max(u.width, u.inner) for u in units) or 1
    weights = [1.0 + math.sqrt(u.depth) for u in units]
    scale = (width - gap * (len(units) - 1)) / sum(weights)
    boxes, x = [], 0.0
    for u, w in zip(units, weights):
        bw = w * scale
        h = max(4.0, (base - top) * math.sqrt(u.width / widest))
        ih = (base - top) * math.sqrt(u.inner / widest) if u.inner else 0.0
        boxes.append({"x": round(x, 1), "w": round(bw, 1), "y": round(base - h, 1), "h": round(h, 1),
                      "iy": round(base - ih, 1), "ih": round(ih, 1), "cx": round(x + bw / 2, 1), "unit": u})
        x += bw + gap
    return {"width": width, "height": height, "base": base, "boxes": boxes}


def _kind_counts(kinds: Any) -> dict[str, int]:
    """How many designs of each kind, designed/baseline/random first."""
    counts = kinds.value_counts(sort=False).to_dict()
    return {k: int(counts[k]) for k in sorted(counts, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), str(k)))}


def _candidate_views(data: ReportData) -> list[dict[str, Any]]:
    views = []
    firsts = set(data.candidates.groupby("run", sort=False).head(1).index)
    for index, row in data.candidates.iterrows():
        spec = spec_from_dict(row["spec"])
        units = arch_units(spec)
        title, columns, rows = spec.layout()
        views.append({"anchor": f"cand-{index + 1}", "row": row.to_dict(), "title": title, "columns": columns, "rows": rows,
                      "diagram": _diagram(units) if units else None, "open": index in firsts})
    return views


def _objective_references(data: ReportData, objective: str) -> Any:
    """The published models of the families whose candidates ``objective`` scored (None when there are none)."""
    families = set(data.candidates.loc[data.candidates["objective"] == objective, "family"])
    refs = data.references
    return refs[[bool(set(f.split(", ")) & families) for f in refs["families"]]] if len(refs) else None


def render_report(data: ReportData, *, title: str | None = None) -> str:
    """The report of ``data`` as one HTML document (a string)."""
    from markupsafe import Markup

    cands = data.candidates
    objectives = list(dict.fromkeys(cands["objective"]))
    references = data.references
    front_plots = []
    for objective in objectives:
        refs = _objective_references(data, objective)
        svg = plots.front_svg(cands, data.fronts, objective=objective, references=refs,
                              key=f"front-{len(front_plots) + 1}")
        hv = {COST_AXES[c]: data.fronts[(objective, c)] for c in COST_AXES if (objective, c) in data.fronts}
        front_plots.append({"objective": objective, "svg": Markup(svg), "fronts": hv})
    candidates = _candidate_views(data)
    validation = None
    if data.validation is not None:
        anchors = {(c["row"]["run"], c["row"]["name"]): c["anchor"] for c in candidates}
        groups = []
        for i, front in enumerate(data.validated, 1):
            rows = front.designs.to_dict("records")
            for r in rows:
                r["anchor"] = anchors.get((r["run"], r["name"]))
                r["seed_text"] = ", ".join(str(s) for s in r["seed_list"])
            svg = Markup(plots.validated_front_svg(front, key=f"validated-{i}"))
            groups.append({"anchor": f"validated-{i}", "label": front.label, "svg": svg,
                           "rows": rows, "references": front.references.to_dict("records"),
                           "has_latency": "latency_ms" in front.costs,
                           "kinds": ", ".join(f"{n} {k}" for k, n in _kind_counts(front.designs["kind"]).items()),
                           "several": bool((front.designs["seeds"] > 1).any())})
        validation = {
            "rows": data.validation.results.to_dict("records"),
            "groups": groups,
            "curves": Markup(plots.curves_svg(data.validation.curves)) if len(data.validation.curves) else None,
        }
    names = list(data.runs["name"])
    context = {
        "title": title or ("archsearch report: " + ", ".join(names)),
        "version": __version__,
        "runs": data.runs.to_dict("records"),
        "costs_svg": Markup(plots.costs_svg(cands, references)),
        "front_plots": front_plots,
        "sweep_svg": Markup(plots.sweep_svg(data.sweeps)) if len(data.sweeps) else None,
        "candidates": candidates,
        "has_latency": bool(cands["latency_ms"].notna().any()),
        "references": references.to_dict("records"),
        "sources": list(dict.fromkeys(references["source"])) if len(references) else [],
        "validation": validation,
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(runs: Iterable[str | Path], *, out: str | Path = "report.html", title: str | None = None,
                 storage: str | None = None) -> Path:
    """Reads runs (and their validation studies) and writes their report.

    Args:
        runs: Run directories written by ``archsearch solve --out`` (or their ``candidates.json``).
        out: The HTML file to write (its directory is created).
        title: Page title (default: the run names).
        storage: Optuna storage URL of the validation study (default: each run's ``study.db``).

    Returns:
        The path written.
    """
    from archsearch._files import atomic_write_text

    path = Path(out)
    if path.exists() and not path.is_file():
        raise SpecError(f"--out: {path} is {'a directory' if path.is_dir() else 'not a regular file'}; give the HTML "
                        "file to write, e.g. report.html")
    html = render_report(report_data(runs, storage=storage), title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, html)  # its temporary file sits beside it and goes on any failure
    return path


def write_front_png(runs: Iterable[str | Path], *, out: str | Path, objective: str | None = None, dpi: int = 144) -> Path:
    """Writes one objective's front figure, as the report draws it, to a PNG file (for a README or slides).

    Args:
        runs: Run directories written by ``archsearch solve --out``.
        out: The PNG file to write (its directory is created).
        objective: The objective whose front to draw (default: the first run's).
        dpi: Pixels an inch (the figure is :data:`archsearch.report.plots.PAGE_WIDTH` inches wide).

    Returns:
        The path written.
    """
    data = report_data(runs)
    objectives = list(dict.fromkeys(data.candidates["objective"]))
    objective = objective or objectives[0]
    if objective not in objectives:
        raise SpecError(f"objective: the runs have no candidates scored by {objective!r}; they have {', '.join(objectives)}")
    png = plots.front_png(data.candidates, data.fronts, objective=objective, references=_objective_references(data, objective),
                          dpi=dpi)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path
