"""Forward-pass timing shared by calibration, validation and the latency benchmarks.

Every timed call is one batch forward in eval mode without gradients, measured by a
``torch.utils.benchmark.Timer`` (which synchronises CUDA) at the process's thread count, after untimed
warm-up calls. Each call is timed alone through the timer's one-shot measurement: its public
``timeit(1)`` runs two untimed calls of its own before every timed one, which tripled the cost of a
calibration (a torch whose Timer lacks the one-shot method gets ``timeit(1)``). Several
modules are timed *interleaved*: ``rounds`` passes over all of them, each taking ``ceil(runs / rounds)``
calls of every module, so a slow phase of the machine (another process, a noisy neighbour of a
virtual machine) spreads over all modules instead of inflating the few that happened to run during it.

The kept figure is a statistic of the pooled calls (:data:`STATISTICS`): ``median`` (the default),
``p25`` (lower quartile) or ``min``. Interference only ever slows a call down, so on a shared machine a
low quantile is the reproducible figure. On this project's 2-core virtual machine, 60 random
ResNet-like models each measured twice agreed within +-10 % for 57-68 % of them by the median, 52-77 %
by the lower quartile and 78-97 % by the minimum (``benchmarks/latency_accuracy.py``, quiet machine;
under load, 10 models timed back to back agreed by the median for half of them).

Written here because timm's timing lives in its ``benchmark.py`` script (whole-batch throughput, not a
library call) and latency tables need single-call statistics of interleaved modules.
"""

from __future__ import annotations

import math
import statistics
from typing import Callable, Sequence

import torch
from torch import nn

from archsearch.cost.latency import STATISTICS
from archsearch.errors import SpecError

__all__ = ["STATISTICS", "check_statistic", "forward_samples", "summarise_ms", "time_forwards"]


def check_statistic(statistic: str, field: str = "statistic") -> str:
    """``statistic`` when it is one of :data:`STATISTICS`, else a :class:`SpecError` naming ``field``."""
    if statistic not in STATISTICS:
        raise SpecError(f"{field}: expected one of {list(STATISTICS)}, got {statistic!r}")
    return statistic


def summarise_ms(times_s: Sequence[float], statistic: str = "median") -> float:
    """The statistic (:data:`STATISTICS`) of per-call times in seconds, in milliseconds.

    ``p25`` is the lower quartile by linear interpolation between order statistics (``statistics.quantiles``
    with the inclusive method), so it is defined from two calls on.
    """
    check_statistic(statistic)
    if not times_s:
        raise SpecError("statistic: no timed calls")
    if statistic == "min":
        value = min(times_s)
    elif statistic == "p25" and len(times_s) > 1:
        value = statistics.quantiles(times_s, n=4, method="inclusive")[0]
    else:
        value = statistics.median(times_s)
    return 1000.0 * value


def _caller(module: nn.Module, x: torch.Tensor, autocast: torch.dtype | None) -> Callable[[], None]:
    def forward() -> None:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
            module(x)

    return forward


def _one_call(timer: object) -> float:
    """Seconds of one timed call: the Timer's one-shot measurement (``Timer.timeit`` minus the two
    untimed calls it makes first), else ``timeit(1)``."""
    one_shot = getattr(timer, "_timeit", None)
    return float(one_shot(1)) if callable(one_shot) else float(timer.timeit(1).median)  # type: ignore[attr-defined]


def forward_samples(items: Sequence[tuple[nn.Module, torch.Tensor]], *, runs: int = 30, warmup: int = 5, rounds: int = 3,
                    autocast: torch.dtype | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[list[float]]:
    """Per-call forward times in seconds of each ``(module, input)``, timed in interleaved rounds.

    Args:
        items: Modules and the input each is called on (modules are put in eval mode and restored).
        runs: Timed calls per module in all (``ceil(runs / rounds)`` per round).
        warmup: Untimed calls per module before the first round.
        rounds: Interleaved passes over all modules (1: each module's calls back to back).
        autocast: Run the forward under ``torch.autocast`` with this dtype (mixed precision).
        progress: Called with ``(done, total)`` after each module's share of a round.
    """
    from torch.utils import benchmark

    if runs < 1 or warmup < 0 or rounds < 1:
        raise SpecError(f"runs, warmup, rounds: expected runs >= 1, warmup >= 0, rounds >= 1, got {runs}, {warmup}, {rounds}")
    rounds = min(rounds, runs)
    per_round = math.ceil(runs / rounds)
    modes = [m.training for m, _ in items]
    calls = [_caller(m.eval(), x, autocast) for m, x in items]
    times: list[list[float]] = [[] for _ in items]
    total, done = rounds * len(items), 0
    try:
        for call in calls:
            for _ in range(warmup):
                call()
        timers = [benchmark.Timer(stmt="forward()", globals={"forward": call}, num_threads=torch.get_num_threads())
                  for call in calls]
        for _ in range(rounds):
            for i, timer in enumerate(timers):
                times[i] += [_one_call(timer) for _ in range(per_round)]
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        for (m, _), mode in zip(items, modes):
            m.train(mode)
    return times


def time_forwards(items: Sequence[tuple[nn.Module, torch.Tensor]], *, runs: int = 30, warmup: int = 5, rounds: int = 3,
                  statistic: str = "median", autocast: torch.dtype | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[float]:
    """Forward time of each ``(module, input)`` in milliseconds: the ``statistic`` (:data:`STATISTICS`)
    of its calls from :func:`forward_samples` (same arguments)."""
    check_statistic(statistic)  # before anything runs
    samples = forward_samples(items, runs=runs, warmup=warmup, rounds=rounds, autocast=autocast, progress=progress)
    return [summarise_ms(t, statistic) for t in samples]
