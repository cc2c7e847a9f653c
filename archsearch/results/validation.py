"""Validated candidates of a run (its Optuna study) as tables: one row per candidate, one per epoch.

Reads the study through :class:`archsearch.study.ValidationStudy`, the one owner of the storage
convention; that module needs Optuna only, never torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Validation", "load_validation"]

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
