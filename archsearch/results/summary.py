"""Everything a report shows, computed as plain data: runs, candidates with front ranks, 2-D fronts,
published references and validation results (``archsearch.report`` renders it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from archsearch.results.pareto import Direction, Front2D, front_2d, non_dominated
from archsearch.results.references import reference_frame
from archsearch.results.runs import candidate_frame, load_run
from archsearch.results.validation import Validation, load_validation

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COST_AXES", "ReportData", "report_data", "run_frame"]

#: Costs a front is drawn against: column -> axis label.
COST_AXES = {"macs": "MACs (whole model)", "params": "parameters (whole model)", "latency_ms": "latency (ms)"}


class ReportData(NamedTuple):
    """The data of one report.

    Attributes:
        runs: One row per run (:func:`run_frame`).
        candidates: One row per candidate (:func:`archsearch.results.candidate_frame`).
        fronts: (objective, cost column) -> the 2-D front of score vs that cost over the objective's
            candidates (costs without values, e.g. latency without a latency model, are left out).
        references: Published models relevant to the runs' families.
        validation: Results (with a ``pareto`` column: top-1 against MACs, params and, when every
            row has one, latency, within each dataset and recipe) and training curves of every run
            with a study, concatenated (None when no run has one).
        accuracy_fronts: (dataset, recipe, cost column) -> the 2-D front of top-1 vs that cost.
        sweeps: One row per budget of every ``--sweep`` run (run, budget_* columns, status, score,
            macs, params, bound, gap); empty when there is none.
    """

    runs: "pd.DataFrame"
    candidates: "pd.DataFrame"
    fronts: dict[tuple[str, str], Front2D]
    references: "pd.DataFrame"
    validation: Validation | None
    accuracy_fronts: dict[tuple[str, str, str], Front2D]
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
            "command": str(prov.get("command", "")), "versions": dict(prov.get("versions") or {}),
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
    accuracy_fronts: dict[tuple[str, ...], Front2D] = {}
    if found:
        results = pd.concat([v.results for v in found], ignore_index=True)
        curves = pd.concat([v.curves for v in found], ignore_index=True)
        for col in ("top1", "top5", "macs", "params", "latency_ms"):
            results[col] = pd.to_numeric(results[col], errors="coerce").astype(float)
        results["pareto"] = False
        for _, group in results.groupby(["dataset", "recipe"], sort=False, dropna=False):
            objectives: dict[str, Direction] = {"top1": "max", "macs": "min", "params": "min"}
            if group["latency_ms"].notna().all():
                objectives["latency_ms"] = "min"
            results.loc[group.index, "pareto"] = non_dominated(group[list(objectives)].to_dict("records"), objectives)
        validation = Validation(results, curves)
        accuracy_fronts = _fronts(results, ["dataset", "recipe"], "top1")
    return ReportData(runs, candidates, fronts, references, validation, accuracy_fronts, _sweeps(paths))  # type: ignore[arg-type]
