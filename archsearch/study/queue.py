"""One shared queue of proposals in an Optuna study: enqueue, claim atomically, heartbeat, finish.

Proposals are enqueued as ``WAITING`` trials (``study.enqueue_trial`` with the proposal in the
user attributes, ``key`` = :func:`~archsearch.study.store.candidate_key`). A worker claims one by
a compare-and-set ``UPDATE ... SET state = RUNNING WHERE trial_id = ? AND state = WAITING`` and
owns it only when exactly one row changed: atomic on PostgreSQL (row lock, the loser re-reads the
committed row and matches nothing) and on SQLite (the database lock serialises writers). Optuna's
own ``study.ask()`` reads the state and writes it in two statements; its ``SELECT ... FOR
UPDATE`` makes that atomic on PostgreSQL and MySQL, but SQLite ignores ``FOR UPDATE`` and
Python's sqlite3 runs the read outside the write's transaction, so two SQLite workers could both
pop the same trial; hence the conditional update here.

While a trial runs, a thread records Optuna's heartbeat. A trial whose heartbeat is older than the
grace period (its worker was killed, or lost its machine) is marked ``FAIL`` by the next worker
that looks (``optuna.storages.fail_stale_trials``) and Optuna's
``RetryHeartbeatStaleTrialCallback`` enqueues a copy with the same user attributes, so the
proposal is trained again. A trial is completed only when its key has no completed trial yet, so a
proposal is completed exactly once even when a slow worker was wrongly declared dead.
"""

from __future__ import annotations

import datetime as _dt
import threading
import warnings
from typing import TYPE_CHECKING, Any

from archsearch.errors import SpecError

if TYPE_CHECKING:
    import optuna

__all__ = ["SearchQueue", "open_storage"]

#: Study user attribute holding the search's training settings (read by every worker).
SETTINGS_ATTR = "search"


def open_storage(url: str, *, heartbeat_interval: int = 10, grace_period: int = 60, max_retry: int = 3,
                 create: bool = True) -> Any:
    """An ``optuna.storages.RDBStorage`` with heartbeats and stale-trial retries.

    Args:
        url: SQLAlchemy URL (``sqlite:///PATH``, ``postgresql+psycopg2://USER@HOST:PORT/DB``, ...).
        heartbeat_interval: Seconds between heartbeats of a running trial.
        grace_period: Seconds without a heartbeat after which a running trial is stale.
        max_retry: Times a stale trial is re-enqueued (counting retries of retries).
        create: Create Optuna's tables in an empty database (``search``); ``False`` (workers): the
            database must hold them, and no SQLite file is created.

    Raises:
        SpecError: Bad intervals.
        StorageError: An unknown database, a missing driver, a refused connection or login, a file that
            is not an Optuna database (see :func:`archsearch.study.storage.open_rdb`).
    """
    import optuna

    from archsearch.study.storage import open_rdb

    if not isinstance(heartbeat_interval, int) or heartbeat_interval < 1:
        raise SpecError(f"--heartbeat: expected an integer number of seconds >= 1, got {heartbeat_interval!r}")
    if not isinstance(grace_period, int) or grace_period <= heartbeat_interval:
        raise SpecError(f"--grace-period: expected an integer number of seconds > the heartbeat interval "
                        f"({heartbeat_interval}), got {grace_period!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    return open_rdb(url, create=create, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                    heartbeat_stale_trial_callback=retry)


class _Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.stop_event = threading.Event()
        storage.record_heartbeat(trial_id)  # before the claim returns: a worker killed right after is seen as stale
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{trial_id}")
        self.thread.start()

    def _run(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while not self.stop_event.wait(interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient database error: the next beat tries again
                pass

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join()


class SearchQueue:
    """The proposals of one search study, as a queue of trials any number of workers share.

    Args:
        name: Study name.
        storage: An :func:`open_storage` result.
        create: Create the study when missing (``search``); workers open an existing one.

    Raises:
        SpecError: ``create=False`` and no such study in the storage.
    """

    def __init__(self, *, name: str, storage: Any, create: bool = False) -> None:
        import optuna

        from archsearch.study.storage import mask_url, storage_errors

        self.name, self.storage = name, storage
        try:
            with storage_errors(storage.url):
                if create:
                    self.study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                                     load_if_exists=True)
                else:
                    self.study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            with storage_errors(storage.url):
                names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            raise SpecError(f"--study: no study {name!r} in {mask_url(storage.url)}; studies there: {names}") from None
        self._beats: dict[int, _Heartbeat] = {}

    # -- the search side ---------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """The training settings every worker uses (dataset, recipe, seed, ...)."""
        value = self.study.user_attrs.get(SETTINGS_ATTR)
        if not isinstance(value, dict):
            raise SpecError(f"--study {self.name}: not a search study (no {SETTINGS_ATTR!r} settings); "
                            "create it with `archsearch search`")
        return value

    def set_settings(self, settings: dict[str, Any]) -> None:
        self.study.set_user_attr(SETTINGS_ATTR, settings)

    def trials(self, *states: Any) -> list["optuna.trial.FrozenTrial"]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def enqueue(self, proposals: list[dict[str, Any]]) -> int:
        """Enqueues the proposals whose key has no trial yet, or only failed ones; returns how many.

        Each proposal is a dict of user attributes with at least ``key``.
        """
        from optuna.trial import TrialState

        live = {t.user_attrs.get("key") for t in self.trials() if t.state not in (TrialState.FAIL, TrialState.PRUNED)}
        added = 0
        for attrs in proposals:
            if attrs["key"] in live:
                continue
            self.study.enqueue_trial({}, user_attrs=attrs)
            live.add(attrs["key"])
            added += 1
        return added

    def counts(self) -> dict[str, int]:
        """Proposals by state: ``done`` (a completed trial), ``running``, ``waiting``, ``failed`` (no
        trial left but failed ones), and ``total``."""
        from optuna.trial import TrialState

        by_key: dict[str, set[Any]] = {}
        for t in self.trials():
            if "key" in t.user_attrs:
                by_key.setdefault(t.user_attrs["key"], set()).add(t.state)
        out = {"done": 0, "running": 0, "waiting": 0, "failed": 0, "total": len(by_key)}
        for states in by_key.values():
            if TrialState.COMPLETE in states:
                out["done"] += 1
            elif TrialState.RUNNING in states:
                out["running"] += 1
            elif TrialState.WAITING in states:
                out["waiting"] += 1
            else:
                out["failed"] += 1
        return out

    # -- the worker side ---------------------------------------------------------------------
    def fail_stale(self) -> None:
        """Marks trials whose worker stopped beating ``FAIL`` and re-enqueues them (Optuna's callback)."""
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def _claim(self, trial_id: int) -> bool:
        import sqlalchemy as sa
        from optuna.storages._rdb import models
        from optuna.trial import TrialState

        table = models.TrialModel.__table__
        session = self.storage.scoped_session()
        try:
            result = session.execute(sa.update(table)
                                     .where(table.c.trial_id == trial_id, table.c.state == TrialState.WAITING)
                                     .values(state=TrialState.RUNNING))
            won = result.rowcount == 1
            if won:  # through the model, which knows how this Optuna version stores times
                session.get(models.TrialModel, trial_id).datetime_start = _dt.datetime.now()
                # the first heartbeat in the claim's own transaction: a worker killed between the claim and
                # its heartbeat thread would leave a RUNNING trial without a heartbeat, which is never stale
                if models.TrialHeartbeatModel.where_trial_id(trial_id, session) is None:
                    session.add(models.TrialHeartbeatModel(trial_id=trial_id))
            session.commit()
            return won
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def claim(self, worker: str) -> "optuna.trial.Trial | None":
        """Takes the oldest waiting trial (atomically) and starts its heartbeat; ``None`` when none waits."""
        import optuna
        from optuna.trial import TrialState

        for frozen in sorted(self.trials(TrialState.WAITING), key=lambda t: t.number):
            if not self._claim(frozen._trial_id):
                continue  # another worker was faster
            self._beats[frozen._trial_id] = _Heartbeat(self.storage, frozen._trial_id)
            trial = optuna.trial.Trial(self.study, frozen._trial_id)
            trial.set_user_attr("worker", worker)
            return trial
        return None

    def _release(self, trial: "optuna.trial.Trial") -> None:
        beat = self._beats.pop(trial._trial_id, None)
        if beat is not None:
            beat.stop()

    def completed_by(self, key: str) -> "optuna.trial.FrozenTrial | None":
        from optuna.trial import TrialState

        return next((t for t in self.trials(TrialState.COMPLETE) if t.user_attrs.get("key") == key), None)

    def finish(self, trial: "optuna.trial.Trial", metrics: dict[str, Any]) -> bool:
        """Completes the trial with value ``metrics["top1"]`` and the metrics as attributes.

        Returns ``False`` (and prunes the trial, noting ``duplicate_of``) when its key was completed
        meanwhile by another trial, or when it was declared stale and so is no longer ``RUNNING``.
        """
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            for name, value in metrics.items():
                trial.set_user_attr(name, value)
            other = self.completed_by(trial.user_attrs["key"])
            if other is not None:
                trial.set_user_attr("duplicate_of", other.number)
                self.study.tell(trial, state=TrialState.PRUNED)
                return False
            self.study.tell(trial, metrics["top1"])
            return True
        except UpdateFinishedTrialError:  # declared stale while it ran: its retry owns the proposal now
            return False
        finally:
            self._release(trial)

    def fail(self, trial: "optuna.trial.Trial", error: str) -> None:
        """Marks the trial failed with ``error`` (no retry: a training error repeats)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            trial.set_user_attr("error", error)
            self.study.tell(trial, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass
        finally:
            self._release(trial)

    def requeue(self, trial: "optuna.trial.Trial", reason: str) -> None:
        """Gives an unfinished trial back (Ctrl-C): marks it failed with ``reason`` and enqueues a copy,
        which resumes from the proposal's epoch checkpoint wherever that is readable."""
        attrs = {k: v for k, v in trial.user_attrs.items() if k != "worker"}
        self.fail(trial, reason)
        self.enqueue([attrs])  # unless a retry already waits
