"""Random designs of a space within its budgets: the models, and the sources of the units, a calibration times.

The blocks worth timing are those the budgeted programs can choose, so every draw is retried (100
tries, else the last drawn) until it fits the space's MACs (and, where the space has one, params)
budget:

* CNN (DeepMAD spaces): widths log-uniform multiples of the channel multiple, non-decreasing and
  within the space's width ratio; inner widths in the program's range; kernels and depths uniform.
* ViT: EMB log-uniform on the space's grid; every block's heads, query/key and value widths and MLP
  width within a factor 2 of DeiT's proportions (EMB/64 heads of width 64, MLP 4 EMB).
* STViT: one of the space's own designs. MCi: an admissible width tuple, depths uniform in the box.
  TinyViT: depths and windows uniform among the choices, dims uniform and non-decreasing.

No torch here.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

__all__ = ["random_cnn_design", "random_mci_spec", "random_stvit_spec", "random_tinyvit_spec", "random_vit_spec"]


def _mult(rng: random.Random, lo: float, hi: float, m: int) -> int:
    """A log-uniform multiple of ``m`` in ``[lo, hi]``."""
    lo_m, hi_m = max(1, math.ceil(lo / m)), max(1, math.floor(hi / m))
    if hi_m <= lo_m:
        return lo_m * m
    return int(round(math.exp(rng.uniform(math.log(lo_m), math.log(hi_m + 0.999))) - 0.5)) * m or m


def random_cnn_design(space: Any, rng: random.Random, *, max_width: int | None = None) -> Any:
    """A random valid design of a DeepMAD space (widths log-uniform, capped at ``max_width``)."""
    from archsearch.solvers.deepmad.program import Design, DeepMADProgram
    from archsearch.space.budget import Budget

    prog = DeepMADProgram(space, Budget())
    m, sp = prog.m, space
    hi_w = min(sp.widths[1], max_width or sp.widths[1])
    c0 = _mult(rng, sp.stem_widths[0], sp.stem_widths[1], m)
    cs, bs, ks, ls, prev = [], [], [], [], c0
    for i in range(prog.n):
        c = _mult(rng, max(prev, sp.widths[0]), min(hi_w, sp.max_width_ratio * prev), m)
        c = max(c, prev)
        lo, hi = prog.b_range(c)
        cs.append(c)
        bs.append(_mult(rng, lo, hi, m))
        ks.append(rng.choice(sp.kernels))
        ls.append(rng.randint(sp.depths[0], sp.first_depth_max if i == 0 else sp.depths[1]))
        prev = c
    return prog, Design(c0, tuple(cs), tuple(bs), tuple(ks), tuple(ls))


def _design_within_budget(space: Any, rng: random.Random, max_width: int | None) -> Any:
    """A random design within the space's MACs and params budgets (100 tries, else the last drawn):
    the blocks worth timing are those the budgeted programs can choose."""
    from archsearch.solvers.deepmad.program import DeepMADProgram
    from archsearch.space.budget import Budget

    budget = space.budget
    prog = DeepMADProgram(space, Budget())
    for _ in range(100):
        _, d = random_cnn_design(space, rng, max_width=max_width)
        ev = prog.evaluate(d)
        if (budget.macs is None or ev.macs <= budget.macs) and (budget.params is None or ev.params <= budget.params):
            break
    return d


def _random_model_spec(space: Any, rng: random.Random, resolution: int, max_width: int | None) -> Any:
    """A random design of the space within its MACs and params budgets (100 tries), at ``resolution``."""
    from archsearch.solvers.deepmad.program import DeepMADProgram
    from archsearch.space.budget import Budget

    spec = DeepMADProgram(space, Budget()).to_spec(_design_within_budget(space, rng, max_width))
    return dataclasses.replace(spec, resolution=resolution)


def _log_uniform_multiple(rng: random.Random, centre: float, lo: int, hi: int, m: int) -> int:
    """A multiple of ``m`` in ``[lo, hi]`` drawn log-uniformly within a factor 2 of ``centre``."""
    return min(max(_mult(rng, centre / 2, centre * 2, m), lo), hi)


def random_vit_spec(space: Any, rng: random.Random, *, resolution: int | None = None, max_embed: int | None = None) -> Any:
    """A random heterogeneous ViT of a ``vit``-family space, within its MACs budget (100 tries).

    EMB is log-uniform on the space's grid (capped at ``max_embed``); every block's heads, query/key and
    value widths and MLP width are drawn within a factor 2 of DeiT's proportions (EMB/64 heads of width
    64, MLP 4 EMB), so the timed blocks span the dims the programs choose from.
    """
    from archsearch.cost import macs
    from archsearch.space.vit import ViTBlockSpec, ViTSpec

    res = int(resolution or space.resolution)
    lo, hi = space.embed_dims
    hi = min(hi, max_embed or hi)
    m = space.embed_multiple
    spec = None
    for _ in range(100):
        d = _mult(rng, lo, max(lo, hi), m)
        blocks = tuple(ViTBlockSpec(max(1, round(d / 64 * rng.uniform(0.5, 2.0))), _log_uniform_multiple(rng, 64, 8, 256, 8),
                                    _log_uniform_multiple(rng, 64, 8, 256, 8), _log_uniform_multiple(rng, 4 * d, 16, 16 * d, 16))
                       for _ in range(space.depth))
        spec = ViTSpec(d, blocks, space.patch_size, res, getattr(space, "in_channels", 3), space.class_token, space.num_classes)
        if space.budget.macs is None or macs(spec, with_head=True) <= space.budget.macs:
            break
    return spec


def random_stvit_spec(space: Any, rng: random.Random, *, resolution: int | None = None) -> Any:
    """A random design of an STViT space within its MACs budget (the space's own design list)."""
    from archsearch.cost import macs
    from archsearch.solvers.stvit import stvit_designs

    designs = list(stvit_designs(space, resolution=resolution))
    fits = [d for d in designs if space.budget.macs is None or macs(d, with_head=space.budget_counts == "model") <= space.budget.macs]
    return rng.choice(fits or designs)


def random_mci_spec(space: Any, rng: random.Random, *, resolution: int | None = None) -> Any:
    """A random design of an MCi space (an admissible width tuple, depths in the box) within its MACs budget."""
    from archsearch.cost import macs

    choices = space.dim_choices()
    spec = None
    for _ in range(100):
        dims = rng.choice(choices)
        depths = tuple(rng.randint(lo, hi) for lo, hi in space.depths)
        spec = space.make_spec(dims, depths, resolution=resolution)
        if space.budget.macs is None or macs(spec, with_head=True) <= space.budget.macs:
            break
    return spec


def random_tinyvit_spec(space: Any, rng: random.Random, *, resolution: int | None = None) -> Any:
    """A random design of a TinyViT contraction space within its params and MACs budget (100 tries; the
    budget checked at the space's resolution, the spec returned at ``resolution``): every stage's
    depth and window drawn uniformly from the space's choices, its dim uniformly from its choices no
    smaller than the previous stage's dim (the space's non-decreasing rule)."""
    from archsearch.cost import macs, params

    n = space.seed.n_stages
    spec = None
    for _ in range(100):
        dims: list[int] = []
        for i in range(n):
            # (a seed whose dims decrease leaves none: its own dim, as the seed has it)
            allowed = [d for d in space.dim_choices(i) if not dims or d >= dims[-1]] or [space.dim_choices(i)[-1]]
            dims.append(rng.choice(allowed))
        depths = tuple(rng.choice(space.depth_choices(i)) for i in range(n))
        windows = tuple(rng.choice(space.window_choices(i)) for i in range(n))
        spec = space.make_spec(tuple(dims), depths, windows)  # the budget holds at the space's resolution
        b = space.budget
        if (b.macs is None or macs(spec, with_head=True) <= b.macs) and (b.params is None or params(spec, with_head=True) <= b.params):
            break
    return dataclasses.replace(spec, resolution=resolution or space.resolution)

