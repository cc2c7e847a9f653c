"""Exhaustive reference for tests and users: the best feasible design of an enumerated set, scored by the
exact program (:class:`~archsearch.solvers.deepmad.program.DeepMADProgram`)."""

from __future__ import annotations

from typing import Any

from archsearch.solvers.deepmad.program import DeepMADProgram, Design, Evaluation


def brute_force(prog: DeepMADProgram, designs: Any) -> tuple[Design, Evaluation] | None:
    """Best feasible design among ``designs`` (for tests on small spaces)."""
    best = None
    for d in designs:
        if not prog.is_valid(d):
            continue
        ev = prog.evaluate(d)
        if ev.feasible and (best is None or ev.score > best[1].score):
            best = (d, ev)
    return best
