"""Progress of long commands on stderr, the same way for every command (issue 19).

On a terminal (and not ``--format json``) training draws the trainer's rich bar (per candidate: epoch, a
batch bar, loss and accuracy so far, images/s, ETA). Anywhere else (a log, CI, ``nohup``, ``--format
json``) :class:`TrainLines` writes plain lines: one at every epoch's end and otherwise at most one per
``every`` seconds, so a background run's log shows it is alive. ``--quiet`` silences both; results and
errors still print. Fed by :class:`archsearch.train.progress.TrainProgress` reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

__all__ = ["CountLines", "TrainLines", "count_progress", "train_progress", "hms"]


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def hms(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class TrainLines:
    """Plain progress lines of trainings: ``__call__(label, report)`` with a ``TrainProgress``.

    Args:
        every: Least seconds between two lines inside an epoch (an epoch's end always prints).
        write: Where lines go (default stderr).
        clock: Monotonic seconds (a fake one in tests).
    """

    def __init__(self, every: float = 10.0, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.write = write or _stderr_line
        self.last = -float("inf")

    def __call__(self, label: str, p: Any) -> None:
        now = self.clock()
        head = f"{label}: epoch {p.epoch}/{p.epochs}"
        rate = f"{p.images_per_s:.0f} img/s"
        if p.kind == "epoch":
            rec = p.record
            test = ""
            if rec is not None and getattr(rec, "top1", None) == getattr(rec, "top1", None) and rec.top1 is not None:
                test = f", test top-1 {100 * rec.top1:.2f} %"
            self.write(f"{head} done: loss {p.loss:.4f}, train acc {100 * p.accuracy:.2f} %{test}, {rate}, "
                       f"ETA {hms(p.eta_s)}")
            self.last = now
        elif now - self.last >= self.every:
            self.write(f"{head} batch {p.batch}/{p.batches}: loss {p.loss:.4f}, acc {100 * p.accuracy:.2f} %, {rate}, "
                       f"ETA {hms(p.eta_s)}")
            self.last = now


def train_progress(args: argparse.Namespace) -> tuple[bool, Callable[[str, Any], None] | None]:
    """What a training command shows: ``(rich bar, plain-lines callback)`` for its arguments (``--quiet``,
    ``--format``) and where stderr goes. Only rank 0 of a ``torchrun`` job talks."""
    mode = _mode(args)
    return mode == "bar", (TrainLines() if mode == "lines" else None)


def _mode(args: argparse.Namespace) -> str:
    """``quiet`` (``--quiet``, or a ``torchrun`` rank other than 0), ``bar`` (a terminal, not ``--format json``)
    or ``lines``."""
    import os

    if getattr(args, "quiet", False) or os.environ.get("RANK", "0") != "0":
        return "quiet"
    return "bar" if sys.stderr.isatty() and getattr(args, "format", "table") != "json" else "lines"


class CountLines:
    """Plain progress lines of a counted job (a teacher's images, a calibration's timings):
    ``__call__(done, total)``, at most one line per ``every`` seconds and one when it completes."""

    def __init__(self, what: str, unit: str, every: float = 10.0, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.unit, self.every, self.clock = what, unit, every, clock
        self.write = write or _stderr_line
        self.t0 = clock()
        self.last = self.t0

    def __call__(self, done: int, total: int | None) -> None:
        now = self.clock()
        finished = total is not None and done >= total
        if not finished and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.t0
        if total:
            eta = "" if finished or done == 0 else f", ETA {hms(elapsed * (total - done) / done)}"
            self.write(f"{self.what}: {done}/{total} {self.unit} ({100 * done / total:.0f} %), {hms(elapsed)}{eta}")
        else:
            self.write(f"{self.what}: {done} {self.unit}, {hms(elapsed)}")


def count_progress(args: argparse.Namespace, what: str, unit: str) -> tuple[bool, Callable[[int, int | None], None] | None]:
    """``(rich bar, plain-lines callback)`` of a counted job, as :func:`train_progress` decides."""
    mode = _mode(args)
    return mode == "bar", (CountLines(what, unit) if mode == "lines" else None)
