"""Validated candidates as trials of an Optuna study.

One study per run (named after it), by default in ``RUN_DIR/study.db`` (SQLite); any Optuna storage
URL works. A trial's value is the final test top-1; its user attributes hold the spec, recipe,
dataset, seed, costs and every measured metric. Trials are matched by :func:`candidate_key`, so a
candidate already trained the same way is never trained again, and a trial left ``RUNNING`` by an
interrupted run is taken up again (its training resumes from the epoch checkpoint).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = ["ValidationStudy", "candidate_key", "default_storage"]


def candidate_key(spec: dict[str, Any], recipe: dict[str, Any], dataset: str, seed: int, distill: str | None = None,
                  max_batches: int | None = None) -> str:
    """A stable 16-hex-digit hash of what determines a training run's result.

    That is the spec (its resolution included), the recipe (its epochs included), the dataset, the
    seed, for a distilled run the teacher cache's id, and for a smoke run its ``max_batches`` (so a
    run cut to a few batches per epoch is never served as the full one). The last two enter only
    when set, so the keys of full, undistilled runs are those of earlier versions. How often the test
    split is evaluated does not enter: it changes no result (see :func:`archsearch.train.train`).
    """
    what: dict[str, Any] = {"spec": spec, "recipe": recipe, "dataset": dataset, "seed": seed}
    if distill is not None:
        what["distill"] = distill
    if max_batches is not None:
        what["max_batches"] = int(max_batches)
    blob = json.dumps(what, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_storage(run_dir: str | Path) -> str:
    """``sqlite:///RUN_DIR/study.db`` (absolute path)."""
    return f"sqlite:///{Path(run_dir).resolve() / 'study.db'}"


class ValidationStudy:
    """The Optuna study holding a run's validated candidates.

    Args:
        name: Study name (the run's name).
        storage: Optuna storage URL.
        create: Create the study when missing (else a missing study raises ``KeyError``).
        readonly: Open the storage for reading only (``results``, ``report``, ``pareto``): nothing is
            created or migrated, an SQLite file is opened in read-only mode (implies ``create=False``).
        flag: What errors call the storage (``--storage``, or ``study`` for a run's own ``study.db``).

    Raises:
        StorageError: A storage that cannot be used (see :func:`archsearch.study.storage.open_rdb`).
    """

    def __init__(self, *, name: str, storage: str, create: bool = True, readonly: bool = False,
                 flag: str = "--storage") -> None:
        import optuna

        from archsearch.study.storage import open_rdb, storage_errors

        create = create and not readonly
        self.name, self.storage = name, storage
        rdb = open_rdb(storage, readonly=readonly, create=create, flag=flag)
        with storage_errors(storage, flag=flag):
            if create:
                self.study = optuna.create_study(study_name=name, storage=rdb, direction="maximize", load_if_exists=True)
            else:
                self.study = optuna.load_study(study_name=name, storage=rdb)

    @classmethod
    def read(cls, *, name: str, storage: str, flag: str = "--storage") -> "ValidationStudy | None":
        """The study opened read-only, or None when the storage holds no study of that name.

        Raises:
            StorageError: A storage that cannot be read: no such database, a file that is not an Optuna
                database, a refused connection or login (never taken for "no study").
        """
        try:
            return cls(name=name, storage=storage, readonly=True, flag=flag)
        except KeyError:
            return None

    @staticmethod
    def exists(*, name: str, storage: str) -> bool:
        """Whether the storage holds the study (read-only; an unusable storage raises ``StorageError``)."""
        return ValidationStudy.read(name=name, storage=storage) is not None

    def _trials(self, *states: Any) -> list["optuna.trial.FrozenTrial"]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def finished(self) -> dict[str, "optuna.trial.FrozenTrial"]:
        """Completed trials by candidate key (the latest one when a key was completed twice)."""
        from optuna.trial import TrialState

        return {t.user_attrs["key"]: t for t in self._trials(TrialState.COMPLETE) if "key" in t.user_attrs}

    def start(self, key: str, attrs: dict[str, Any]) -> "optuna.trial.Trial":
        """The trial of ``key``: a ``RUNNING`` one left by an interrupted run, else a new one."""
        import optuna
        from optuna.trial import TrialState

        running = [t for t in self._trials(TrialState.RUNNING) if t.user_attrs.get("key") == key]
        trial = optuna.trial.Trial(self.study, running[-1]._trial_id) if running else self.study.ask()
        trial.set_user_attr("key", key)
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        return trial

    @staticmethod
    def report(trial: "optuna.trial.Trial", epoch: int, top1: float, history: list[dict[str, Any]]) -> None:
        """Records an epoch: top-1 as the intermediate value (when the epoch was evaluated), the curve so
        far as an attribute."""
        if top1 == top1:  # not NaN
            trial.report(top1, epoch)
        trial.set_user_attr("history", history)

    def finish(self, trial: "optuna.trial.Trial", metrics: dict[str, Any]) -> "optuna.trial.FrozenTrial":
        """Completes the trial with value ``metrics["top1"]`` and every metric as an attribute."""
        for name, value in metrics.items():
            trial.set_user_attr(name, value)
        return self.study.tell(trial, metrics["top1"])

    def fail(self, trial: "optuna.trial.Trial", error: str) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("error", error)
        self.study.tell(trial, state=TrialState.FAIL)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per completed trial: its user attributes plus ``trial`` (number) and ``value``."""
        from optuna.trial import TrialState

        return [{"trial": t.number, "value": t.value, **t.user_attrs} for t in self._trials(TrialState.COMPLETE)]
