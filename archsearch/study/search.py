"""A search: proposals around a program's optimum, enqueued in an Optuna study, trained by workers.

The library call behind ``archsearch search``. The run directory receives ``candidates.json``
(the solve result, the proposals and the search's settings), the study (``study.db`` unless
another storage is given) and the epoch checkpoints. Re-running the same search resumes: the
proposals are read back from ``candidates.json`` instead of being solved again (a time-limited
solve need not return the same designs twice), proposals that already have a trial are not
enqueued again, completed trials are not trained again.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Callable

from archsearch._files import atomic_write_text
from archsearch.errors import ArchsearchError, SpecError
from archsearch.space.budget import Budget
from archsearch.study.proposals import propose
from archsearch.study.queue import SearchQueue, open_storage
from archsearch.study.storage import check_storage
from archsearch.study.store import candidate_key, default_storage

__all__ = ["SearchPlan", "plan_search"]

#: Settings that change what a trial trains: a study holds trials of one setting only.
_TRAINING = ("dataset", "recipe", "recipe_params", "seed", "max_batches", "latency", "amp")


class SearchPlan:
    """A search's run directory, storage, study and proposals, ready for workers.

    Attributes:
        run_dir: The run directory.
        storage: The storage URL.
        study: The study name.
        proposals: Trial attributes of every proposal (``key``, ``spec``, ``origin``, ...).
        enqueued: Proposals enqueued by this call (0 when resuming a fully enqueued search).
        resumed: Whether the proposals were read back from an earlier run of the same search.
    """

    def __init__(self, *, run_dir: Path, storage: str, study: str, proposals: list[dict[str, Any]],
                 enqueued: int, resumed: bool) -> None:
        self.run_dir, self.storage, self.study = run_dir, storage, study
        self.proposals, self.enqueued, self.resumed = proposals, enqueued, resumed


def _recipe(recipe: str, epochs: int | None) -> Any:
    from archsearch.train.recipes import get_recipe

    rec = get_recipe(recipe)
    return rec.for_epochs(epochs) if epochs is not None else rec


def plan_search(
    *,
    space: Any,
    budget: Budget,
    solve: Callable[[Budget, int], Any],
    trials: int,
    run_dir: str | Path,
    name: str,
    storage: str | None = None,
    study: str | None = None,
    top_k: int = 3,
    sweep_points: int = 2,
    dataset: str = "digits",
    recipe: str = "quick",
    epochs: int | None = None,
    seed: int = 0,
    max_batches: int | None = None,
    latency: bool = True,
    amp: str = "auto",
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    provenance: dict[str, Any] | None = None,
    on_solve: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> SearchPlan:
    """Solves (or reads back) the proposals of a search and enqueues them in its study.

    Args:
        space: The search space.
        budget: The budget.
        solve: ``solve(budget, top_k) -> SolveResult`` with the space's program and options.
        trials: Proposals to train.
        run_dir: Run directory (created).
        name: Run name (the study's name unless ``study`` is given; ``candidates.json`` records the
            study's name so that ``archsearch results RUN_DIR`` finds it).
        storage: Optuna storage URL (default ``sqlite:///RUN_DIR/study.db``).
        study: Study name (default ``name``).
        top_k, sweep_points: See :func:`~archsearch.study.proposals.propose`.
        dataset, recipe, epochs, seed, max_batches, latency, amp: How every proposal trains.
        heartbeat_interval, grace_period: Heartbeat settings of this process's storage.
        provenance: Recorded in ``candidates.json`` (command, versions, ...).
        on_solve: Progress messages of the solves.
        overwrite: Replace the ``candidates.json`` of another run or search in ``run_dir`` (else an error).

    Raises:
        SpecError: Bad options, an infeasible budget, a study created with other training settings, or
            ``run_dir`` holding another run (without ``overwrite``).
        StorageError: A storage that cannot be used (checked before anything is solved).
    """
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise SpecError(f"--max-batches: expected an integer >= 1, got {max_batches!r}")
    rec = _recipe(recipe, epochs)
    out = Path(run_dir)
    url = storage or default_storage(out)
    check_storage(url, create=True, connect=True)  # a bad URL, file or login fails before the solves
    study_name = study or name
    search = {"space": space.name, "budget": budget.to_dict(), "trials": trials, "top_k": top_k,
              "sweep_points": sweep_points, "seed": seed}
    record = _read_record(out)
    resumed = record is not None and record.get("search") == search
    if not resumed and (out / "candidates.json").exists() and not overwrite:
        what = (f"the search {record['search']}" if record is not None and isinstance(record.get("search"), dict)
                else "another run")
        raise SpecError(f"--out: {out} holds {what}; give another --out, the same search settings to resume it, "
                        "or --overwrite to replace its candidates.json")
    out.mkdir(parents=True, exist_ok=True)
    if resumed:
        proposals = record["proposals"]  # type: ignore[index]
    else:
        result, proposals = propose(space=space, budget=budget, solve=solve, trials=trials, top_k=top_k,
                                    sweep_points=sweep_points, seed=seed, on_solve=on_solve)
        record = result.to_dict()
        for cand in record["candidates"]:
            cand.pop("extra", None)
        record["candidates"] = [p for p in proposals if p["score"] is not None]  # what `validate` and `pareto` read
        record.update(name=study_name, search=search, proposals=proposals, study=study_name,
                      provenance={**(provenance or {}), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        atomic_write_text(out / "candidates.json", json.dumps(record, indent=2))  # never half a file
    settings = {"dataset": dataset, "recipe": rec.name, "recipe_params": rec.to_dict(), "seed": seed,
                "max_batches": max_batches, "latency": latency, "amp": amp, "run_dir": str(out.resolve()),
                "space": space.name, "budget": budget.to_dict()}
    queue = SearchQueue(name=study_name, storage=open_storage(url, heartbeat_interval=heartbeat_interval,
                                                             grace_period=grace_period), create=True)
    old = queue.study.user_attrs.get("search")
    if isinstance(old, dict) and {k: old.get(k) for k in _TRAINING} != {k: settings[k] for k in _TRAINING}:
        changed = [k for k in _TRAINING if old.get(k) != settings[k]]
        raise SpecError(f"--study {study_name}: created with other training settings ({', '.join(changed)} differ); "
                        "use another --study or --out, or the same settings")
    queue.set_settings(settings)
    attrs = []
    for index, prop in enumerate(proposals):
        spec_name = prop["spec"].get("name") or f"{name}-{index + 1}"
        attrs.append({
            "key": candidate_key(prop["spec"], rec.to_dict(), dataset, seed), "name": spec_name,
            "family": prop["spec"]["family"], "rank": index + 1, "origin": prop["origin"], "spec": prop["spec"],
            "recipe": rec.name, "recipe_params": rec.to_dict(), "dataset": dataset, "seed": seed,
            "score": prop["score"], "solve_macs": prop["macs"], "solve_params": prop["params"], "budget": prop["budget"],
        })
    enqueued = queue.enqueue(attrs)
    return SearchPlan(run_dir=out, storage=url, study=study_name, proposals=attrs, enqueued=enqueued, resumed=resumed)


def _read_record(run_dir: Path) -> dict[str, Any] | None:
    file = run_dir / "candidates.json"
    if not file.is_file():
        return None
    from archsearch._jsonio import read_json

    try:
        data = read_json(file, what="run")
    except ArchsearchError:  # not a record this search can resume: treated as another run
        return None
    proposals = data.get("proposals")
    ok = isinstance(proposals, list) and all(isinstance(p, dict) and isinstance(p.get("spec"), dict) for p in proposals)
    return data if ok else None
