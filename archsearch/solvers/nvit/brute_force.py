"""The NViT program solved by enumeration: every design of a tiny space, the best feasible one (tests)."""

from __future__ import annotations

from archsearch.solvers.nvit.program import NViTProgram
from archsearch.space.vit import ViTSpec

__all__ = ["brute_force_nvit"]


def brute_force_nvit(prog: NViTProgram) -> tuple[float, ViTSpec] | None:
    """Best feasible design by enumerating every design of the program's space (tiny spaces only)."""
    import itertools

    best: tuple[float, ViTSpec] | None = None
    for d in prog.embed_grid():
        r = prog.ranges(d)
        options = list(itertools.product(r["heads"], r["qk"], r["v"], r["mlp"]))
        for blocks in itertools.product(options, repeat=prog.depth):
            spec = prog.to_spec(d, blocks)
            if not prog.feasible(spec):
                continue
            s = prog.score(spec)
            if best is None or s > best[0]:
                best = (s, spec)
    return best
