"""The command line on the mci space: solve (JSON, infeasible), show --verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archsearch.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_solve_json_then_show_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "solve", "--space", "mci", "--budget", "params=11.5M,macs=2.5G", "--format", "json",
                       "--top-k", "2", "--resolution", "64")
    obj = json.loads(out)
    assert code == 0 and obj["status"] == "optimal" and obj["gap"] == 0.0 and obj["space"] == "mci"
    best = obj["candidates"][0]
    assert best["params"] <= 11_500_000 and best["macs"] <= 2_500_000_000 and best["rho"] <= 2.0
    assert best["spec"]["family"] == "mci" and best["spec"]["resolution"] == 64
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(best["spec"]))
    code, out, _ = run(capsys, "show", str(spec), "--verify", "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["verified"] is True
    assert info["params_with_head"] == best["params"] and info["macs_with_head"] == best["macs"]


def test_infeasible_budget_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "solve", "--space", "mci", "--budget", "params=100K", "--resolution", "64")
    assert code == 2 and "infeasible for space mci" in err and "smallest feasible design" in err


def test_options_of_other_solvers_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "solve", "--space", "mci", "--entropy", "paper")
    assert code == 2 and "not an option of mci-enum" in err
