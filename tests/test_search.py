"""`archsearch search` and `archsearch worker` on SQLite: proposals, atomic claims, resume, a killed worker."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from _search_helpers import BUDGET, check_exactly_once, fake_solve, plan, three_workers_one_killed
from _train_helpers import one_thread, tiny_spec
from archsearch.cli.main import main
from archsearch.errors import SpecError
from archsearch.space import Budget, get_space, spec_from_dict
from archsearch.study import SearchQueue, neighbours, open_storage, propose

SMOKE = ["--epochs", "1", "--max-batches", "2", "--device", "cpu", "--threads", "1", "--no-latency"]


def test_neighbours_are_valid_one_move_away_fit_the_budget_and_distinct() -> None:
    from archsearch import cost

    spec = tiny_spec(name="base")
    budget = Budget(macs=cost.macs(spec) + 200_000, params=cost.params(spec) + 5_000)
    found = neighbours(spec, budget, with_head=False, seed=0)
    assert found, "no neighbour fits a budget with room"
    seen = set()
    for n in found:
        assert cost.macs(n) <= budget.macs and cost.params(n) <= budget.params
        assert n.name.startswith("base~") and spec_from_dict(n.to_dict()) == n
        for prev, nxt in zip(n.stages, n.stages[1:]):
            assert nxt.in_channels == prev.out_channels  # the channel chain follows a width move
        diff = [(a, b) for a, b in zip(spec.stages, n.stages) if a != b] + ([1] if spec.stem != n.stem else [])
        assert 1 <= len(diff) <= 2  # one move (plus the next stage's input when a width moved)
        key = json.dumps({k: v for k, v in n.to_dict().items() if k != "name"}, sort_keys=True)
        assert key not in seen
        seen.add(key)
    assert any("depth+1" in n.name for n in found) and any("out_channels-" in n.name for n in found)
    # a budget with no room left: only shrinking moves remain
    tight = neighbours(spec, Budget(macs=cost.macs(spec), params=cost.params(spec)), with_head=False)
    assert tight and all("+" not in n.name.split("~")[1] for n in tight)
    assert neighbours(spec, budget, with_head=False, seed=1) != found  # the seed orders them
    assert sorted(map(str, neighbours(spec, budget, with_head=False, seed=1))) == sorted(map(str, found))


def test_propose_takes_top_k_then_sweep_then_neighbours_without_duplicates() -> None:
    space = get_space("deepmad-cifar")
    result, props = propose(space=space, budget=BUDGET, solve=fake_solve, trials=6, top_k=2, sweep_points=1)
    assert result.status == "optimal"
    assert [p["origin"] for p in props] == ["top-k", "top-k", "neighbour", "neighbour", "neighbour", "neighbour"]
    # the 50% sweep found tiny-a again (renamed): a duplicate, so it is not proposed twice
    assert [p["spec"]["name"] for p in props[:2]] == ["tiny-a", "tiny-b"]
    assert all(p["macs"] <= BUDGET.macs and p["params"] <= BUDGET.params for p in props)
    _, few = propose(space=space, budget=BUDGET, solve=fake_solve, trials=1, top_k=3)
    assert len(few) == 1 and few[0]["origin"] == "top-k"
    _, lat = propose(space=space, budget=BUDGET.replace(latency_ms=5.0), solve=fake_solve, trials=6, top_k=2)
    assert [p["origin"] for p in lat] == ["top-k", "top-k"]  # no latency model for neighbours: none proposed
    with pytest.raises(SpecError, match="--trials"):
        propose(space=space, budget=BUDGET, solve=fake_solve, trials=0)
    with pytest.raises(SpecError, match="infeasible"):
        propose(space=space, budget=Budget(macs=10), solve=fake_solve, trials=2)
    timed_out = lambda b, k: fake_solve(b, k).__class__("feasible", "fake", b, [], 2.0, 1.0, fake_solve(b, k).stats)  # noqa: E731
    with pytest.raises(SpecError, match="time limit"):
        propose(space=space, budget=BUDGET, solve=timed_out, trials=2)


def _claim_all(url: str, out: "mp.Queue[list[int]]") -> None:
    queue = SearchQueue(name="race", storage=open_storage(url, heartbeat_interval=1, grace_period=3))
    got = []
    while (trial := queue.claim("w")) is not None:
        got.append(trial.number)
        queue._release(trial)
    out.put(got)


def test_claims_are_atomic_across_processes_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    queue = SearchQueue(name="race", storage=open_storage(url, heartbeat_interval=1, grace_period=3), create=True)
    added = queue.enqueue([{"key": f"k{i}"} for i in range(24)])
    assert added == 24 and queue.enqueue([{"key": "k3"}]) == 0  # a key with a live trial is not enqueued twice
    ctx = mp.get_context("fork")  # each child opens its own storage; fork spares re-importing the test
    results: "mp.Queue[list[int]]" = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, results)) for _ in range(3)]
    for p in procs:
        p.start()
    claimed = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    flat = [n for got in claimed for n in got]
    assert sorted(flat) == list(range(24)), "a trial was claimed twice or never"
    assert queue.counts() == {"done": 0, "running": 24, "waiting": 0, "failed": 0, "total": 24}


def test_search_cli_trains_proposals_then_resumes_without_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_thread()
    run_dir = tmp_path / "run"
    argv = ["search", "--space", "deepmad-cifar", "--budget", "macs=1M,params=20K", "--resolution", "16", "--trials", "4",
            "--sweep-points", "0", "--time-limit", "5", "--out", str(run_dir), "--format", "json", *SMOKE]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["enqueued"] == 4 and not first["resumed"] and first["worker"]["completed"] == 4
    assert first["counts"] == {"done": 4, "running": 0, "waiting": 0, "failed": 0, "total": 4}
    assert first["proposals"][0]["origin"] == "top-k" and {p["origin"] for p in first["proposals"]} <= {"top-k", "sweep", "neighbour"}
    record = json.loads((run_dir / "candidates.json").read_text())
    assert len(record["proposals"]) == 4 and all(c["score"] is not None for c in record["candidates"])
    assert (run_dir / "study.db").is_file() and len(list((run_dir / "checkpoints").glob("*.pt"))) == 4

    assert main(argv) == 0  # same command: resumes, solves nothing, trains nothing
    again = json.loads(capsys.readouterr().out)
    assert again["resumed"] and again["enqueued"] == 0 and again["worker"]["trials"] == []
    assert again["counts"]["done"] == 4

    assert main(["results", str(run_dir), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and all(r["dataset"] == "digits" and 0 <= r["top1"] <= 1 and r["macs"] > 0 for r in rows)
    assert {r["key"] for r in rows} == {p["key"] for p in first["proposals"]}

    assert main(["search", "--space", "deepmad-cifar", "--trials", "0"]) == 2
    assert "--trials" in capsys.readouterr().err


def test_a_study_keeps_one_training_setting(tmp_path: Path) -> None:
    plan(tmp_path / "run", storage=None, trials=2)
    with pytest.raises(SpecError, match="other training settings.*recipe_params"):
        plan(tmp_path / "run", storage=None, trials=2, epochs=3)


def test_worker_errors_name_the_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    SearchQueue(name="plain", storage=open_storage(url), create=True)
    assert main(["worker", "--study", "nope", "--storage", url, "--device", "cpu"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert main(["worker", "--study", "plain", "--storage", url, "--device", "cpu"]) == 2
    assert "not a search study" in capsys.readouterr().err
    assert main(["worker", "--study", "plain", "--storage", url, "--heartbeat", "5", "--grace-period", "5"]) == 2
    assert "--grace-period" in capsys.readouterr().err


@pytest.mark.train
def test_three_sqlite_workers_one_killed_every_proposal_completes_exactly_once(tmp_path: Path) -> None:
    out = three_workers_one_killed(f"sqlite:///{tmp_path / 'run' / 'study.db'}", tmp_path / "run")
    check_exactly_once(out)
