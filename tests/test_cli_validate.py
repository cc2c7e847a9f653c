"""`archsearch validate` and `archsearch results` as a user runs them: files, JSON contract, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _train_helpers import one_thread, tiny_spec, write_run
from archsearch.cli.main import main

SMOKE = ["--epochs", "1", "--max-batches", "3", "--device", "cpu", "--threads", "1"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_then_results_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_thread()
    run_dir = write_run(tmp_path / "run", [tiny_spec(name="a"), tiny_spec(name="b", width=24), tiny_spec(name="c")])
    code, out, err = run(capsys, "validate", str(run_dir), "--top-k", "2", "--format", "json", *SMOKE)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in sorted(rows, key=lambda r: r["name"])] == ["a", "b"]
    assert all(r["status"] == "trained" and r["latency_ms"] > 0 and r["device"] == "cpu" for r in rows)
    assert (run_dir / "study.db").is_file() and len(list((run_dir / "checkpoints").glob("*.pt"))) == 2

    code, out, _ = run(capsys, "validate", str(run_dir), "--top-k", "2", "--format", "json", *SMOKE)
    assert code == 0 and {r["status"] for r in json.loads(out)} == {"cached"}

    code, out, _ = run(capsys, "results", str(run_dir), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2
    required = {"name", "family", "macs", "params", "score", "top1", "top5", "latency_ms", "pareto"}
    assert all(required <= set(r) for r in rows)
    assert all(r["family"] == "cnn" and isinstance(r["macs"], int) and r["macs"] > 0 for r in rows)
    assert any(r["pareto"] for r in rows)
    best = max(rows, key=lambda r: r["top1"])
    assert best["pareto"]  # the most accurate candidate is never dominated
    code, out, _ = run(capsys, "results", str(run_dir), "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("name,family,dataset") and len(out.splitlines()) == 3
    code, out, _ = run(capsys, "results", str(run_dir))
    assert code == 0 and "validated candidates" in out and "pareto" in out


def test_ctrl_c_stops_cleanly_with_exit_130_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    one_thread()
    import archsearch.study as study_pkg

    run_dir = write_run(tmp_path / "run", [tiny_spec(name="a")])
    real = study_pkg.validate_run

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        def stop(record):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt
        return real(*args, **kwargs, callbacks=[stop])

    monkeypatch.setattr(study_pkg, "validate_run", interrupted)
    code, _, err = run(capsys, "validate", str(run_dir), "--epochs", "2", "--max-batches", "2", "--device", "cpu", "--no-latency")
    messages = [ln for ln in err.splitlines() if ": epoch " not in ln]  # progress lines aside (off a terminal), one line
    assert code == 130 and len(messages) == 1 and "interrupted" in messages[0] and "resume" in messages[0]
    monkeypatch.setattr(study_pkg, "validate_run", real)
    code, out, _ = run(capsys, "validate", str(run_dir), "--epochs", "2", "--max-batches", "2", "--device", "cpu",
                       "--no-latency", "--format", "json")
    assert code == 0 and json.loads(out)[0]["status"] == "resumed"


def _spec_224(tmp_path: Path) -> Path:
    return write_run(tmp_path / "big", [tiny_spec(resolution=224, name="big")])


def _spec_4ch(tmp_path: Path) -> Path:
    spec = tiny_spec(name="rgba")
    return write_run(tmp_path / "rgba", [spec.replace(stem=spec.stem.__class__(out_channels=8, in_channels=4, stride=1))])


@pytest.mark.parametrize("case,argv,message", [
    ("unknown dataset", ["RUN", "--dataset", "mnist-3d"], "unknown dataset 'mnist-3d'"),
    ("missing path", ["MISSING"], "no candidates.json"),
    ("resolution", ["BIG"], "resolution 224 does not fit digits"),
    ("recipe", ["RUN", "--recipe", "nope"], "unknown recipe 'nope'"),
    ("epochs", ["RUN", "--epochs", "0"], "--epochs: expected an integer >= 1"),
    ("top-k", ["RUN", "--top-k", "0"], "--top-k: expected an integer >= 1"),
    ("folder", ["RUN", "--dataset", "imagefolder:/no/such/dir"], "no such directory"),
    ("threads", ["RUN", "--threads", "0"], "--threads: expected an integer >= 1"),
    ("channels", ["RGBA"], "4 input channels do not fit digits"),
])
def test_bad_input_is_one_line_and_exit_2(case: str, argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    paths = {"RUN": str(write_run(tmp_path / "run", [tiny_spec()])), "MISSING": str(tmp_path / "nowhere"),
             "BIG": str(_spec_224(tmp_path)), "RGBA": str(_spec_4ch(tmp_path))}
    code, out, err = run(capsys, "validate", *[paths.get(a, a) for a in argv], "--device", "cpu")
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_gpu_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", str(write_run(tmp_path / "run", [tiny_spec()])), "--device", "cuda")
    assert code == 2 and "no CUDA device is available" in err and err.count("\n") == 1


def test_results_without_validation_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path / "run", [tiny_spec()])
    code, _, err = run(capsys, "results", str(run_dir))
    assert code == 2 and "no validated candidates" in err and not (run_dir / "study.db").exists()
