"""Progress on long commands (issue 19): plain lines off a terminal (one at every epoch's end, otherwise at
most one per 10 s, by a fake clock), a rich bar on a terminal, nothing with --quiet, and stdout of
--format json still one JSON object."""

from __future__ import annotations

import argparse
import json

import pytest

from archsearch.cli._progress import CountLines, TrainLines, count_progress, hms, train_progress
from archsearch.train.progress import TrainProgress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _report(kind: str, epoch: int, batch: int, record=None) -> TrainProgress:
    return TrainProgress(kind=kind, epoch=epoch, epochs=3, batch=batch, batches=100, step=(epoch - 1) * 100 + batch,
                         steps=300, loss=1.25, accuracy=0.5, images_per_s=812.0, eta_s=95.0, lr=0.01, record=record)


def test_train_lines_print_every_epoch_end_and_at_most_one_line_per_ten_seconds() -> None:
    clock, lines = Clock(), []
    show = TrainLines(write=lines.append, clock=clock)
    for batch in range(1, 101):  # 100 batches over 35 s: a line at 0.35 s (the first), then every >= 10 s
        clock.t = 0.35 * batch
        show("net seed 0 (1/2)", _report("batch", 1, batch))
    assert [ln.split("batch ")[1].split(":")[0] for ln in lines] == ["1/100", "30/100", "59/100", "88/100"]
    rec = argparse.Namespace(top1=0.8123)
    show("net seed 0 (1/2)", _report("epoch", 1, 100, rec))  # an epoch's end always prints
    assert lines[-1] == ("net seed 0 (1/2): epoch 1/3 done: loss 1.2500, train acc 50.00 %, test top-1 81.23 %, "
                         "812 img/s, ETA 1 min 35 s")
    clock.t += 1
    show("net seed 0 (1/2)", _report("batch", 2, 1))
    assert len(lines) == 5  # within 10 s of the epoch line


def test_count_lines_are_throttled_and_say_when_done() -> None:
    clock, lines = Clock(), []
    show = CountLines("teacher resnet18 on digits", "images", write=lines.append, clock=clock)
    for done in range(0, 1001, 50):
        clock.t = done / 20  # 50 s in all
        show(done, 1000)
    assert len(lines) == 5 and lines[-1] == "teacher resnet18 on digits: 1000/1000 images (100 %), 50 s"
    assert lines[0].startswith("teacher resnet18 on digits: 200/1000 images (20 %), 10 s, ETA 40 s")


def test_hms() -> None:
    assert [hms(x) for x in (0, 42.4, 185, 3720, float("nan"))] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min", "?"]


@pytest.mark.parametrize(("tty", "fmt", "quiet", "expect"), [
    (True, "table", False, (True, False)), (True, "json", False, (False, True)), (False, "table", False, (False, True)),
    (False, "json", False, (False, True)), (True, "table", True, (False, False)), (False, "json", True, (False, False)),
])
def test_what_each_setting_shows(monkeypatch: pytest.MonkeyPatch, tty: bool, fmt: str, quiet: bool, expect: tuple) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    for decide in (train_progress, lambda a: count_progress(a, "x", "y")):
        bar, lines = decide(argparse.Namespace(format=fmt, quiet=quiet))
        assert (bar, lines is not None) == expect


def test_validate_off_a_terminal_logs_epochs_and_json_stdout_stays_one_object(tmp_path, capsys) -> None:
    from archsearch.cli.main import main

    run = tmp_path / "run"
    assert main(["solve", "--space", "deepmad-cifar", "--budget", "macs=5M,params=60K", "--max-nodes", "20", "--top-k", "1",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    argv = ["validate", str(run), "--dataset", "digits", "--epochs", "2", "--max-batches", "1", "--no-latency",
            "--format", "json", "--seed", "3"]
    assert main(argv) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert len(rows) == 1
    epochs = [ln for ln in out.err.splitlines() if " done: loss " in ln]
    assert [ln.split(": epoch ")[1][:3] for ln in epochs] == ["1/2", "2/2"] and "seed 3 (1/1)" in epochs[0]
    assert "No CUDA runtime" not in out.err
    assert main([*argv[:-2], "--seed", "4", "--quiet", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert "epoch" not in out.err and len(json.loads(out.out)) == 1  # no progress; the report hint stays
