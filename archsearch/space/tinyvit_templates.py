"""TinyViT contraction spaces: shrink a seed TinyViT to a budget (Wu et al., "TinyViT", ECCV 2022, Sec. 3.3).

The paper scales the 21M model down by a constrained local search (per-stage embed dims changed by
multiples of 32, windows 7 or 14, candidates kept when they meet parameter and throughput limits;
the search code was never released). Here the same moves define a discrete space solved exactly by
:class:`~archsearch.solvers.tinyvit.TinyViTContractionSolver`:

* embed dim of stage ``i``: ``seed_i - dim_step * k`` with ``k >= 0``, at least ``min_dim``; dims are
  non-decreasing over the stages; heads = dim / ``head_dim`` (32);
* window of each attention stage: one of ``windows`` (the MBConv stage has none);
* depths: the seed's (``depths=None``, as in the paper) or per-stage choices up to the seed's.

Budgets count the whole model (``budget_counts="model"``). The default budget of ``tinyvit`` is the
exact cost of the published 11M model (timm ``tiny_vit_11m_224``, 1000 classes): 10,996,972 params
and 2,016,046,144 MACs (the paper's "11M / 2.0G"), so the published 11M model is itself feasible.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from archsearch.errors import SpecError
from archsearch.space.budget import Budget
from archsearch.space.search_space import BaseSpace, register_space
from archsearch.space.tinyvit import TINYVIT_21M, TinyViTSpec

__all__ = ["TinyViTSpace", "TINYVIT_5M_BUDGET", "TINYVIT_11M_BUDGET"]

# exact costs of timm's tiny_vit_{5m,11m}_224 with 1000 classes (tests/test_tinyvit_core.py checks them)
TINYVIT_5M_BUDGET = Budget(params=5_392_764, macs=1_255_174_720)
TINYVIT_11M_BUDGET = Budget(params=10_996_972, macs=2_016_046_144)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TinyViTSpace(BaseSpace):
    """A contraction space around a seed TinyViT (see the module docstring).

    Attributes:
        seed: The spec to contract; its dims are the per-stage maxima.
        dim_step: Step of the per-stage dims (a multiple of the seed's head dim).
        min_dim: Smallest embed dim of any stage (a multiple of the seed's head dim).
        windows: Window sides an attention stage may use.
        depths: Per-stage depth choices (each at most the seed's depth), or ``None`` for the seed's.
    """

    family: ClassVar[str] = "tinyvit"
    solver: ClassVar[str] = "tinyvit-contract"
    budget_counts: str = "model"
    seed: TinyViTSpec = TINYVIT_21M
    dim_step: int = 32
    min_dim: int = 32
    windows: tuple[int, ...] = (7, 14)
    depths: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.seed, TinyViTSpec):
            raise SpecError(f"space.seed: expected a TinyViTSpec, got {type(self.seed).__name__}")
        hd = self.seed.head_dim
        for field in ("dim_step", "min_dim"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < hd or value % hd:
                raise SpecError(f"space.{field}: expected a positive multiple of the seed's head dim {hd}, got {value!r}")
        if self.min_dim > min(self.seed.embed_dims):
            raise SpecError(f"space.min_dim: expected at most the seed's smallest dim {min(self.seed.embed_dims)}, "
                            f"got {self.min_dim}")
        windows = tuple(sorted(set(self.windows))) if isinstance(self.windows, (tuple, list)) else ()
        if not windows or any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 64 for w in windows):
            raise SpecError(f"space.windows: expected a non-empty list of integers in [1, 64], got {self.windows!r}")
        object.__setattr__(self, "windows", windows)
        if self.budget_counts != "model":
            raise SpecError(f"space.budget_counts: TinyViT budgets count the whole model ('model'), got {self.budget_counts!r}")
        if self.depths is not None:
            n = self.seed.n_stages
            if not isinstance(self.depths, (tuple, list)) or len(self.depths) != n:
                raise SpecError(f"space.depths: expected {n} lists of depth choices (one per stage), got {self.depths!r}")
            out = []
            for i, (choices, top) in enumerate(zip(self.depths, self.seed.depths)):
                ok = isinstance(choices, (tuple, list)) and choices and all(
                    isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= top for c in choices)
                if not ok:
                    raise SpecError(f"space.depths[{i}]: expected depths in [1, {top}] (the seed's), got {choices!r}")
                out.append(tuple(sorted(set(choices))))
            object.__setattr__(self, "depths", tuple(out))

    def dim_choices(self, stage: int) -> tuple[int, ...]:
        """Embed dims stage ``stage`` may take, smallest first."""
        top = self.seed.embed_dims[stage]
        return tuple(sorted(d for d in range(top, self.min_dim - 1, -self.dim_step)))

    def depth_choices(self, stage: int) -> tuple[int, ...]:
        return self.depths[stage] if self.depths is not None else (self.seed.depths[stage],)

    def window_choices(self, stage: int) -> tuple[int, ...]:
        """Windows of stage ``stage`` (the MBConv stage keeps the seed's unused entry)."""
        return (self.seed.window_sizes[0],) if stage == 0 else self.windows

    def make_spec(self, dims: tuple[int, ...], depths: tuple[int, ...], windows: tuple[int, ...], *,
                  resolution: int | None = None, name: str = "") -> TinyViTSpec:
        """The spec of one design of the space."""
        hd = self.seed.head_dim
        return dataclasses.replace(
            self.seed, embed_dims=tuple(dims), depths=tuple(depths), window_sizes=tuple(windows),
            num_heads=tuple(d // hd for d in dims), resolution=resolution or self.resolution,
            num_classes=self.num_classes, name=name,
        )

    def size(self) -> int:
        """Number of designs before the monotone-dims rule and the budget."""
        n = 1
        for i in range(self.seed.n_stages):
            n *= len(self.dim_choices(i)) * len(self.depth_choices(i)) * len(self.window_choices(i))
        return n

    def summary(self) -> dict[str, Any]:
        row = super().summary()
        row.update(seed=self.seed.name or list(self.seed.embed_dims), windows=list(self.windows),
                   depths="seed" if self.depths is None else [list(d) for d in self.depths])
        return row


register_space(TinyViTSpace(
    name="tinyvit", budget=TINYVIT_11M_BUDGET,
    description="TinyViT contraction of the 21M model: dims -32k per stage, windows 7/14, depths (2, 2, 6, 2)",
))
register_space(TinyViTSpace(
    name="tinyvit-depth", budget=TINYVIT_11M_BUDGET, depths=((1, 2), (1, 2), (2, 3, 4, 5, 6), (1, 2)),
    description="TinyViT contraction of the 21M model with depth choices up to (2, 2, 6, 2)",
))
