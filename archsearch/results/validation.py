"""Validated candidates of a run (its Optuna study) as tables: one row per candidate, one per epoch.

Reads the study through :class:`archsearch.study.ValidationStudy`, the one owner of the storage
convention; that module needs Optuna only, never torch.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Sequence

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COMPARABLE", "Validation", "aggregate_seeds", "load_validation", "training_groups", "training_label",
           "validated_frame"]

#: Columns that must agree for two trainings' accuracies to compare: a smoke run (``max_batches``),
#: a shorter schedule or a distilled run is never ranked against a full one.
COMPARABLE = ("dataset", "recipe", "epochs", "max_batches", "distill")

_MEAN = ("top1", "top5", "test_loss", "latency_ms", "train_time_s", "images_per_s", "peak_memory_bytes")

_CURVE_KEYS = ("epoch", "train_loss", "test_loss", "top1", "top5", "lr", "time_s")
_CURVE_COLUMNS = ("run", "name", "key", "seed", "dataset", "recipe", *_CURVE_KEYS)


class Validation(NamedTuple):
    """A run's validation results.

    Attributes:
        results: One row per completed trial (``archsearch.space.records.ROW_KEYS`` plus ``run``).
        curves: One row per epoch: ``run, name, key, seed, dataset, recipe`` and the epoch's metrics.
    """

    results: "pd.DataFrame"
    curves: "pd.DataFrame"


def load_validation(source: str | Path, *, storage: str | None = None) -> Validation | None:
    """The validated candidates of a run, or None when it has no study or no completed trial.

    Args:
        source: A run directory (or its ``candidates.json``).
        storage: Optuna storage URL (default ``sqlite:///RUN_DIR/study.db``).

    Raises:
        StorageError: A study database that cannot be read (empty, damaged, of another application, a
            refused login): a report must not pass it off as "not validated".
    """
    import pandas as pd

    from archsearch.space.records import ROW_KEYS, load_run
    from archsearch.study.store import ValidationStudy, default_storage

    path = Path(source)
    run_dir = path if path.is_dir() else path.parent
    name = str(load_run(source)["name"])
    if storage is None and not (run_dir / "study.db").exists():
        return None
    url = storage or default_storage(run_dir)
    study = ValidationStudy.read(name=name, storage=url, flag="--storage" if storage else "study")  # read-only; an unreadable storage raises StorageError
    if study is None:
        return None
    trials = study.rows()
    if not trials:
        return None
    results, curves = [], []
    for t in trials:
        results.append({"run": name, **{k: t.get(k) for k in ROW_KEYS}})
        for h in t.get("history") or []:
            curves.append({"run": name, "name": t.get("name"), "key": t.get("key"), "seed": t.get("seed"),
                           "dataset": t.get("dataset"), "recipe": t.get("recipe"), **{k: h.get(k) for k in _CURVE_KEYS}})
    return Validation(pd.DataFrame(results), pd.DataFrame(curves, columns=list(_CURVE_COLUMNS)))


def _plain(value: Any) -> Any:
    """A COMPARABLE value as one canonical Python value: None for missing (None, NaN), an int for an
    integral number (``3.0`` from a column that also holds NaN is the ``3`` of another run), else as is."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # numpy scalars too
        number = float(value)
        if math.isnan(number):
            return None
        return int(number) if number.is_integer() else number
    return str(value) if isinstance(value, str) else value  # numpy's str_ as str: one key for one name


def _training_keys(frame: "pd.DataFrame", columns: Sequence[str] = COMPARABLE) -> "pd.Series":
    """One hashable key per row: its :func:`_plain` values of ``columns`` (missing columns count as None)."""
    import pandas as pd

    if not len(frame):
        return pd.Series([], dtype=object)
    values = [[_plain(v) for v in frame[c]] if c in frame else [None] * len(frame) for c in columns]
    return pd.Series([repr(t) for t in zip(*values)], index=frame.index, dtype=object)


def training_label(values: Mapping[str, Any]) -> str:
    """A comparable training in words, e.g. ``digits/quick, 2 epochs, 3 batches an epoch`` (an epoch cut to
    ``max_batches`` batches: a smoke run, or a study's fixed share of each epoch).

    Args:
        values: The :data:`COMPARABLE` columns of one row (a mapping or a DataFrame row); missing keys
            and NaN count as not set, and a part with nothing set is left out.
    """
    v = {k: _plain(values.get(k)) for k in COMPARABLE}
    parts = []
    if v["dataset"] is not None or v["recipe"] is not None:
        parts.append(f"{v['dataset'] or '-'}/{v['recipe'] or '-'}")
    if v["epochs"] is not None:
        parts.append(f"{v['epochs']} epoch{'s' if v['epochs'] != 1 else ''}")
    if v["max_batches"] is not None:
        parts.append(f"{v['max_batches']} batch{'es' if v['max_batches'] != 1 else ''} an epoch")
    if v["distill"] is not None:
        parts.append(f"distilled ({v['distill']})")
    return ", ".join(parts) or "training not recorded"


def training_groups(frame: "pd.DataFrame") -> Iterator[tuple[dict[str, Any], "pd.DataFrame"]]:
    """The rows of each comparable training (:data:`COMPARABLE`): ``(values, rows)``.

    ``values`` maps every COMPARABLE column to its value (None where not set; whole numbers as int).
    Groups come by dataset and recipe, then the most complete training first: full epochs before
    ``max_batches`` ones, more epochs first, no teacher before a teacher cache.
    """
    keys = _training_keys(frame)
    groups = []
    for _, rows in frame.groupby(keys, sort=False):
        first = rows.iloc[0]
        values = {c: _plain(first.get(c)) for c in COMPARABLE}
        groups.append((values, rows))

    def order(item: tuple[dict[str, Any], Any]) -> tuple[Any, ...]:
        v = item[0]
        return (str(v["dataset"] or ""), str(v["recipe"] or ""), v["max_batches"] is not None,
                -(v["max_batches"] or 0), -(v["epochs"] or 0), v["distill"] is not None, str(v["distill"] or ""))

    yield from sorted(groups, key=order)


def _design_ids(frame: "pd.DataFrame") -> "pd.Series":
    """A candidate's identity across seeds: ``design`` where recorded, else its name and training settings
    (rows of studies written before seeds were an axis)."""
    import pandas as pd

    fallback = frame.apply(lambda r: "|".join(str(r.get(k)) for k in ("run", "name", *COMPARABLE)), axis=1) \
        if len(frame) else pd.Series([], dtype=object)
    if "design" not in frame:
        return fallback
    return frame["design"].where(frame["design"].notna(), fallback)


def aggregate_seeds(frame: "pd.DataFrame", *, within: Sequence[str] = ()) -> "pd.DataFrame":
    """One row per design: mean over its seeds of top-1, top-5, loss, latency and speed.

    Adds ``top1_std`` and ``top5_std`` (sample standard deviation, ddof 1; NaN for one seed), ``seeds``
    (how many) and ``seed_list``; the other columns are the first seed's (they agree across seeds).
    Rows keep the order of each design's first appearance. Rows of different trainings
    (:data:`COMPARABLE`) are never one design.

    Args:
        frame: One row per training (design x seed).
        within: Columns that also tell designs apart, e.g. ``("run",)`` so that a spec validated by two
            runs stays two rows, or ``("budget", "kind")`` where ``design`` is a name unique only
            within them (the search-quality study's ``results.csv``).
    """
    import pandas as pd

    frame = frame.reset_index(drop=True).copy()
    for col in COMPARABLE + ("kind", "design", "seed", *within):
        if col not in frame:
            frame[col] = None
    frame["_design"] = _design_ids(frame).astype(str) + "\x1f" + _training_keys(frame, (*COMPARABLE, *within))
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


def validated_frame(rows: "list[dict] | pd.DataFrame", *, per_seed: bool = False,
                    within: Sequence[str] = ()) -> "pd.DataFrame":
    """Validated candidates with a ``pareto`` column, seeds aggregated (unless ``per_seed``).

    A row is Pareto-optimal when no row of the same training (:data:`COMPARABLE`) has a higher (mean)
    top-1 at no more MACs, parameters and, when every row of the group has one, latency. Sorted by
    dataset, recipe and top-1 (best first). ``within`` is :func:`aggregate_seeds`'s.
    """
    import pandas as pd

    from archsearch.results.pareto import non_dominated

    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for col in COMPARABLE:
        if col not in frame:
            frame[col] = None
    frame = frame.reset_index(drop=True) if per_seed else aggregate_seeds(frame, within=within)
    if per_seed:
        frame["seeds"] = 1
        frame["top1_std"] = float("nan")
    for col in ("top1", "latency_ms"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["pareto"] = False
    for _, group in frame.groupby(_training_keys(frame), sort=False):
        objectives = {"top1": "max", "macs": "min", "params": "min"}
        if group["latency_ms"].notna().all():
            objectives["latency_ms"] = "min"
        points = group[list(objectives)].astype(float).to_dict("records")
        frame.loc[group.index, "pareto"] = non_dominated(points, objectives)  # type: ignore[arg-type]
    return frame.sort_values(["dataset", "recipe", "top1"], ascending=[True, True, False], kind="stable").reset_index(drop=True)
