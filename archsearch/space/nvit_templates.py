"""The NViT redistribution space: a fixed-depth ViT whose EMB and per-block dims a program chooses.

Yang et al., "Global Vision Transformer Pruning with Hessian-Aware Saliency" (NViT), CVPR 2023.
The program (:mod:`archsearch.solvers.nvit`) picks EMB on its grid and, for every block, heads H,
query/key width per head, value width per head and MLP width from the menus below, maximising the
score of :mod:`archsearch.objectives.nvit`. Budgets count the whole model, classifier included, as
the paper does. The default budget is DeiT-S's cost rounded up (DeiT-S: 4,598,882,304 MACs and
22,050,664 parameters; budget 4.6 G MACs, 22.1 M parameters), so DeiT-S itself fits.

The priors (the paper's redistribution findings; :meth:`NViTSpace.without_priors` turns them off):

* ``v_prior``: V per head is constant (64, NViT's and ReViT's value width);
* ``heads_ratio``, ``qk_ratio``, ``mlp_ratio``: H, qk and MLP proportional to EMB, within ranges
  around ReViT's rule (H = eps EMB / 100, qk = eps EMB / 20, MLP = 3 eps EMB for eps in {1, 2}; the
  ranges allow eps in [0.5, 2.5]); heads even (NViT prunes heads in groups of 2);
* ``profile``/``middle_weight``: less-more-less block weights of the score;
* ``qk_weight``/``v_weight``/``mlp_weight``: MLP favoured over H/QK in the score.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

from archsearch.errors import SpecError
from archsearch.space.budget import Budget
from archsearch.space.search_space import BaseSpace, register_space

__all__ = ["NViTSpace"]


def _check_range(field: str, value: Any, lo_min: float, *, integer: bool) -> None:
    ok = isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) if integer else isinstance(v, (int, float)) for v in value)
    if not ok or not (lo_min <= value[0] <= value[1]) or not all(math.isfinite(v) for v in value):
        kind = "integers" if integer else "numbers"
        raise SpecError(f"space.{field}: expected ({kind}) lo <= hi with lo >= {lo_min}, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NViTSpace(BaseSpace):
    """A fixed-depth ViT (patch embedding, class token, ``depth`` blocks) with per-block dims to choose.

    Attributes:
        depth: Number of blocks.
        patch_size: Side of the patches.
        class_token: Whether a class token is prepended (DeiT).
        in_channels: Image channels.
        embed_dims: Range of EMB; ``embed_multiple`` is its step (NViT's EMB group: 16).
        heads: Range of heads per block.
        qk_dims: Range of the query/key width per head; step ``dim_multiple``.
        v_dims: Range of the value width per head; step ``dim_multiple``.
        mlp_dims: Range of the MLP width; step ``mlp_multiple`` (NViT's MLP group: 16).
        dim_multiple: Step of the per-head widths (NViT's QK/V groups: 8).
        v_prior: Prior range of the value width per head.
        heads_ratio: Prior range of ``H / EMB``; heads are then even.
        qk_ratio: Prior range of ``qk / EMB``.
        mlp_ratio: Prior range of ``MLP / EMB``.
        profile: Block weights of the score: ``less-more-less`` or ``uniform``.
        middle_weight: Weight of the middle half of the blocks under ``less-more-less``.
        qk_weight: Score weight of ``log qk``.
        v_weight: Score weight of ``log(H v)``.
        mlp_weight: Score weight of ``log MLP``.
        priors: Whether the priors apply; ``False``: the menus only, every score weight 1 (the weight
            fields are then ignored).
    """

    family: ClassVar[str] = "vit"
    solver: ClassVar[str] = "nvit-program"
    budget_counts: Literal["backbone", "model"] = "model"
    depth: int = 12
    patch_size: int = 16
    class_token: bool = True
    in_channels: int = 3
    embed_dims: tuple[int, int] = (64, 1024)
    embed_multiple: int = 16
    heads: tuple[int, int] = (1, 24)
    qk_dims: tuple[int, int] = (8, 128)
    v_dims: tuple[int, int] = (8, 128)
    mlp_dims: tuple[int, int] = (16, 6144)
    dim_multiple: int = 8
    mlp_multiple: int = 16
    v_prior: tuple[int, int] = (64, 64)
    heads_ratio: tuple[float, float] = (0.005, 0.025)
    qk_ratio: tuple[float, float] = (0.025, 0.125)
    mlp_ratio: tuple[float, float] = (1.5, 7.5)
    profile: Literal["less-more-less", "uniform"] = "less-more-less"
    middle_weight: float = 2.0
    qk_weight: float = 1.0
    v_weight: float = 1.0
    mlp_weight: float = 2.0
    priors: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("embed_dims", "heads", "qk_dims", "v_dims", "mlp_dims", "v_prior",
                      "heads_ratio", "qk_ratio", "mlp_ratio"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        if self.budget_counts != "model":
            raise SpecError(f"space.budget_counts: the nvit program counts the whole model ('model'), got {self.budget_counts!r}")
        for field, lo in (("depth", 1), ("patch_size", 1), ("in_channels", 1), ("embed_multiple", 1),
                          ("dim_multiple", 1), ("mlp_multiple", 1)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise SpecError(f"space.{field}: expected an integer >= {lo}, got {value!r}")
        if self.resolution % self.patch_size:
            raise SpecError(f"space.resolution: expected a multiple of patch_size {self.patch_size}, got {self.resolution}")
        if not isinstance(self.class_token, bool) or not isinstance(self.priors, bool):
            raise SpecError("space.class_token/priors: expected true or false")
        for field in ("embed_dims", "heads", "qk_dims", "v_dims", "mlp_dims", "v_prior"):
            _check_range(field, getattr(self, field), 1, integer=True)
        for field in ("heads_ratio", "qk_ratio", "mlp_ratio"):
            _check_range(field, getattr(self, field), 0, integer=False)
        if self.profile not in ("less-more-less", "uniform"):
            raise SpecError(f"space.profile: expected 'less-more-less' or 'uniform', got {self.profile!r}")
        for field in ("middle_weight", "qk_weight", "v_weight", "mlp_weight"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not (0 < value < 1e6):
                raise SpecError(f"space.{field}: expected a positive number, got {value!r}")

    def without_priors(self) -> "NViTSpace":
        """The same menus with the priors off: no ratio or V constraints, uniform unit weights."""
        return dataclasses.replace(self, priors=False)

    @property
    def num_tokens(self) -> int:
        return (self.resolution // self.patch_size) ** 2 + int(self.class_token)

    def summary(self) -> dict[str, Any]:
        row = super().summary()
        row.update(depth=self.depth, priors=self.priors, profile=self.profile)
        return row


register_space(NViTSpace(
    name="nvit", budget=Budget(macs=4_600_000_000, params=22_100_000),
    description="NViT redistribution program: EMB and per-block heads/QK/V/MLP of a 12-block ViT (patch 16, 224 px)",
))
