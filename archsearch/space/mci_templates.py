"""The MCi search space: stage widths and depths of an MCi template under a budget.

Template facts (timm 1.0.31 ``fastvit_mci0/1/2``; Vasu et al., "MobileCLIP", CVPR 2024; MCi2 in
"CLIP with Quality Captions", 2024): four stages, RepMixer in stages 1-3, attention with a
conditional positional encoding in stage 4, MLP ratio 3, SE on the last two patch embeddings, a
512-d projection head, 256 px. MCi0 (64, 128, 256, 512) x (2, 6, 10, 2); MCi1 the same widths x
(4, 12, 20, 4); MCi2 (80, 160, 320, 640) x (4, 12, 24, 4).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from archsearch.errors import SpecError
from archsearch.space.budget import Budget
from archsearch.space.mci import MCI_TEMPLATES, MCiSpec, mci_template
from archsearch.space.search_space import BaseSpace, register_space

__all__ = ["MCiSpace"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MCiSpace(BaseSpace):
    """Widths and depths of an MCi template.

    A design picks the first stage's width ``d_1`` from ``first_dims`` (multiples of
    ``dim_multiple``), each later width as ``d_i = m_i d_{i-1}`` with ``m_i`` in ``width_ratios``
    (so widths are non-decreasing multiples of ``dim_multiple`` and divisible as the patch
    embedding's grouped conv needs; at most ``max_dim``; attention stages multiples of the head
    width), and each stage's depth from ``depths``. Everything else (mixers, CPE, SE, MLP ratios,
    head) is the template's.

    Attributes:
        template: ``mci0``, ``mci1`` or ``mci2``: the fixed structure.
        first_dims: Range of the first stage's width.
        dim_multiple: Step of ``first_dims``.
        width_ratios: Allowed ratios between consecutive stage widths.
        max_dim: Largest stage width.
        depths: ``(lo, hi)`` depth range per stage.
        last_stage_weight: DeepMAD's weight of the last stage in the entropy score.
        rho0: Effectiveness bound ``rho <= rho0`` (see :mod:`archsearch.objectives.mci`); 2.0 admits
            the three templates (1.06, 1.93, 1.87).
        reparameterized: Count the budget on the inference form (default: the training form, as
            timm builds the models).
    """

    family: ClassVar[str] = "mci"
    solver: ClassVar[str] = "mci-enum"
    resolution: int = 256
    num_classes: int = 512
    budget_counts: str = "model"
    template: str = "mci0"
    first_dims: tuple[int, int] = (32, 128)
    dim_multiple: int = 16
    width_ratios: tuple[int, ...] = (1, 2, 3)
    max_dim: int = 1024
    depths: tuple[tuple[int, int], ...] = ((1, 6), (2, 16), (4, 30), (1, 6))
    last_stage_weight: float = 8.0
    rho0: float = 2.0
    reparameterized: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget_counts != "model":
            raise SpecError(f"space.budget_counts: the mci family counts the whole model, got {self.budget_counts!r}")
        if self.template not in MCI_TEMPLATES:
            raise SpecError(f"space.template: expected one of {sorted(MCI_TEMPLATES)}, got {self.template!r}")
        object.__setattr__(self, "width_ratios", tuple(sorted(set(self.width_ratios))))
        object.__setattr__(self, "depths", tuple(tuple(r) for r in self.depths))
        m = self.dim_multiple
        lo, hi = self.first_dims
        if not (isinstance(m, int) and m >= 1) or not (0 < lo <= hi) or lo % m or hi % m:
            raise SpecError(f"space.first_dims: expected 0 < lo <= hi, both multiples of dim_multiple {m}, got {(lo, hi)!r}")
        if not self.width_ratios or any(not isinstance(r, int) or r < 1 for r in self.width_ratios):
            raise SpecError(f"space.width_ratios: expected integers >= 1, got {self.width_ratios!r}")
        if self.max_dim < lo:
            raise SpecError(f"space.max_dim: expected >= first_dims[0] = {lo}, got {self.max_dim!r}")
        n = self.spec_template().n_stages
        if len(self.depths) != n or any(len(r) != 2 or not (1 <= r[0] <= r[1]) for r in self.depths):
            raise SpecError(f"space.depths: expected {n} ranges (lo, hi) with 1 <= lo <= hi, got {self.depths!r}")
        if not (isinstance(self.rho0, (int, float)) and 0 < self.rho0 <= 100):
            raise SpecError(f"space.rho0: expected a number in (0, 100], got {self.rho0!r}")
        if not self.last_stage_weight > 0:
            raise SpecError(f"space.last_stage_weight: expected a positive number, got {self.last_stage_weight!r}")

    def spec_template(self) -> MCiSpec:
        return mci_template(self.template)

    def make_spec(self, dims: tuple[int, ...], depths: tuple[int, ...], *, resolution: int | None = None,
                  name: str = "") -> MCiSpec:
        """The template with the given widths and depths, the space's head, form and resolution."""
        return dataclasses.replace(
            self.spec_template(), dims=tuple(dims), depths=tuple(depths), num_classes=self.num_classes,
            resolution=resolution or self.resolution, reparameterized=self.reparameterized, name=name,
        )

    def dim_choices(self) -> list[tuple[int, ...]]:
        """Every admissible width tuple (see the class docstring)."""
        tpl = self.spec_template()
        attn = [i for i, mixer in enumerate(tpl.token_mixers) if mixer == "attention"]
        out: list[tuple[int, ...]] = []

        def grow(dims: tuple[int, ...]) -> None:
            if len(dims) == tpl.n_stages:
                if all(dims[i] % tpl.head_dim == 0 for i in attn):
                    out.append(dims)
                return
            for r in self.width_ratios:
                if dims[-1] * r <= self.max_dim:
                    grow(dims + (dims[-1] * r,))

        for d in range(self.first_dims[0], self.first_dims[1] + 1, self.dim_multiple):
            if d <= self.max_dim:
                grow((d,))
        return out

    def summary(self) -> dict[str, Any]:
        row = super().summary()
        row.update(template=self.template, stages=len(self.depths), rho0=self.rho0)
        return row


# the timm MCi0 budget: 11.41 M params, 2.39 GMACs at 256 px (training form, 512-d head)
register_space(MCiSpace(
    name="mci", budget=Budget(macs=2_392_653_824, params=11_406_976),
    description="MCi/FastViT (MobileCLIP) widths and depths; DeepMAD-style entropy; default: the MCi0 budget (256 px)",
))
