"""Incumbents: designs on the discrete grid from relaxed solutions.

Rounding of a relaxed solution to the channel grid (the best of the roundings around it), a greedy repair
into the budgets, and local search (single and paired moves); the pool keeps the best distinct networks
(designs that build the same module count once).
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any, Iterable

import numpy as np
from archsearch.solvers.deepmad.box import _Node
from archsearch.solvers.deepmad.program import DeepMADProgram, Design, Evaluation


class _Search:
    """Rounding, repair and local search on the discrete grid; keeps the best designs found."""

    def __init__(self, prog: DeepMADProgram, keep: int) -> None:
        self.prog = prog
        self.keep = max(1, keep)
        self.pool: dict[Design, Evaluation] = {}
        self.best: tuple[Design, Evaluation] | None = None
        self.evaluations = 0
        self._cache: dict[Design, Evaluation] = {}

    def evaluate(self, d: Design) -> Evaluation:
        ev = self._cache.get(d)
        if ev is None:
            ev = self.prog.evaluate(d)
            self.evaluations += 1
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[d] = ev
            if ev.feasible and self.prog.is_valid(d):
                self._offer(d, ev)
        return ev

    def _offer(self, d: Design, ev: Evaluation) -> None:
        if self.best is None or ev.score > self.best[1].score:
            self.best = (d, ev)
        if len(self.pool) < 4 * self.keep or ev.score > min(e.score for e in self.pool.values()):
            self.pool[d] = ev
            if len(self.pool) > 8 * self.keep:
                for key, _ in sorted(self.pool.items(), key=lambda kv: kv[1].score)[: len(self.pool) - 4 * self.keep]:
                    del self.pool[key]

    def top(self, k: int) -> list[tuple[Design, Evaluation]]:
        """The ``k`` best distinct networks: designs that build the same module (adjacent superblocks of one
        width, inner width and kernel, the second at stride 1, share their blocks however the depths are
        split between them) count once, by their best-scoring design (the depth penalty tells them apart)."""
        out, seen = [], set()
        for d, ev in sorted(self.pool.items(), key=lambda kv: -kv[1].score):
            key = self.module_key(d)
            if key not in seen:
                seen.add(key)
                out.append((d, ev))
                if len(out) == k:
                    break
        return out

    def bar(self) -> float:
        """The score a design must beat to enter the top-k list (``-inf`` until it holds k networks). A box
        whose relaxation does not beat it holds no design worth rounding, repairing or polishing."""
        top = self.top(self.keep)
        return top[-1][1].score if len(top) == self.keep else -math.inf

    def module_key(self, d: Design) -> tuple[Any, ...]:
        """The sequence of blocks a design builds: (in, out, inner, kernel, stride, projection) per block (in a
        space that always projects, the first block of every superblock projects, so depths moved across a
        stride-1 boundary make another network)."""
        blocks: list[tuple[int, int, int, int, int, bool]] = []
        prev = d.c0
        for i in range(self.prog.n):  # (in, out, inner, kernel, stride, projection shortcut)
            s = self.prog.strides[i]
            blocks.append((prev, d.c[i], d.b[i], d.k[i], s, s != 1 or prev != d.c[i] or self.prog.force_projection))
            blocks.extend([(d.c[i], d.c[i], d.b[i], d.k[i], 1, False)] * (d.L[i] - 1))
            prev = d.c[i]
        return (d.c0, tuple(blocks))

    def round(self, z: np.ndarray, node: _Node, depths: np.ndarray) -> Design:
        """A relaxed solution rounded to the nearest grid point of the node (depths ``depths``)."""
        prog, n, m = self.prog, self.prog.n, self.prog.m
        sp = prog.space
        rnd = lambda v: max(m, int(round(v / m)) * m)  # noqa: E731
        c0 = min(max(rnd(math.exp(z[0])), node.wlo[0]), node.whi[0])
        cs, prev = [], c0
        for i in range(n):
            c = min(max(rnd(math.exp(z[1 + i])), node.wlo[1 + i], prev), node.whi[1 + i])
            c = min(c, int(sp.max_width_ratio * prev) // m * m)
            cs.append(max(c, prev))
            prev = cs[-1]
        bs = []
        for i in range(n):
            lo, hi = prog.b_range(cs[i])
            b = min(max(rnd(math.exp(z[1 + n + i])), lo, node.blo[i]), hi, max(node.bhi[i], lo))
            bs.append(self.on_grid(cs[i], b, node, i) if prog.grid else b)
        ks = self.kernels(z, node)
        Ls = tuple(lo if lo == hi else min(max(int(round(L)), lo), hi)
                   for L, lo, hi in zip(depths, node.lo, node.hi))
        return Design(c0, tuple(cs), tuple(bs), ks, Ls)

    def floor(self, z: np.ndarray, node: _Node) -> Design:
        """Widths of a relaxed solution rounded down to the grid (costs only decrease, or nearly).

        Widths the relaxation keeps equal stay equal (a stride-1 superblock that changes width pays a
        shortcut convolution), and where the bottleneck ratio would force an inner width up, the output
        width goes down instead."""
        prog, n, m = self.prog, self.prog.n, self.prog.m
        lo_r = prog.space.min_inner_ratio()
        fl = lambda v: max(m, int(math.exp(v) / m + 1e-3) * m)  # noqa: E731
        c0 = min(max(fl(z[0]), node.wlo[0]), node.whi[0])
        cs, bs, prev = [], [], c0
        for i in range(n):
            b = min(max(fl(z[1 + n + i]), node.blo[i]), max(node.bhi[i], node.blo[i]))
            cap = min(node.whi[1 + i], int(prog.space.max_width_ratio * prev) // m * m)
            if abs(z[1 + i] - z[i]) < 1e-4:  # the relaxation keeps the width
                c = prev
            else:
                c = min(max(fl(z[1 + i]), node.wlo[1 + i], prev), cap)
                c = max(min(c, int(b / lo_r + 1e-6) // m * m), prev, node.wlo[1 + i])  # keep b >= c lo_r
            lo, hi = prog.b_range(c)
            cs.append(c)
            bs.append(prog.snap_b(c, b, -1) if prog.grid else min(max(b, lo), hi))
            prev = c
        return Design(c0, tuple(cs), tuple(bs), self.kernels(z, node), tuple(node.lo))

    def round_box(self, z: np.ndarray, node: _Node) -> Design:
        """The best grid design around a relaxed solution, depths and kernels of the node's lower end.

        Every inner width is rounded down or up, every output width down or up or down to where the
        bottleneck ratio admits the inner width (the relaxation often sits on ``b = c lo_r``, which the
        grid reaches only at some widths); widths the relaxation keeps equal stay equal. The best feasible
        combination, or else the one violating the constraints least."""
        prog, n, m = self.prog, self.prog.n, self.prog.m
        lo_r = prog.space.min_inner_ratio()

        def grid(v: float) -> tuple[int, int]:
            w = math.exp(v) / m
            down = max(m, int(w + 1e-3) * m)
            return down, (down if abs(w - round(w)) < 1e-3 else down + m)

        ks, L = self.kernels(z, node), tuple(node.lo)
        c0s = sorted({min(max(x, node.wlo[0]), node.whi[0]) for x in grid(z[0])})
        # (output width, inner width, which side of the relaxed inner width): in a space with a ratio grid the
        # inner width becomes the grid's nearest below or above it at the chosen output width
        pairs: list[list[tuple[int, int, int]]] = []
        for i in range(n):
            b_down, b_up = grid(z[1 + n + i])
            bs = {(min(max(x, node.blo[i]), max(node.bhi[i], node.blo[i])), side) for x, side in ((b_down, -1 if prog.grid else 0), (b_up, 1 if prog.grid else 0))}
            if abs(z[1 + i] - z[i]) < 1e-4:  # the relaxation keeps the width: 0 stands for "as before"
                pairs.append([(0, b, side) for b, side in sorted(bs)])
                continue
            opts = set()
            for b, side in bs:
                cap = int(b / lo_r + 1e-6) // m * m
                for c in grid(z[1 + i]):
                    opts.add((min(max(c, node.wlo[1 + i]), node.whi[1 + i]), b, side))
                    opts.add((min(max(min(c, cap), node.wlo[1 + i]), node.whi[1 + i]), b, side))
            pairs.append(sorted(opts))
        best, best_key = None, None
        for c0 in c0s:
            for combo in itertools.product(*pairs):
                widths, prev = [], c0
                for c, _, _ in combo:
                    prev = prev if c == 0 else c
                    widths.append(prev)
                inner = tuple(prog.snap_b(w, b, side) if prog.grid else b for w, (_, b, side) in zip(widths, combo))
                d = Design(c0, tuple(widths), inner, ks, L)
                if not prog.is_valid(d):
                    continue
                ev = self.evaluate(d)
                key = (ev.feasible, ev.score if ev.feasible else -ev.violation)
                if best_key is None or key > best_key:
                    best, best_key = d, key
        return best if best is not None else self.floor(z, node)

    def on_grid(self, c: int, b: int, node: _Node, i: int) -> int:
        """The grid's inner width at output width ``c`` nearest ``b``, inside the node's range if one is."""
        opts = [x for x in self.prog.b_options(c) if node.blo[i] <= x <= node.bhi[i]] or list(self.prog.b_options(c))
        return min(opts, key=lambda x: (abs(x - b), x))

    def kernels(self, z: np.ndarray, node: _Node) -> tuple[int, ...]:
        """The allowed kernel nearest (in log k^2) to each relaxed kappa."""
        n = self.prog.n
        return tuple(min(kk, key=lambda k: abs(2 * math.log(k) - z[1 + 2 * n + i])) for i, kk in enumerate(node.kernels))

    def neighbours(self, d: Design) -> list[Design]:
        prog, n, m, sp = self.prog, self.prog.n, self.prog.m, self.prog.space
        out = []
        for delta in (m, -m):
            out.append(d._replace(c0=d.c0 + delta))
            for i in range(n):
                c = list(d.c); c[i] += delta
                out.append(d._replace(c=tuple(c)))
                b = list(d.b)
                if prog.grid:  # the next inner width of the grid at this output width
                    b[i] = prog.snap_b(d.c[i], d.b[i] + delta / 2, 1 if delta > 0 else -1)
                else:
                    b[i] += delta
                out.append(d._replace(b=tuple(b)))
                # widen/narrow the output and keep the b/out ratio in range (on the grid: the same ratio, nearly)
                b2 = list(d.b)
                if prog.grid:
                    b2[i] = prog.snap_b(c[i], d.b[i] * c[i] / d.c[i]) if c[i] > 0 else m
                else:
                    lo, hi = prog.b_range(c[i]) if c[i] > 0 else (m, m)
                    b2[i] = min(max(d.b[i], lo), hi)
                out.append(d._replace(c=tuple(c), b=tuple(b2)))
        for i in range(n):
            for dl in (1, -1):
                L = list(d.L); L[i] += dl
                out.append(d._replace(L=tuple(L)))
            for k in sp.kernels:
                if k != d.k[i]:
                    ks = list(d.k); ks[i] = k
                    out.append(d._replace(k=tuple(ks)))
            for j in range(n):
                if j != i:
                    L = list(d.L); L[i] += 1; L[j] -= 1
                    out.append(d._replace(L=tuple(L)))
        return [x for x in out if self.prog.is_valid(x)]

    def best_improvement(self, designs: Iterable[Design], score: float) -> tuple[Design, Evaluation] | None:
        """The feasible design scoring best among ``designs``, if it beats ``score``."""
        best = None
        for x in designs:
            ex = self.evaluate(x)
            if ex.feasible and ex.score > score + 1e-9 and (best is None or ex.score > best[1].score):
                best = (x, ex)
        return best

    def pair_polish(self, d: Design, deadline: float) -> Design:
        """Local search over pairs of moves (then single moves) until no pair improves or time is up."""
        d = self.polish(d)
        while time.perf_counter() < deadline:
            pairs = (y for x in self.neighbours(d) if time.perf_counter() < deadline for y in self.neighbours(x))
            best = self.best_improvement(pairs, self.evaluate(d).score)
            if best is None:
                break
            d = self.polish(best[0])
        return d

    def repair(self, d: Design, max_steps: int = 100) -> Design | None:
        """Greedy descent on the constraint violation, losing as little score per step as possible."""
        ev = self.evaluate(d)
        for _ in range(max_steps):
            if ev.feasible:
                return d
            best, best_key = None, None
            for x in self.neighbours(d):
                ex = self.evaluate(x)
                gain = ev.violation - ex.violation
                if gain <= 1e-15:
                    continue
                key = gain / (max(ev.score - ex.score, 0.0) + 1e-6 * abs(ev.score) + 1e-9)
                if best_key is None or key > best_key:
                    best, best_key = (x, ex), key
            if best is None:
                return None
            d, ev = best
        return d if ev.feasible else None

    def polish(self, d: Design, max_steps: int = 60) -> Design:
        """Best-improvement local search among feasible neighbours."""
        ev = self.evaluate(d)
        for _ in range(max_steps):
            best = self.best_improvement(self.neighbours(d), ev.score)
            if best is None:
                break
            d, ev = best
        return d
