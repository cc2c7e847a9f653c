"""Shared pieces of the search/worker tests: a fake program, a planned study, and the 3-worker kill test."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from _train_helpers import tiny_spec
from archsearch.cli.main import main
from archsearch.solvers.base import Candidate, SolveResult, SolverStats
from archsearch.space import Budget, get_space
from archsearch.study import SearchQueue, open_storage, plan_search

BUDGET = Budget(macs=2_000_000, params=40_000)


def fake_solve(budget: Budget, top_k: int) -> SolveResult:
    """A deterministic stand-in for a program: two tiny CNNs that fit ``budget`` (scores 2 and 1)."""
    from archsearch import cost

    specs = [tiny_spec(name="tiny-a"), tiny_spec(name="tiny-b", width=24)]
    cands = [Candidate(spec=s, score=float(2 - i), macs=cost.macs(s), params=cost.params(s)) for i, s in enumerate(specs)
             if cost.macs(s) <= (budget.macs or 1e18) and cost.params(s) <= (budget.params or 1e18)][:top_k]
    return SolveResult("optimal" if cands else "infeasible", "fake", budget, cands, 2.0, 0.0, SolverStats(backend="fake"),
                       {} if cands else {"macs": 1, "params": 1})


def plan(run_dir: Path, *, storage: str | None, trials: int, study: str = "kill-test", epochs: int = 1,
         max_batches: int | None = 2, **kwargs: Any) -> Any:
    return plan_search(space=get_space("deepmad-cifar"), budget=BUDGET, solve=fake_solve, trials=trials, run_dir=run_dir,
                       name=study, storage=storage, study=study, top_k=2, sweep_points=0, dataset="digits",
                       epochs=epochs, max_batches=max_batches, latency=False, heartbeat_interval=1, grace_period=3, **kwargs)


def _worker_process(argv: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import torch

    torch.set_num_threads(1)
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter clean-up: the connections inherited from the parent are the parent's


def start_worker(url: str, study: str, log: Path) -> Any:
    """``archsearch worker`` (the CLI's own entry point) in a forked process: the real worker code path,
    without paying the interpreter's and torch's start-up three times on a 2-core machine."""
    argv = ["worker", "--study", study, "--storage", url, "--device", "cpu", "--threads", "1", "--heartbeat", "1",
            "--grace-period", "3", "--poll", "0.2", "--format", "json"]
    proc = mp.get_context("fork").Process(target=_worker_process, args=(argv, str(log)), daemon=True)
    proc.start()
    return proc


def three_workers_one_killed(url: str, run_dir: Path, *, trials: int = 6, timeout: float = 120.0) -> dict[str, Any]:
    """Plans ``trials`` proposals, runs 3 worker processes on them, SIGKILLs one while it holds a RUNNING
    trial, waits for the others, and returns what the study holds."""
    from optuna.trial import TrialState

    import archsearch.models  # noqa: F401  (imported once here, inherited by the forked workers)
    from archsearch.train import get_dataset

    get_dataset("digits", seed=0, resolution=16)
    p = plan(run_dir, storage=url, trials=trials, epochs=1, max_batches=None)  # a whole epoch (~1 s): the victim holds a running trial long enough to be caught
    assert p.enqueued == trials
    queue = SearchQueue(name=p.study, storage=open_storage(url, heartbeat_interval=1, grace_period=3))
    workers = [start_worker(url, p.study, run_dir / f"worker{i}.log") for i in range(3)]
    victim, killed_trial = workers[0], None
    t0 = time.monotonic()
    try:
        while killed_trial is None and time.monotonic() - t0 < timeout:
            mine = [t for t in queue.trials(TrialState.RUNNING) if t.user_attrs.get("worker", "").endswith(f":{victim.pid}")]
            if mine:
                os.kill(victim.pid, signal.SIGKILL)
                victim.join()
                killed_trial = mine[0].number
                break
            assert victim.is_alive(), (run_dir / "worker0.log").read_text()
            time.sleep(0.05)
        assert killed_trial is not None, "the victim never held a running trial"
        state_at_kill = next(t.state for t in queue.trials() if t.number == killed_trial)
        for w in workers[1:]:
            w.join(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        codes = [w.exitcode for w in workers[1:]]
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
                w.join()
    return {"trials": queue.trials(), "killed": killed_trial, "state_at_kill": state_at_kill, "codes": codes,
            "keys": [a["key"] for a in p.proposals], "wall_s": time.monotonic() - t0,
            "logs": [(run_dir / f"worker{i}.log").read_text() for i in range(3)]}


def check_exactly_once(out: dict[str, Any]) -> None:
    """Every proposal completed exactly once, the killed trial failed and was retried, nothing else failed."""
    from optuna.trial import TrialState

    trials = out["trials"]
    assert out["codes"] == [0, 0], out["logs"]
    assert out["state_at_kill"] == TrialState.RUNNING
    complete = [t.user_attrs["key"] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(out["keys"]), "a proposal was lost or completed twice"
    killed = next(t for t in trials if t.number == out["killed"])
    assert killed.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == out["killed"]]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs["key"] == killed.user_attrs["key"]
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [out["killed"]]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED)]
    assert all(t.value is not None and 0 <= t.value <= 1 for t in trials if t.state == TrialState.COMPLETE)
