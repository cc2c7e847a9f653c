"""OpenMP's wait policy for PyTorch's CPU thread pool: passive unless the user chose.

PyTorch's CPU kernels run on an OpenMP pool (GNU libgomp in the Linux wheels) whose threads by default
spin after each parallel region, waiting for the next. On a shared machine a spinning thread holds a
core that another process needs, and each of the many small operators of a CPU-sized network waits
until every thread of the pool has been scheduled again: ``benchmarks/omp_wait.py`` measured the
``quick`` recipe's training step several times slower beside two busy processes on 2 cores (the figures:
docs/training.md). ``OMP_WAIT_POLICY=PASSIVE`` (the OpenMP standard's variable) makes idle threads sleep
at once. OpenMP reads it when the library loads, i.e. when torch is first imported, so this must run
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
