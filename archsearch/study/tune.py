"""Tuning a program's free constants by a few trainings: the library call behind ``archsearch tune``.

An Optuna study whose parameters are the program's declared free constants
(:func:`archsearch.solvers.constants.free_constants`: DeepMAD's rho0, last-stage weight and depth-penalty
weight; NViT's priors switch). Each trial

1. solves the program with the trial's constants at every tuning budget: deterministic (a node budget,
   never wall time) and fast;
2. trains each budget's top design briefly with the tune's recipe and reports the running mean top-1 to
   the pruner at every epoch (step ``j * epochs + e`` for budget ``j``, epoch ``e``), so Optuna's
   successive-halving pruner stops constants whose designs train badly after one epoch;
3. returns the mean top-1 over the budgets.

Designs are trained once: every trained design is a completed trial of the companion study
``NAME/designs`` (keyed by :func:`~archsearch.study.candidate_key`, like ``validate``), which later trials
reuse (their pruner is fed the stored curve), and an interrupted training resumes from its epoch
checkpoint in ``OUT/checkpoints``. The study lives in an Optuna storage (``sqlite:///OUT/study.db`` by
default, PostgreSQL for many machines), records its settings, and is resumable: re-run with the same
arguments, it runs only the trials that are missing; ``archsearch worker --study NAME --storage URL`` joins
it from another machine. The best trial's constants are written as ``OUT/profile.json``
(:mod:`archsearch.solvers.profile`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import inspect
import math
from pathlib import Path
from typing import Any, Callable

from archsearch.errors import ArchsearchError, SpecError
from archsearch.space.budget import Budget
from archsearch.study.store import ValidationStudy, candidate_key, default_storage

__all__ = ["TuneSettings", "TuneSummary", "best_trial", "best_trial_of", "plan_tune", "run_tune", "tune_profile", "is_tune_study"]

#: The study attribute holding a tune's settings (a search study's is ``search``).
ATTR = "tune"


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """What a tune trains and how; stored in the study, so every worker trains alike.

    Attributes:
        space: The space whose program is tuned.
        budgets: The tuning budgets, as ``Budget.to_text()``.
        dataset, recipe, recipe_params, seed, max_batches: How a design trains (``recipe_params``: the
            recipe with its epochs).
        trials: Trials the study runs in all (completed or pruned), over every worker.
        max_nodes: Branch-and-bound nodes of each solve (deterministic solves).
        sampler_seed: The TPE sampler's seed.
        run_dir: Where checkpoints and the profile go.
    """

    space: str
    budgets: tuple[str, ...]
    dataset: str
    recipe: str
    recipe_params: dict[str, Any]
    seed: int
    max_batches: int | None
    trials: int
    max_nodes: int
    sampler_seed: int
    run_dir: str

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "budgets": list(self.budgets)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TuneSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in names}, "budgets": tuple(data["budgets"])})

    @property
    def epochs(self) -> int:
        return int(self.recipe_params["epochs"])


#: Settings whose change makes an old study's trials incomparable (the rest may change on resume).
_FIXED = ("space", "budgets", "dataset", "recipe_params", "seed", "max_batches", "max_nodes", "sampler_seed")


@dataclasses.dataclass
class TuneSummary:
    """What a tune did: trials by state, designs trained and reused, the best trial."""

    study: str
    storage: str
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    trained: int = 0
    reused: int = 0
    best: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_tune_study(study: Any) -> bool:
    """Whether an Optuna study is a tune (its workers run :func:`run_tune`, not the search queue)."""
    return isinstance(study.user_attrs.get(ATTR), dict)


def _sampler_and_pruner(settings: TuneSettings) -> tuple[Any, Any]:
    import optuna

    startup = max(2, min(8, settings.trials // 4))  # random trials before TPE models the constants
    sampler = optuna.samplers.TPESampler(seed=settings.sampler_seed, n_startup_trials=startup)
    # successive halving on epochs: rungs after 1, 3, 9, ... epochs of the first budget's training
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3, min_early_stopping_rate=0)
    return sampler, pruner


def plan_tune(*, space: Any, budgets: list[Budget], run_dir: str | Path, dataset: str = "digits", recipe: str = "quick",
              epochs: int | None = None, seed: int = 0, max_batches: int | None = None, trials: int = 20,
              max_nodes: int = 200, sampler_seed: int = 0, storage: str | None = None,
              study: str | None = None) -> tuple[TuneSettings, str, str]:
    """Checks a tune's options and creates (or finds, to resume) its study; returns its settings, storage and
    study name.

    Raises:
        SpecError: A space whose program declares no free constants, bad options, a study that tuned other
            settings.
        StorageError: A storage that cannot be used.
    """
    from archsearch.solvers.constants import free_constants
    from archsearch.study.queue import open_storage
    from archsearch.study.search import _recipe
    from archsearch.study.storage import check_storage

    if not free_constants(space):
        raise SpecError(f"--space {space.name}: its program ({space.solver}) declares no free constants to tune; "
                        "the deepmad-* spaces (but deepmad-mbv2, whose madnas score has none) and nvit do")
    if not budgets:
        raise SpecError("--budget: give at least one budget to tune at")
    for name, value, low in (("--trials", trials, 1), ("--max-nodes", max_nodes, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SpecError(f"{name}: expected an integer >= {low}, got {value!r}")
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1):
        raise SpecError(f"--max-batches: expected an integer >= 1, got {max_batches!r}")
    rec = _recipe(recipe, epochs)
    out = Path(run_dir)
    url = storage or default_storage(out)
    check_storage(url, create=True, connect=True)
    settings = TuneSettings(space=space.name, budgets=tuple(b.to_text() for b in budgets), dataset=dataset,
                            recipe=rec.name, recipe_params=rec.to_dict(), seed=seed, max_batches=max_batches,
                            trials=trials, max_nodes=max_nodes, sampler_seed=sampler_seed, run_dir=str(out.resolve()))
    name = study or f"tune-{space.name}"
    out.mkdir(parents=True, exist_ok=True)
    import optuna

    sampler, pruner = _sampler_and_pruner(settings)
    opt = optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize", sampler=sampler,
                              pruner=pruner, load_if_exists=True)
    old = opt.user_attrs.get(ATTR)
    if old is None and opt.trials:
        raise SpecError(f"--study {name}: the storage holds a study of that name that is not a tune; use another --study")
    if isinstance(old, dict):
        changed = [k for k in _FIXED if _norm(old.get(k)) != _norm(settings.to_dict()[k])]
        if changed:
            raise SpecError(f"--study {name}: tuned with other settings ({', '.join(changed)} differ); use another "
                            "--study or --out, or the same settings to resume")
    opt.set_user_attr(ATTR, settings.to_dict())
    if not opt.trials:  # the papers' constants run first: the tuned ones are judged beside them
        from archsearch.solvers.constants import default_constants

        opt.enqueue_trial(default_constants(space), user_attrs={"paper": True})
    return settings, url, name


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def run_tune(*, study: str, storage: str, device: str = "cpu", max_trials: int | None = None,
             data_dir: str | Path | None = None, on_trial: Callable[[dict[str, Any]], None] | None = None,
             on_epoch: Callable[[dict[str, Any]], None] | None = None,
             on_progress: Callable[[str, Any], None] | None = None) -> TuneSummary:
    """Runs trials of a tune study until it holds its ``trials`` (completed or pruned), or this process has
    run ``max_trials``; any number of processes may run it on one storage.

    Args:
        study, storage: The tune study (:func:`plan_tune`).
        device: Where designs train.
        max_trials: Stop after this many trials of this process.
        data_dir: Dataset download cache.
        on_trial: Called with each finished trial (``number``, ``state``, ``constants``, ``value``, ``designs``).
        on_epoch: Called after every epoch of a training (``trial``, ``budget``, ``epoch``, ``top1``).
        on_progress: Called with a label and every training progress report (``TrainProgress``).
    """
    import optuna

    from archsearch.solvers import get_solver
    from archsearch.solvers.constants import free_constants
    from archsearch.space import get_space
    from archsearch.study.queue import open_storage
    from archsearch.study.worker import _checkpoint_dir

    rdb = open_storage(storage, create=False)
    loaded = optuna.load_study(study_name=study, storage=rdb)
    if not is_tune_study(loaded):
        raise SpecError(f"--study {study}: not a tune study (archsearch tune creates one)")
    settings = TuneSettings.from_dict(loaded.user_attrs[ATTR])
    sampler, pruner = _sampler_and_pruner(settings)
    opt = optuna.load_study(study_name=study, storage=rdb, sampler=sampler, pruner=pruner)
    designs = ValidationStudy(name=f"{study}/designs", storage=storage)
    space = get_space(settings.space)
    constants = free_constants(space)
    budgets = [Budget.parse(t) for t in settings.budgets]
    solver_cls = get_solver(space.solver)
    ckpt_dir = _checkpoint_dir({"run_dir": settings.run_dir}, study, None)  # the worker's rule: RUN_DIR/checkpoints when writable
    summary = TuneSummary(study=study, storage=storage)
    data_cache: dict[Any, Any] = {}
    node_limit = {"max_nodes": settings.max_nodes} if "max_nodes" in inspect.signature(solver_cls).parameters else {}
    train_settings = {"dataset": settings.dataset, "recipe_params": settings.recipe_params, "seed": settings.seed,
                      "max_batches": settings.max_batches, "latency": False, "amp": "auto"}

    def objective(trial: optuna.Trial) -> float:
        values = {c.name: c.suggest(trial) for c in constants}
        trial.set_user_attr("constants", values)
        tops: list[float] = []
        records = []
        for j, budget in enumerate(budgets):
            solver = solver_cls(gap_tol=1e-3, **node_limit)
            result = solver.solve(space, budget, top_k=1, **values)
            if result.best is None:  # constants under which the budget holds no design: the worst value
                trial.set_user_attr("designs", records + [{"budget": settings.budgets[j], "status": result.status}])
                return 0.0
            spec = result.best.spec.replace(name=f"{study}-t{trial.number}-b{j + 1}")
            spec_dict = _unnamed(spec.to_dict())
            key = candidate_key(spec_dict, settings.recipe_params, settings.dataset, settings.seed,
                                max_batches=settings.max_batches)
            done = designs.finished().get(key)
            curve = _run_design(trial, j, settings, key, spec, done, designs, train_settings, ckpt_dir, data_cache,
                                data_dir, device, tops, on_epoch, summary, on_progress)
            tops.append(curve)
            records.append({"budget": settings.budgets[j], "key": key, "score": result.best.score,
                            "macs": result.best.macs, "params": result.best.params, "top1": curve,
                            "reused": done is not None})
            trial.set_user_attr("designs", records)
        return sum(tops) / len(tops)

    def stop_when_full(study_: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        summary_state = frozen.state.name.lower()
        if summary_state == "complete":
            summary.completed += 1
        elif summary_state == "pruned":
            summary.pruned += 1
        else:
            summary.failed += 1
        if on_trial:
            on_trial({"number": frozen.number, "state": summary_state, "constants": frozen.user_attrs.get("constants"),
                      "value": frozen.value, "designs": frozen.user_attrs.get("designs", [])})
        finished = study_.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        if len(finished) >= settings.trials:
            study_.stop()

    finished = opt.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    left = settings.trials - len(finished)
    if max_trials is not None:
        left = min(left, max_trials)
    if left > 0:
        try:
            opt.optimize(objective, n_trials=left, callbacks=[stop_when_full], catch=(ArchsearchError, RuntimeError, ValueError))
        except KeyboardInterrupt:  # the interrupted trial's constants run again when the tune resumes
            _retry_interrupted(opt)
            raise
    summary.best = best_trial(opt)
    return summary


def _retry_interrupted(study: Any) -> None:
    """Enqueues the constants of this process's interrupted trial (Optuna marks it failed), so that the resumed
    tune runs them first; its design resumes from the epoch checkpoint."""
    import optuna

    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    if failed and failed[-1].params:
        last = failed[-1]
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if not any(t.user_attrs.get("retry_of") == last.number for t in waiting):
            study.enqueue_trial(last.params, user_attrs={"retry_of": last.number})


def _unnamed(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec's dict without its name, so that one design has one key whichever trial found it."""
    return {k: v for k, v in spec.items() if k != "name"}


def _run_design(trial: Any, j: int, settings: TuneSettings, key: str, spec: Any, done: Any, designs: ValidationStudy,
                train_settings: dict[str, Any], ckpt_dir: Path, data_cache: dict[Any, Any], data_dir: Any, device: str,
                tops: list[float], on_epoch: Any, summary: TuneSummary, on_batch: Any = None) -> float:
    """Trains (or reuses) budget ``j``'s design, reporting the running mean top-1 to the pruner after every
    epoch; returns the design's final top-1. Raises ``optuna.TrialPruned`` when the pruner says so."""
    import optuna

    from archsearch.study.worker import train_proposal

    epochs = settings.epochs

    def report(epoch: int, top1: float) -> None:
        if on_epoch:
            on_epoch({"trial": trial.number, "budget": settings.budgets[j], "epoch": epoch, "top1": top1})
        if top1 == top1:  # an evaluated epoch
            trial.report((sum(tops) + top1) / (len(tops) + 1), j * epochs + epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"budget {settings.budgets[j]}, epoch {epoch}: top-1 {top1:.2f}")

    if done is not None:
        summary.reused += 1
        for point in done.user_attrs.get("history", []):
            report(int(point["epoch"]), float(point.get("top1", math.nan)))
        return float(done.value)
    attrs = {"spec": spec.to_dict(), "name": spec.name, "family": spec.family, "dataset": settings.dataset,
             "recipe": settings.recipe, "seed": settings.seed, "max_batches": settings.max_batches, "kind": "tune"}
    record = designs.start(key, attrs)
    history: list[dict[str, Any]] = []

    def on_record(epoch: Any) -> None:
        history.append({"epoch": epoch.epoch, "top1": epoch.top1})
        ValidationStudy.report(record, epoch.epoch, epoch.top1, history)
        report(epoch.epoch, epoch.top1)

    try:
        metrics = train_proposal({**attrs, "key": key}, train_settings, device=device, checkpoint=ckpt_dir / f"{key}.pt",
                                 data_cache=data_cache, data_dir=data_dir, callbacks=(on_record,),
                                 on_progress=None if on_batch is None else
                                 (lambda p: on_batch(f"trial {trial.number} at {settings.budgets[j]}", p)))
    except optuna.TrialPruned:
        designs.fail(record, "pruned: the tune trial that trained it was pruned (its checkpoint resumes it)")
        raise
    except BaseException as exc:
        designs.fail(record, f"{type(exc).__name__}: {exc}")
        raise
    designs.finish(record, {**metrics, "history": history})
    summary.trained += 1
    return float(metrics["top1"])


def best_trial(study: Any) -> dict[str, Any] | None:
    """The best completed trial as ``{number, value, constants, designs, paper}`` (None before one completes);
    ``paper`` is the trial of the papers' constants (``{number, value, state}``) when the study ran it."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return None
    best = max(done, key=lambda t: (t.value, -t.number))
    paper = next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("paper")), None)
    return {"number": best.number, "value": best.value, "constants": best.user_attrs.get("constants", {}),
            "designs": best.user_attrs.get("designs", []),
            "paper": None if paper is None else {"number": paper.number, "value": paper.value,
                                                 "state": paper.state.name.lower()}}


def best_trial_of(*, study: str, storage: str) -> dict[str, Any] | None:
    """:func:`best_trial` of the tune study ``study`` in ``storage``."""
    import optuna

    from archsearch.study.queue import open_storage

    return best_trial(optuna.load_study(study_name=study, storage=open_storage(storage, create=False)))


def tune_profile(*, study: str, storage: str, out: str | Path) -> Path:
    """Writes the best trial's constants as ``OUT/profile.json`` with their evidence and provenance."""
    import optuna

    from archsearch import __version__
    from archsearch.solvers.profile import Profile, write_profile
    from archsearch.study.storage import mask_url
    from archsearch.study.queue import open_storage

    opt = optuna.load_study(study_name=study, storage=open_storage(storage, create=False))
    if not is_tune_study(opt):
        raise SpecError(f"--study {study}: not a tune study")
    settings = TuneSettings.from_dict(opt.user_attrs[ATTR])
    best = best_trial(opt)
    if best is None:
        raise SpecError(f"tune {study}: no trial completed yet, so no profile; run more trials (--trials)")
    states = [t.state.name.lower() for t in opt.get_trials(deepcopy=False)]
    evidence = {"objective": f"mean top-1 (a fraction) over the budgets of the top design's training ({settings.recipe}, "
                             f"{settings.epochs} epochs{'' if settings.max_batches is None else f', {settings.max_batches} batches an epoch'})",
                "value": best["value"], "trial": best["number"], "designs": best["designs"], "paper": best["paper"],
                "budgets": list(settings.budgets), "dataset": settings.dataset, "recipe": settings.recipe,
                "epochs": settings.epochs, "max_batches": settings.max_batches, "seed": settings.seed,
                "trials": {s: states.count(s) for s in sorted(set(states))}}
    provenance = {"study": study, "storage": mask_url(storage), "archsearch": __version__,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return write_profile(Path(out) / "profile.json", Profile(settings.space, best["constants"], evidence, provenance))
