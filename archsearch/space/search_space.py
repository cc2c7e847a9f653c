"""Search spaces: a family, a template and the ranges a program may choose from; one registry."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Callable, ClassVar, Literal

from archsearch.errors import SpecError, UnknownNameError, did_you_mean
from archsearch.space.budget import Budget
from archsearch.space.cnn import BLOCK_TYPES

__all__ = ["BaseSpace", "SearchSpace", "deepmad_smart_round", "register_space", "get_space", "list_spaces"]

_SPACES: dict[str, "BaseSpace"] = {}
_SEARCHABLE_BLOCKS = tuple(b for b in BLOCK_TYPES if b in ("k1kxk1", "k1dwk1"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseSpace:
    """Fields every space has, whatever its family.

    Attributes:
        name: Registry name (``deepmad-r50``).
        family: The spec family the space produces.
        resolution: Default input resolution.
        num_classes: Classifier outputs of built candidates.
        budget: The template's default budget (used when ``--budget`` is not given).
        budget_counts: ``backbone`` (the classifier head excluded, DeepMAD's convention) or ``model``.
        description: One line for ``archsearch spaces``.
    """

    name: str
    family: ClassVar[str] = ""
    solver: ClassVar[str] = ""  # registry name of the solver of this space's program
    resolution: int = 224
    num_classes: int = 1000
    budget: Budget = Budget()
    budget_counts: Literal["backbone", "model"] = "backbone"
    description: str = ""

    def __post_init__(self) -> None:
        if self.budget_counts not in ("backbone", "model"):
            raise SpecError(f"space.budget_counts: expected 'backbone' or 'model', got {self.budget_counts!r}")
        if not isinstance(self.resolution, int) or self.resolution < 8:
            raise SpecError(f"space.resolution: expected an integer >= 8, got {self.resolution!r}")

    def replace(self, **changes: Any) -> "BaseSpace":
        return dataclasses.replace(self, **changes)

    def summary(self) -> dict[str, Any]:
        """The JSON row of ``archsearch spaces``."""
        return {
            "name": self.name,
            "family": self.family,
            "resolution": self.resolution,
            "budget_counts": self.budget_counts,
            "solver": self.solver,
            "default_budget": self.budget.to_text(),
            "description": self.description,
        }

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["family"] = self.family
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchSpace(BaseSpace):
    """A DeepMAD CNN template.

    Attributes:
        block: Block type of every superblock (``k1kxk1`` or ``k1dwk1``).
        strides: Stride of each superblock; their count is the superblock count.
        stem_stride: Stride of the stem conv.
        stem_kernel: Kernel of the stem conv.
        stem_widths: Range of the stem width.
        widths: Range of superblock output widths.
        kernels: Kernel sizes a superblock may use.
        bottleneck_ratio: ``b / out`` range of a superblock's inner width.
        depths: Range of superblock depths.
        first_depth_max: Maximum depth of the first superblock.
        max_width_ratio: A superblock's output width is at most this times its input width.
        channel_multiple: Every width is a multiple of this.
        rho0: Effectiveness bound (rho <= rho0).
        se: Whether blocks carry squeeze-excitation (inverted residuals only).
        in_channels: Image channels.
        penalty_skip: Superblocks left out of the depth-penalty std (DeepMAD: 2 for bottleneck, 0 for
            depthwise spaces).
        last_stage_weight: Weight alpha of the last stage in the score (DeepMAD: 8).
        shortcut: ``auto`` (a projection shortcut only where the shape changes) or ``conv``: the first
            block of every bottleneck superblock projects, as the DeepMAD reference code does; ``pool``:
            the reference's inverted residual (``StageSpec.shortcut``).
        bottleneck_rule: ``ratio`` (inner width within ``bottleneck_ratio`` of the output) or ``deepmad``:
            also at least ``smart_round(out / 10)`` (out/10 to the nearest multiple of 8, ties to the even
            multiple, at least 8), the reference mutator's repair rule (TinyNAS ``space_utils.smart_round``,
            ``super_res_k1kxk1_mutator``).
        bottleneck_grid: When not empty, the inner width is one of ``smart_round(r * out)`` for ``r`` in
            this grid (the discrete ratios of the reference k1dwk1 mutator, TinyNAS
            ``super_res_k1dwk1_mutator``, which sets ``btn = smart_round(out * ratio)``), and
            ``bottleneck_ratio`` is not read.
        head_channels: Width of the 1x1 conv + BN + ReLU after the last superblock (0: none;
            ``CNNSpec.head_channels``); fixed, not searched, as the reference mutators never touch the last
            block of the structure.
        max_layers: When not 0, the most conv layers on the main path: the stem, 3 per block and the head
            conv (the reference's ``layers`` budget, ``space_utils.__check_block_structure_info_list_valid__``).
        score: ``deepmad`` (the entropy score S, stage products) or ``madnas``: the reference's ``madnas``
            score with ``multi_block_ratio`` 0 for every stage but the last, ``alpha_last (E + log C_last)``
            with ``E`` the cumulative entropy of every block up to the head and ``C_last`` the last stage's
            width (TinyNAS ``scores/compute_madnas.py``); no depth penalty (the reference subtracts it only
            from the ``deepmad`` score).
    """

    family: ClassVar[str] = "cnn"
    solver: ClassVar[str] = "deepmad-bnb"
    block: str = "k1kxk1"
    strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stem_stride: int = 2
    stem_kernel: int = 3
    stem_widths: tuple[int, int] = (16, 64)
    widths: tuple[int, int] = (16, 2048)
    kernels: tuple[int, ...] = (3, 5)
    bottleneck_ratio: tuple[float, float] = (1 / 12, 1.0)
    depths: tuple[int, int] = (1, 30)
    first_depth_max: int = 3
    max_width_ratio: float = 4.0
    channel_multiple: int = 8
    rho0: float = 0.3
    se: bool = False
    in_channels: int = 3
    penalty_skip: int = 2
    last_stage_weight: float = 8.0
    shortcut: str = "auto"
    bottleneck_rule: str = "ratio"
    bottleneck_grid: tuple[float, ...] = ()
    head_channels: int = 0
    max_layers: int = 0
    score: str = "deepmad"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "bottleneck_grid", tuple(sorted(float(r) for r in self.bottleneck_grid)))
        if any(not (0 < r <= 64) for r in self.bottleneck_grid):
            raise SpecError(f"space.bottleneck_grid: expected ratios in (0, 64], got {self.bottleneck_grid!r}")
        if not isinstance(self.head_channels, int) or self.head_channels < 0 or self.head_channels % self.channel_multiple:
            raise SpecError(f"space.head_channels: expected 0 or a positive multiple of {self.channel_multiple}, "
                            f"got {self.head_channels!r}")
        if not isinstance(self.max_layers, int) or self.max_layers < 0:
            raise SpecError(f"space.max_layers: expected 0 (no limit) or a positive integer, got {self.max_layers!r}")
        if self.score not in ("deepmad", "madnas"):
            raise SpecError(f"space.score: expected 'deepmad' or 'madnas', got {self.score!r}")
        if (self.shortcut not in ("auto", "conv", "pool") or (self.shortcut == "conv" and self.block != "k1kxk1")
                or (self.shortcut == "pool" and self.block != "k1dwk1")):
            raise SpecError(f"space.shortcut: expected 'auto', 'conv' for the k1kxk1 block or 'pool' for the k1dwk1 block, "
                            f"got {self.shortcut!r}")
        if self.bottleneck_rule not in ("ratio", "deepmad"):
            raise SpecError(f"space.bottleneck_rule: expected 'ratio' or 'deepmad', got {self.bottleneck_rule!r}")
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(self, "kernels", tuple(sorted(self.kernels)))
        if self.block not in _SEARCHABLE_BLOCKS:  # the DeepMAD program knows these two; 'basic' specs are built, not searched
            raise SpecError(f"space.block: expected one of {list(_SEARCHABLE_BLOCKS)}, got {self.block!r}")
        if not self.strides or any(s not in (1, 2) for s in self.strides):
            raise SpecError(f"space.strides: expected a non-empty list of 1s and 2s, got {self.strides!r}")
        if not self.kernels or any(k not in (1, 3, 5, 7) for k in self.kernels):
            raise SpecError(f"space.kernels: expected kernels from [1, 3, 5, 7], got {self.kernels!r}")
        m = self.channel_multiple
        for field in ("stem_widths", "widths"):
            lo, hi = getattr(self, field)
            if not (0 < lo <= hi) or lo % m or hi % m:
                raise SpecError(f"space.{field}: expected 0 < lo <= hi, both multiples of {m}, got {(lo, hi)!r}")
        lo, hi = self.depths
        if not (1 <= lo <= hi):
            raise SpecError(f"space.depths: expected 1 <= lo <= hi, got {self.depths!r}")
        if not (lo <= self.first_depth_max):
            raise SpecError(f"space.first_depth_max: expected >= {lo}, got {self.first_depth_max!r}")
        rlo, rhi = self.bottleneck_ratio
        if not (0 < rlo <= rhi):
            raise SpecError(f"space.bottleneck_ratio: expected 0 < lo <= hi, got {self.bottleneck_ratio!r}")
        if not (0 < self.rho0 <= 100):
            raise SpecError(f"space.rho0: expected a number in (0, 100], got {self.rho0!r}")
        if self.max_width_ratio < 1:
            raise SpecError(f"space.max_width_ratio: expected >= 1, got {self.max_width_ratio!r}")
        if self.se and self.block != "k1dwk1":
            raise SpecError("space.se: squeeze-excitation is only offered for the k1dwk1 block")

    @property
    def n_superblocks(self) -> int:
        return len(self.strides)

    def inner_widths(self, out: int) -> tuple[int, ...]:
        """The inner widths a ``bottleneck_grid`` allows at output width ``out`` (sorted; empty without a grid)."""
        return _grid_inner_widths(out, self.bottleneck_grid, self.channel_multiple)

    def max_inner_ratio(self) -> float:
        """The largest ``b / out`` of any design of the space (a valid upper bound for relaxations)."""
        return _inner_ratio_ends(self.widths, self.channel_multiple, self.bottleneck_ratio, self.bottleneck_rule,
                                 self.bottleneck_grid)[1]

    def min_inner_ratio(self) -> float:
        """The least ``b / out`` of any design of the space (a valid lower bound for relaxations)."""
        return _inner_ratio_ends(self.widths, self.channel_multiple, self.bottleneck_ratio, self.bottleneck_rule,
                                 self.bottleneck_grid)[0]

    def summary(self) -> dict[str, Any]:
        row = super().summary()
        row.update(block=self.block, superblocks=len(self.strides), rho0=self.rho0)
        return row


@functools.lru_cache(maxsize=256)
def _inner_ratio_ends(widths: tuple[int, int], m: int, ratio: tuple[float, float], rule: str,
                      grid: tuple[float, ...]) -> tuple[float, float]:
    """The least and largest ``b / out`` over the output widths of a space (:meth:`SearchSpace.min_inner_ratio`,
    :meth:`SearchSpace.max_inner_ratio`). A scan of every width, which the branch and bound asked for several
    times per node (1 s of a 15 s R50 solve's CPU before this cache); spaces are immutable, so it is kept."""
    outs = range(widths[0], widths[1] + 1, m)
    if grid:
        inner = [_grid_inner_widths(c, grid, m) for c in outs]
        return min(b[0] / c for b, c in zip(inner, outs)), max(b[-1] / c for b, c in zip(inner, outs))
    lo = ratio[0]
    if rule == "deepmad":
        lo = max(lo, min(deepmad_smart_round(c / 10) / c for c in outs))
    return lo, ratio[1]


def _grid_inner_widths(out: int, grid: tuple[float, ...], m: int) -> tuple[int, ...]:
    """The inner widths a ratio grid allows at output width ``out``: each ratio times ``out``, smart-rounded
    to the multiple ``m`` (:meth:`SearchSpace.inner_widths`), sorted, without repeats."""
    return tuple(sorted({deepmad_smart_round(r * out, m) for r in grid}))


def deepmad_smart_round(x: float, base: int = 8) -> int:
    """``x`` to the nearest multiple of ``base`` (ties to the even multiple, Python's ``round``), at least
    ``base``: the DeepMAD reference code's rounding of channel counts (TinyNAS ``space_utils.smart_round``)."""
    return max(base, round(x / base) * base)


def register_space(space: BaseSpace | Callable[[], BaseSpace]) -> Any:
    """Registers a space (or a zero-argument factory of one, as a decorator); raises on duplicates."""
    obj = space() if callable(space) and not isinstance(space, BaseSpace) else space
    if not isinstance(obj, BaseSpace):
        raise TypeError(f"register_space expects a BaseSpace, got {type(obj).__name__}")
    if obj.name in _SPACES:
        raise ValueError(f"space {obj.name!r} is already registered")
    _SPACES[obj.name] = obj
    return space


def list_spaces() -> list[str]:
    _load_builtin()
    return sorted(_SPACES)


def get_space(name: str) -> BaseSpace:
    _load_builtin()
    if name not in _SPACES:
        raise UnknownNameError(f"space {name!r} is not registered{did_you_mean(name, _SPACES)}; known spaces: {sorted(_SPACES)}")
    return _SPACES[name]


# modules whose import registers the built-in spaces (one line per family)
_BUILTIN = (
    "archsearch.space.templates",
    "archsearch.space.vit_templates",
    "archsearch.space.nvit_templates",
    "archsearch.space.stvit_templates",
    "archsearch.space.tinyvit_templates",
    "archsearch.space.mci_templates",
)


def _load_builtin() -> None:
    import importlib

    for module in _BUILTIN:
        importlib.import_module(module)
