"""Runs the report and notebook tests share, made once per test process: a few fast solves (one with
a hostile run name) and a tiny validated CNN run (digits: 2 epochs of 3 batches, and another training of
two designs with two seeds)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from archsearch.cli.main import main

HOSTILE = "<script>alert(1)</script>"


class CliRun(NamedTuple):
    path: Path
    code: int
    stdout: str
    stderr: str


#: Runs already made in this process. Each test module that imports a fixture below gets its own copy
#: of it, which pytest would run once per module even at session scope; this keeps it once per process.
_MADE: dict[str, Any] = {}


def cli(*argv: str) -> CliRun:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return CliRun(Path(), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def solved_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliRun]:
    """revit-t (vit; named hostilely), tinyvit and a 2-budget deepmad-cifar sweep, as `solve --out` writes them."""
    if "solved" in _MADE:
        return _MADE["solved"]
    root = tmp_path_factory.mktemp("solved")
    runs = {}
    for key, argv in {
        "vit": ["--space", "revit-t", "--name", HOSTILE],
        "tinyvit": ["--space", "tinyvit", "--top-k", "4"],
        "cnn": ["--space", "deepmad-cifar", "--budget", "macs=8M,params=200K", "--sweep", "macs=4M:8M:2", "--time-limit", "1",
                "--top-k", "3"],
    }.items():
        res = cli("solve", *argv, "--out", str(root / key), "--format", "json")
        assert res.code == 0, res.stderr
        runs[key] = res._replace(path=root / key)
    _MADE["solved"] = runs
    return runs


@pytest.fixture(scope="session")
def validated_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """Three tiny CNNs trained two epochs of 3 batches on digits, through `archsearch validate` (a fourth is not
    trained), then the first two again in another training, one epoch of 2 batches, with seeds 0 and 1 and no latency
    (so the run holds two comparable trainings, one of them with seeds to aggregate)."""
    if "validated" in _MADE:
        return _MADE["validated"]
    import torch

    from _train_helpers import tiny_spec, write_run

    torch.set_num_threads(1)
    run_dir = write_run(tmp_path_factory.mktemp("validated") / "run",
                        [tiny_spec(name="narrow"), tiny_spec(name="wide", width=32), tiny_spec(name="mid", width=24),
                         tiny_spec(name="skipped", width=40)],
                        name="tiny-validated")
    res = cli("validate", str(run_dir), "--top-k", "3", "--epochs", "2", "--max-batches", "3", "--device", "cpu",
              "--threads", "1")
    assert res.code == 0, res.stderr
    seeded = cli("validate", str(run_dir), "--top-k", "2", "--epochs", "1", "--max-batches", "2", "--seeds", "0,1",
                 "--no-latency", "--device", "cpu", "--threads", "1")
    assert seeded.code == 0, seeded.stderr
    _MADE["validated"] = res._replace(path=run_dir)
    return _MADE["validated"]
