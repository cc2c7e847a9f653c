"""Validated candidates of a run (its Optuna study) as tables: one row per candidate, one per epoch.

Reads the study through :class:`archsearch.study.ValidationStudy`, the one owner of the storage
convention; that module needs Optuna only, never torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COMPARABLE", "Validation", "aggregate_seeds", "load_validation", "validated_frame"]

#: Columns that must agree for two trainings' accuracies to compare: a smoke run (``max_batches``),
#: a shorter schedule or a distilled run is never ranked against a full one.
COMPARABLE = ("dataset", "recipe", "epochs", "max_batches", "distill")

_MEAN = ("top1", "top5", "test_loss", "latency_ms", "train_time_s", "images_per_s", "peak_memory_bytes")

_CURVE_KEYS = ("epoch", "train_loss", "test_loss", "top1", "top5", "lr", "time_s")


class Validation(NamedTuple):
    """A run's validation results.

    Attributes:
        results: One row per completed trial (``archsearch.study.ROW_KEYS`` plus ``run``).
        curves: One row per epoch: ``run, name, key, dataset, recipe`` and the epoch's metrics.
    """

    results: "pd.DataFrame"
    curves: "pd.DataFrame"


def load_validation(source: str | Path, *, storage: str | None = None) -> Validation | None:
    """The validated candidates of a run, or None when it has no study or no completed trial.

    Args:
        source: A run directory (or its ``candidates.json``).
        storage: Optuna storage URL (default ``sqlite:///RUN_DIR/study.db``).
    """
    import pandas as pd

    from archsearch.results.runs import load_run
    from archsearch.study.store import ValidationStudy, default_storage
    from archsearch.study.validate import ROW_KEYS

    path = Path(source)
    run_dir = path if path.is_dir() else path.parent
    name = str(load_run(source)["name"])
    if storage is None and not (run_dir / "study.db").is_file():
        return None
    url = storage or default_storage(run_dir)
    if not ValidationStudy.exists(name=name, storage=url):
        return None
    trials = ValidationStudy(name=name, storage=url, create=False).rows()
    if not trials:
        return None
    results, curves = [], []
    for t in trials:
        results.append({"run": name, **{k: t.get(k) for k in ROW_KEYS}})
        for h in t.get("history") or []:
            curves.append({"run": name, "name": t.get("name"), "key": t.get("key"), "dataset": t.get("dataset"),
                           "recipe": t.get("recipe"), **{k: h.get(k) for k in _CURVE_KEYS}})
    return Validation(pd.DataFrame(results), pd.DataFrame(curves, columns=["run", "name", "key", "dataset", "recipe",
                                                                           *_CURVE_KEYS]))


def _design_ids(frame: "pd.DataFrame") -> "pd.Series":
    """A candidate's identity across seeds: ``design`` where recorded, else its name and training settings
    (rows of studies written before seeds were an axis)."""
    import pandas as pd

    fallback = frame.apply(lambda r: "|".join(str(r.get(k)) for k in ("run", "name", *COMPARABLE)), axis=1) \
        if len(frame) else pd.Series([], dtype=object)
    if "design" not in frame:
        return fallback
    return frame["design"].where(frame["design"].notna(), fallback)


def aggregate_seeds(frame: "pd.DataFrame") -> "pd.DataFrame":
    """One row per design: mean over its seeds of top-1, top-5, loss, latency and speed.

    Adds ``top1_std`` and ``top5_std`` (sample standard deviation, ddof 1; NaN for one seed), ``seeds``
    (how many) and ``seed_list``; the other columns are the first seed's (they agree across seeds).
    Rows keep the order of each design's first appearance.
    """
    import pandas as pd

    frame = frame.reset_index(drop=True).copy()
    for col in COMPARABLE + ("kind", "design", "seed"):
        if col not in frame:
            frame[col] = None
    frame["_design"] = _design_ids(frame)
    for col in _MEAN:
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    rows = []
    for _, group in frame.groupby("_design", sort=False, dropna=False):
        row = group.iloc[0].to_dict()
        for col in _MEAN:
            if col in group:
                row[col] = float(group[col].mean())
        row["top1_std"] = float(group["top1"].std(ddof=1)) if len(group) > 1 else float("nan")
        row["top5_std"] = float(group["top5"].std(ddof=1)) if len(group) > 1 and "top5" in group else float("nan")
        seeds = sorted(int(s) for s in group["seed"].dropna())
        row["seeds"] = len(group)
        row["seed_list"] = seeds
        row.pop("_design", None)
        rows.append(row)
    return pd.DataFrame(rows)


def validated_frame(rows: "list[dict] | pd.DataFrame", *, per_seed: bool = False) -> "pd.DataFrame":
    """Validated candidates with a ``pareto`` column, seeds aggregated (unless ``per_seed``).

    A row is Pareto-optimal when no row of the same training (:data:`COMPARABLE`) has a higher (mean)
    top-1 at no more MACs, parameters and, when every row of the group has one, latency. Sorted by
    dataset, recipe and top-1 (best first).
    """
    import pandas as pd

    from archsearch.results.pareto import non_dominated

    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for col in COMPARABLE:
        if col not in frame:
            frame[col] = None
    frame = frame.reset_index(drop=True) if per_seed else aggregate_seeds(frame)
    if per_seed:
        frame["seeds"] = 1
        frame["top1_std"] = float("nan")
    for col in ("top1", "latency_ms"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["pareto"] = False
    keys = frame[list(COMPARABLE)].astype(str)
    for _, group in frame.groupby([keys[c] for c in COMPARABLE], sort=False, dropna=False):
        objectives = {"top1": "max", "macs": "min", "params": "min"}
        if group["latency_ms"].notna().all():
            objectives["latency_ms"] = "min"
        points = group[list(objectives)].astype(float).to_dict("records")
        frame.loc[group.index, "pareto"] = non_dominated(points, objectives)  # type: ignore[arg-type]
    return frame.sort_values(["dataset", "recipe", "top1"], ascending=[True, True, False], kind="stable").reset_index(drop=True)
