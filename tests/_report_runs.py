"""Runs the report and notebook tests share, made once per test process: a few fast solves (one with
a hostile run name) and a tiny validated CNN run (digits, 1 epoch, 3 batches)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import NamedTuple

import pytest

from archsearch.cli.main import main

HOSTILE = "<script>alert(1)</script>"


class CliRun(NamedTuple):
    path: Path
    code: int
    stdout: str
    stderr: str


def cli(*argv: str) -> CliRun:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return CliRun(Path(), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def solved_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliRun]:
    """revit-t (vit; named hostilely), tinyvit and a 2-budget deepmad-cifar sweep, as `solve --out` writes them."""
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
    return runs


@pytest.fixture(scope="session")
def validated_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """Three tiny CNNs trained two epochs of 3 batches on digits, through `archsearch validate` (a fourth is not trained)."""
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
    return res._replace(path=run_dir)
