"""OpenMP's wait policy for PyTorch's CPU thread pool: passive unless the user chose.

PyTorch's CPU kernels run on an OpenMP pool (GNU libgomp in the Linux wheels) whose threads by default
spin after each parallel region, waiting for the next. On a shared machine a spinning thread holds a
core that another process needs, and each of the many small operators of a CPU-sized network waits
until every thread of the pool has been scheduled again. ``OMP_WAIT_POLICY=PASSIVE`` (the OpenMP
standard's variable) makes idle threads sleep at once. Measured on 2 cores (``benchmarks/omp_wait.py``,
``reports/omp-wait.json``, the ``quick`` recipe's training step): 1.75x faster beside another training
process, 1.64x beside two spinning processes, 0.87x (13 % slower in wall time, 11 % less CPU) on an
otherwise idle machine. But batch-1 latencies need the spinning: with sleeping threads they read 3.8x
(a 5M-MAC CNN, 1.2 -> 4.1 ms) and 1.7x (DeepMAD-R18 size, 39 -> 68 ms) longer on an idle machine. So the
CLI lets threads sleep only in the commands that time no latency (``archsearch.cli.main``).
OpenMP reads it when the library loads, i.e. when torch is first imported, so this must run
before that; afterwards it changes nothing and says so.

Standard library only, so that every part of the package may use it (like :mod:`archsearch.errors`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["prefer_passive_wait"]

_USER_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def prefer_passive_wait() -> bool:
    """Sets ``OMP_WAIT_POLICY=PASSIVE`` for this process and its children unless the environment already
    sets a wait policy or spin count (the user's choice wins) or torch is already imported (too late for
    OpenMP to see it). Returns whether it set the variable."""
    if any(name in os.environ for name in _USER_VARS) or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
