"""Everything a report shows, computed as plain data: runs, candidates with front ranks, 2-D fronts,
published references, validation results and the validated front of every comparable training
(``archsearch.report`` renders it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from archsearch.results.pareto import Front2D, front_2d
from archsearch.results.references import reference_frame
from archsearch.results.runs import candidate_frame, load_run
from archsearch.results.validation import (
    COMPARABLE, Validation, load_validation, training_groups, training_label, validated_frame,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COST_AXES", "DESIGN_COLUMNS", "KINDS", "REFERENCE_DATASETS", "ReportData", "ValidatedFront", "report_data",
           "run_frame", "validated_fronts"]

#: Costs a front is drawn against: column -> axis label.
COST_AXES = {"macs": "MACs (whole model)", "params": "parameters (whole model)", "latency_ms": "latency (ms)"}

#: What produces a validated design, in the order reports show them: a solve, ``archsearch baseline``,
#: ``archsearch sample``. Rows of studies written before kinds were recorded count as ``designed``.
KINDS = ("designed", "baseline", "random")

#: Dataset names whose top-1 the published figures of :mod:`archsearch.results.references` are (every
#: one is ImageNet-1k): only a training on one of these gets the published models on its front.
REFERENCE_DATASETS = frozenset({"imagenet", "imagenet-1k", "imagenet1k", "in1k"})

#: Columns of :attr:`ValidatedFront.designs`, in this order (more may follow).
DESIGN_COLUMNS = ("run", "name", "family", "kind", "seeds", "seed_list", "top1", "top1_std", "top5", "macs", "params",
                  "score", "latency_ms", "train_time_s", "pareto", *COMPARABLE, "design")


class ValidatedFront(NamedTuple):
    """Trained accuracy against cost for one comparable training (:data:`COMPARABLE`).

    Attributes:
        training: The training's :data:`COMPARABLE` values (None where not set).
        label: The training in words (:func:`archsearch.results.training_label`).
        designs: One row per design (seeds aggregated: ``top1`` the mean, ``top1_std`` the sample std,
            NaN for one seed; ``seeds`` how many), columns :data:`DESIGN_COLUMNS`, best top-1 first.
            ``pareto``: no design of this training has a higher mean top-1 at no more MACs, parameters
            and (when every design has one) latency.
        costs: The cost columns drawn: MACs, params, and latency when every design has one.
        fronts: Cost column -> the 2-D front of mean top-1 against that cost (indices into ``designs``).
        references: Published models of the designs' families with a top-1 on this training's dataset
            (``name, macs, params, top1, counts, source``; top-1 as a fraction like the designs'),
            within a factor 2 of the designs' MACs and params; usually empty (the published figures are
            ImageNet's).
    """

    training: dict[str, Any]
    label: str
    designs: "pd.DataFrame"
    costs: tuple[str, ...]
    fronts: dict[str, Front2D]
    references: "pd.DataFrame"


class ReportData(NamedTuple):
    """The data of one report.

    Attributes:
        runs: One row per run (:func:`run_frame`).
        candidates: One row per candidate (:func:`archsearch.results.candidate_frame`).
        fronts: (objective, cost column) -> the 2-D front of score vs that cost over the objective's
            candidates (costs without values, e.g. latency without a latency model, are left out).
        references: Published models relevant to the runs' families.
        validation: Results (one row per training, i.e. design x seed; ``kind`` ``designed`` where the
            study did not record one) and training curves of every run with a study, concatenated
            (None when no run has one).
        validated: The validated front of every comparable training, seeds aggregated
            (:func:`validated_fronts`; empty when no run has a study).
        sweeps: One row per budget of every ``--sweep`` run (run, budget_* columns, status, score,
            macs, params, bound, gap); empty when there is none.
    """

    runs: "pd.DataFrame"
    candidates: "pd.DataFrame"
    fronts: dict[tuple[str, str], Front2D]
    references: "pd.DataFrame"
    validation: Validation | None
    validated: list[ValidatedFront]
    sweeps: "pd.DataFrame"


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def run_frame(paths: Iterable[str | Path]) -> "pd.DataFrame":
    """One row per run: name, path, space, status, budget, bound, gap, times, solver and provenance.

    Columns: ``name, path, space, status, budget, bound, gap, time_s, wall_time_s, solver, nodes,
    seed, created, command, versions`` (``versions`` a dict, ``budget`` the ``--budget`` text),
    ``candidates`` (their number) and ``sweep`` (budgets solved, 0 for a single solve).
    """
    import pandas as pd

    from archsearch.space.budget import Budget
    from archsearch.study.storage import mask_text

    rows = []
    for path in paths:
        data = load_run(path)
        prov = data.get("provenance") or {}
        p = Path(path)
        budget = data.get("budget") or {}
        try:
            budget_text = Budget.from_dict(budget).to_text()
        except Exception:  # a hand-written file: show what it holds
            budget_text = ", ".join(f"{k}={v}" for k, v in budget.items() if v is not None)
        rows.append({
            "name": str(data["name"]), "path": str(p if p.is_dir() else p.parent), "space": str(data.get("space", "")),
            "status": str(data.get("status", "")), "budget": budget_text, "bound": _finite(data.get("bound")),
            "gap": _finite(data.get("gap")), "time_s": _finite(data.get("time_s")),
            "wall_time_s": _finite(prov.get("wall_time_s")), "solver": str(prov.get("solver", "")),
            "nodes": prov.get("nodes"), "seed": prov.get("seed"), "created": str(prov.get("created", "")),
            # masked again: a run written before passwords were masked must not put one in a report
            "command": mask_text(str(prov.get("command", ""))), "versions": dict(prov.get("versions") or {}),
            "candidates": len(data["candidates"]), "sweep": len(data.get("front") or []),
        })
    return pd.DataFrame(rows)


def _sweeps(paths: list[str | Path]) -> "pd.DataFrame":
    import pandas as pd

    rows = []
    for path in paths:
        data = load_run(path)
        for row in data.get("front") or []:
            rows.append({"run": str(data["name"]), **{f"budget_{k}": v for k, v in (row.get("budget") or {}).items()},
                         **{k: row.get(k) for k in ("status", "score", "macs", "params", "bound", "gap")}})
    return pd.DataFrame(rows)


def _fronts(frame: "pd.DataFrame", groups: list[str], y: str) -> dict[tuple[str, ...], Front2D]:
    fronts = {}
    for key, group in frame.groupby(groups, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for cost in COST_AXES:
            if cost not in group or group[cost].isna().any():
                continue
            pts = group[[cost, y]].astype(float).to_dict("records")
            front = front_2d(pts, x=cost, y=y)
            # indices back to the frame's rows
            fronts[(*[str(k) for k in key], cost)] = front._replace(index=[int(group.index[i]) for i in front.index])
    return fronts


def _group_references(references: "pd.DataFrame | None", designs: "pd.DataFrame", dataset: Any) -> "pd.DataFrame":
    """The published models that belong on a training's front: of the designs' families, with a top-1
    on its dataset, and within a factor 2 of the designs' MACs and params (farther ones would squash
    the designs into a corner)."""
    import pandas as pd

    columns = ["name", "macs", "params", "top1", "counts", "source"]
    if references is None or not len(references) or str(dataset).lower() not in REFERENCE_DATASETS:
        return pd.DataFrame(columns=columns)
    families = set(designs["family"].dropna().astype(str)) if "family" in designs else set()
    keep = []
    for ref in references.to_dict("records"):
        if families and not set(str(ref.get("families", "")).split(", ")) & families:
            continue
        if str(ref.get("dataset", "imagenet")).lower() not in REFERENCE_DATASETS:  # a figure on another dataset
            continue
        if all(designs[c].min() / 2 <= ref[c] <= 2 * designs[c].max() for c in ("macs", "params")):
            keep.append({**{c: ref.get(c) for c in columns}, "top1": float(ref["top1"]) / 100})
    return pd.DataFrame(keep, columns=columns)


def validated_fronts(results: "pd.DataFrame", *, references: "pd.DataFrame | None" = None) -> list[ValidatedFront]:
    """The validated front of every comparable training in ``results``.

    Seeds are aggregated per design and run (:func:`archsearch.results.validated_frame` with
    ``within=("run",)``: the same spec validated by two runs stays two rows, each with its kind); a
    training never shares a front with another (a smoke run with a full one, 1 epoch with 30).

    Args:
        results: One row per training (design x seed), e.g. :attr:`Validation.results`; needs
            ``top1, macs, params``; ``kind``, ``seed``, ``design`` and the :data:`COMPARABLE` columns
            are optional (old studies: ``designed``, one seed each).
        references: Published models (:func:`archsearch.results.reference_frame`); only those with a
            top-1 on a training's dataset are kept (see :attr:`ValidatedFront.references`).

    Returns:
        One :class:`ValidatedFront` per training, by dataset and recipe, the most complete training first.
    """
    import pandas as pd

    if not len(results):
        return []
    frame = results.copy()
    for col in ("run", "name", "family", "latency_ms", "top5", "score", "train_time_s"):
        if col not in frame:
            frame[col] = None
    frame["kind"] = frame["kind"].where(frame["kind"].notna(), "designed") if "kind" in frame else "designed"
    designs = validated_frame(frame, within=("run",))
    for col in ("macs", "params", "score"):
        designs[col] = pd.to_numeric(designs[col], errors="coerce").astype(float)
    designs["seeds"] = designs["seeds"].astype(int)
    ordered = [*DESIGN_COLUMNS, *[c for c in designs.columns if c not in DESIGN_COLUMNS]]
    fronts = []
    for training, rows in training_groups(designs[ordered]):
        rows = rows.sort_values("top1", ascending=False, kind="stable").reset_index(drop=True)
        costs = tuple(c for c in COST_AXES if rows[c].notna().all())
        points = rows[["top1", *costs]].astype(float).to_dict("records")
        front = {c: front_2d(points, x=c, y="top1") for c in costs}
        refs = _group_references(references, rows, training["dataset"])
        fronts.append(ValidatedFront(training, training_label(training), rows, costs, front, refs))
    return fronts


def report_data(paths: Iterable[str | Path], *, storage: str | None = None) -> ReportData:
    """Reads runs (and their studies) and computes everything a report shows.

    Args:
        paths: Run directories written by ``archsearch solve --out`` (or their ``candidates.json``).
        storage: Optuna storage URL of the validation study (default: each run's ``study.db``).

    Raises:
        SpecError: A path that is not a run, or no candidates at all.
    """
    import pandas as pd

    paths = list(paths)
    runs = run_frame(paths)
    candidates = candidate_frame(paths)
    fronts = _fronts(candidates, ["objective"], "score")
    references = reference_frame(families=set(candidates["family"]))
    found = [v for v in (load_validation(p, storage=storage) for p in paths) if v is not None]
    validation = None
    validated: list[ValidatedFront] = []
    if found:
        results = pd.concat([v.results for v in found], ignore_index=True)
        curves = pd.concat([v.curves for v in found], ignore_index=True)
        for col in ("top1", "top5", "macs", "params", "latency_ms"):
            results[col] = pd.to_numeric(results[col], errors="coerce").astype(float)
        results["kind"] = results["kind"].where(results["kind"].notna(), "designed") if "kind" in results else "designed"
        validation = Validation(results, curves)
        validated = validated_fronts(results, references=references)
    return ReportData(runs, candidates, fronts, references, validation, validated, _sweeps(paths))  # type: ignore[arg-type]
