"""The command line as a user runs it: exit codes, JSON contracts, files, no torch in `solve`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archsearch.cli.main import main

FAST = ["--time-limit", "2"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_json_lists_templates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spaces", "--format", "json")
    rows = json.loads(out)
    assert code == 0
    by_name = {r["name"]: r for r in rows}
    assert {"deepmad-r18", "deepmad-r34", "deepmad-r50", "deepmad-mbv2", "deepmad-mbv2-plus", "deepmad-cifar"} <= set(by_name)
    assert by_name["deepmad-r50"]["budget_counts"] == "backbone" and by_name["deepmad-cifar"]["resolution"] == 32
    assert all({"name", "family", "resolution", "budget_counts"} <= set(r) for r in rows)


def test_solve_json_is_one_object_with_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "solve", "--space", "deepmad-cifar", "--format", "json", "--top-k", "3", *FAST)
    obj = json.loads(out)  # exactly one JSON document
    assert code == 0
    assert set(obj) == {"status", "space", "budget", "bound", "gap", "time_s", "candidates", "stopped"}
    assert obj["stopped"] in ("gap", "nodes", "time_limit")
    assert obj["status"] in ("optimal", "feasible") and obj["space"] == "deepmad-cifar"
    assert 1 <= len(obj["candidates"]) <= 3
    for cand in obj["candidates"]:
        assert set(cand) == {"spec", "score", "macs", "params", "rho"}
        assert isinstance(cand["macs"], int) and isinstance(cand["params"], int)
        assert cand["macs"] <= 20_000_000 and cand["params"] <= 500_000 and cand["rho"] <= 0.3 + 1e-12
        assert cand["score"] <= obj["bound"] + 1e-6
    best = obj["candidates"][0]["score"]
    assert obj["gap"] == pytest.approx((obj["bound"] - best) / abs(obj["bound"]), abs=1e-9)


def test_solve_out_writes_run_files_and_show_verifies_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "run"
    code, _, _ = run(capsys, "solve", "--space", "deepmad-cifar", "--out", str(out_dir), "--name", "my-run", *FAST)
    assert code == 0
    record = json.loads((out_dir / "candidates.json").read_text())
    assert record["name"] == "my-run"
    assert {"command", "versions", "seed", "solver"} <= set(record["provenance"])
    csv = (out_dir / "pareto.csv").read_text().splitlines()
    assert csv[0].startswith("run,name,score,macs,params,rho,pareto") and len(csv) >= 2 and "my-run" in csv[1]
    code, out, _ = run(capsys, "show", str(out_dir / "candidates.json"), "--verify", "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["verified"] is True
    for key in ("params", "macs", "params_with_head", "macs_with_head"):
        assert info[key] == info[f"measured_{key}"]
    assert info["macs"] == record["candidates"][0]["macs"]


def test_show_verify_exits_1_on_a_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from archsearch import cost

    run(capsys, "solve", "--space", "deepmad-cifar", "--out", str(tmp_path), *FAST)
    real = cost.costs
    monkeypatch.setattr(cost, "costs", lambda spec: {**real(spec), "macs": real(spec)["macs"] + 1})
    code, _, err = run(capsys, "show", str(tmp_path / "candidates.json"), "--verify")
    assert code == 1 and "MISMATCH" in err


def test_sweep_adds_a_front(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "solve", "--space", "deepmad-cifar", "--budget", "params=500K", "--sweep", "macs=5M:20M:3",
                       "--format", "json", "--time-limit", "1")
    obj = json.loads(out)
    assert code == 0 and len(obj["front"]) == 3
    macs = [row["budget"]["macs"] for row in obj["front"]]
    assert macs == [5_000_000, 12_500_000, 20_000_000]
    for row in obj["front"]:
        assert row["budget"]["params"] == 500_000
        assert row["macs"] <= row["budget"]["macs"] and row["params"] <= 500_000
    scores = [row["score"] for row in obj["front"]]
    assert scores[0] < scores[-1]  # a larger budget buys a higher score


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["solve", "--budget", "gflops=1G"], "unknown key 'gflops'"),
        (["solve", "--space", "nvit", "--budget", "flops=1G"], "'flops' is not counted by the nvit-program solver"),
        (["solve", "--budget", "macs=-1G"], "macs"),
        (["solve", "--budget", "latency=3parsecs"], "latency"),
        (["solve", "--space", "nope"], "known spaces"),
        (["solve", "--rho", "0"], "--rho"),
        (["solve", "--sweep", "macs=1G"], "--sweep"),
        (["show", "/no/such/spec.json"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and err.count("\n") == 1


def test_infeasible_budget_names_the_smallest_feasible_costs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "solve", "--space", "deepmad-cifar", "--budget", "macs=100K,params=1K")
    assert code == 2 and out == ""
    assert "infeasible" in err and "smallest feasible" in err and err.count("\n") == 1
    assert "macs=" in err and "params=" in err


def test_solve_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from archsearch.cli.main import main\n"
        "rc = main(['solve', '--space', 'deepmad-cifar', '--format', 'json', '--time-limit', '1'])\n"
        "assert rc == 0, rc\n"
        "bad = [m for m in ('torch', 'timm', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _fake_run(root: Path, name: str, solver: str, scored: list[tuple[float, int]]) -> Path:
    """A run directory holding CNN candidates of the given (score, stem width) pairs."""
    from archsearch.space import CNNSpec, StageSpec, StemSpec

    cands = []
    for i, (score, c0) in enumerate(scored):
        spec = CNNSpec(StemSpec(c0), (StageSpec("k1kxk1", c0, 32, 8, 3, 2, 1),), resolution=32, num_classes=10, name=f"{name}-{i + 1}")
        cands.append({"spec": spec.to_dict(), "score": score, "macs": 0, "params": 0, "rho": None})
    run_dir = root / name
    run_dir.mkdir()
    (run_dir / "candidates.json").write_text(json.dumps({"name": name, "space": "x", "candidates": cands,
                                                         "provenance": {"solver": solver + "/backend"}}))
    return run_dir


def test_pareto_merges_runs_and_compares_scores_within_an_objective(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from archsearch import cost
    from archsearch.space import load_spec

    a = _fake_run(tmp_path, "a", "deepmad-bnb", [(10.0, 16), (9.0, 24)])  # the second is dominated: wider, lower score
    b = _fake_run(tmp_path, "b", "other", [(1.0, 24)])  # a lower score of another objective is not dominated
    code, out, _ = run(capsys, "pareto", str(a), str(b / "candidates.json"), "--format", "json", "--out", str(tmp_path / "p.csv"))
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3
    by_name = {r["name"]: r for r in rows}
    assert by_name["a-1"]["pareto"] and not by_name["a-2"]["pareto"] and by_name["b-1"]["pareto"]
    spec = load_spec(json.dumps(json.loads((a / "candidates.json").read_text())["candidates"][1]["spec"]))
    assert by_name["a-2"]["macs"] == cost.macs(spec, with_head=True) and by_name["a-2"]["params"] == cost.params(spec, with_head=True)
    assert (tmp_path / "p.csv").read_text().startswith("run,space,family,objective,rank,name,score,macs,params,pareto")


def test_pareto_of_a_missing_run_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "pareto", str(tmp_path / "nope"))
    assert code == 2 and out == "" and "no candidates.json" in err and err.count("\n") == 1


def test_options_of_another_solver_are_refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from archsearch.solvers import base
    from archsearch.space import search_space

    class Plain(base.BaseSolver):
        name = "plain"

    class Other(search_space.SearchSpace):
        solver = "plain"

    space = search_space.get_space("deepmad-cifar")
    fields = {f.name: getattr(space, f.name) for f in dataclasses.fields(space)}
    monkeypatch.setitem(base._SOLVERS, "plain", Plain)
    monkeypatch.setitem(search_space._SPACES, "tmp-other", Other(**{**fields, "name": "tmp-other"}))
    code, out, err = run(capsys, "solve", "--space", "tmp-other", "--rho", "0.4")
    assert code == 2 and out == "" and "--rho: not an option of plain" in err and "deepmad-bnb" in err


def test_solve_progress_is_plain_periodic_lines_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from archsearch.cli.solve import _SolveProgress
    from archsearch.solvers import DeepMADSolver
    from archsearch.space import Budget, get_space

    args = argparse.Namespace(format="json", quiet=False)
    with _SolveProgress("solving deepmad-cifar", args, every=0.0) as progress:
        res = DeepMADSolver(max_nodes=20, progress=progress).solve(get_space("deepmad-cifar"), Budget.parse("macs=10M,params=200K"))
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("solving deepmad-cifar: ") for line in lines)
    assert any("branch and bound" in line and "gap" in line for line in lines)
    assert f"{res.stats.nodes} nodes" in lines[-1]
    with _SolveProgress("quiet", argparse.Namespace(format="json", quiet=True), every=0.0) as progress:
        DeepMADSolver(max_nodes=5, progress=progress).solve(get_space("deepmad-cifar"), Budget.parse("macs=10M,params=200K"))
    assert capsys.readouterr().err == ""
    # a short solve off a terminal prints no progress at the default period, and stdout stays one JSON object
    code, out, err = run(capsys, "solve", "--space", "deepmad-cifar", "--max-nodes", "5", "--format", "json")
    assert code == 0 and json.loads(out)["stopped"] in ("gap", "nodes") and err == ""


@pytest.mark.parametrize("command", ["solve", "search"])
@pytest.mark.parametrize("space, given, expected", [
    ("deepmad-r50", None, 1e-2),  # the branch and bound's command-line default: a certified 1 %
    ("deepmad-r50", 1e-3, 1e-3),
    ("nvit", None, 1e-3),  # the other solvers keep the library's default
    ("nvit", 0.05, 0.05),
])
def test_gap_tol_default_is_the_solvers(command: str, space: str, given: float | None, expected: float) -> None:
    """``--gap-tol`` defaults to the solver's ``cli_gap_tol`` (1e-2 for DeepMAD's branch and bound, whose
    R50 call then takes ~5 s instead of 14 s for the same best design); a value given is used as it is."""
    from archsearch.cli._program import solver_for
    from archsearch.cli.main import build_parser
    from archsearch.space import get_space

    argv = [command, "--space", space] + ([] if given is None else ["--gap-tol", str(given)])
    args = build_parser().parse_args(argv)
    solver, _ = solver_for(get_space(space), args)
    assert solver.gap_tol == expected
