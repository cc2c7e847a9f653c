"""The branch-and-bound box: per superblock an integer range of depths, a set of kernels and a range of
inner widths, and a range for the stem and every superblock output width; the root box is the whole space."""

from __future__ import annotations

import math
from typing import NamedTuple

from archsearch.solvers.deepmad.program import DeepMADProgram, Design


class _Node(NamedTuple):
    lo: tuple[int, ...]  # depth ranges
    hi: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    wlo: tuple[int, ...]  # width ranges of x variables (stem, superblock outputs)
    whi: tuple[int, ...]
    blo: tuple[int, ...]  # inner-width ranges per superblock
    bhi: tuple[int, ...]


def _root(prog: DeepMADProgram) -> _Node:
    """The box of the whole space."""
    sp, n, m = prog.space, prog.n, prog.m
    return _Node(
        lo=tuple(sp.depths[0] for _ in range(n)),
        hi=tuple(min(sp.first_depth_max, sp.depths[1]) if i == 0 else sp.depths[1] for i in range(n)),
        kernels=tuple(tuple(sp.kernels) for _ in range(n)),
        wlo=(sp.stem_widths[0],) + tuple(sp.widths[0] for _ in range(n)),
        whi=(sp.stem_widths[1],) + tuple(sp.widths[1] for _ in range(n)),
        blo=tuple(m for _ in range(n)),
        bhi=tuple(max(m, int(sp.widths[1] * sp.max_inner_ratio() / m + 1e-9) * m) for _ in range(n)),
    )


def _at_least(log_width: float, m: int) -> int:
    """The smallest multiple of ``m`` at or above ``exp(log_width)``, less a margin for solver tolerance."""
    return math.ceil(math.exp(log_width) / m - 0.02) * m


def _at_most(log_width: float, m: int) -> int:
    """The largest multiple of ``m`` at or below ``exp(log_width)``, plus a margin for solver tolerance."""
    return math.floor(math.exp(log_width) / m + 0.02) * m


def _empty(node: _Node) -> bool:
    """Whether some range of the box is empty."""
    return any(a > b for a, b in zip(node.lo + node.wlo + node.blo, node.hi + node.whi + node.bhi))


def _contains(node: _Node, d: Design) -> bool:
    """Whether design ``d`` lies in the box ``node``."""
    return (all(lo <= L <= hi for lo, L, hi in zip(node.lo, d.L, node.hi))
            and all(k in kk for k, kk in zip(d.k, node.kernels))
            and all(lo <= c <= hi for lo, c, hi in zip(node.wlo, (d.c0,) + d.c, node.whi))
            and all(lo <= b <= hi for lo, b, hi in zip(node.blo, d.b, node.bhi)))
