"""CNN specs: a stem and a chain of superblocks (DeepMAD's search unit).

A superblock repeats one block type ``depth`` times: the first block maps ``in_channels`` to
``out_channels`` with ``stride``; the others keep ``out_channels`` at stride 1.

The stem is one kxk conv + BN + ReLU, optionally followed by the classic ResNet max-pool (3x3,
stride 2, padding 1; He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Block types (Shen et al., "DeepMAD", CVPR 2023; He et al., ResNet; Sandler et al., MobileNetV2):

* ``k1kxk1``: ResNet bottleneck, 1x1 (in -> b) -> kxk (b -> b, stride) -> 1x1 (b -> out), each conv
  followed by BN, ReLU after the first two and after the residual sum; the shortcut is a strided
  1x1 conv + BN when the shape changes (``shortcut="auto"``) or, with ``shortcut="conv"``, on the
  first block of the superblock whatever its shape, as DeepMAD's reference code builds it.
* ``k1dwk1``: MobileNetV2 inverted residual, 1x1 expand (in -> b) -> depthwise kxk (stride) ->
  [squeeze-excitation] -> 1x1 project (b -> out), BN after each conv, ReLU after the first two;
  an identity residual when stride is 1 and in == out. With ``shortcut="pool"``, DeepMAD's reference
  inverted residual (TinyNAS ``ResK1DWK1``): the identity residual whenever in == out, through a 2x2
  average pool at stride 2, and a ReLU after the sum (or after the projecting conv where there is none).
* ``basic``: ResNet basic block (ResNet-18/34), kxk (in -> b, stride) -> kxk (b -> out), each conv
  followed by BN, ReLU after the first and after the residual sum; the shortcut is a strided 1x1
  conv + BN when the shape changes (timm's default downsample), or on the first block of the
  superblock with ``shortcut="conv"``. The DeepMAD solvers do not search it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from archsearch.errors import SpecError, did_you_mean
from archsearch.space.base import MAX_CLASSES, ArchSpec, check_int, register_family

__all__ = ["BLOCK_TYPES", "SHORTCUTS", "StemSpec", "StageSpec", "CNNSpec", "conv_out", "pool_out", "se_channels"]

BLOCK_TYPES = ("k1kxk1", "k1dwk1", "basic")
SHORTCUTS = ("auto", "conv", "pool")


def conv_out(size: int, stride: int) -> int:
    """Output side of a 'same'-padded odd-kernel conv: ceil(size / stride)."""
    return -(-size // stride)


def pool_out(size: int) -> int:
    """Output side of the stem's 3x3 stride-2 max-pool with padding 1 (``ceil_mode=False``).

    ``floor((size + 2 - 3) / 2) + 1``, torch's formula, which equals ``ceil(size / 2)`` for every side.
    """
    return (size + 2 * 1 - 3) // 2 + 1


def se_channels(bottleneck: int) -> int:
    """Squeeze-excitation reduction width: a quarter of the block width, rounded to 8 (at least 8)."""
    return max(8, int(bottleneck / 4 + 4) // 8 * 8)


@dataclasses.dataclass(frozen=True)
class StemSpec:
    """The stem: one kxk conv (stride ``stride``) + BN + ReLU, then optionally a max-pool.

    Attributes:
        out_channels: Width of the stem conv.
        in_channels: Image channels.
        kernel: Kernel of the stem conv.
        stride: Stride of the stem conv.
        pool: Whether a 3x3 stride-2 max-pool with padding 1 follows (the classic ResNet stem,
            He et al., CVPR 2016); it halves the side (:func:`pool_out`) and has no parameters.
    """

    out_channels: int
    in_channels: int = 3
    kernel: int = 3
    stride: int = 2
    pool: bool = False

    def __post_init__(self) -> None:
        check_int("stem", "in_channels", self.in_channels, 1, 64)
        check_int("stem", "out_channels", self.out_channels, 1, 4096)
        if self.kernel not in (1, 3, 5, 7):
            raise SpecError(f"stem.kernel: expected one of [1, 3, 5, 7], got {self.kernel!r}")
        if self.stride not in (1, 2, 4):
            raise SpecError(f"stem.stride: expected one of [1, 2, 4], got {self.stride!r}")
        if not isinstance(self.pool, bool):
            raise SpecError(f"stem.pool: expected true or false, got {self.pool!r}")

    @property
    def reduction(self) -> int:
        """Total stride of the stem (the conv's, times 2 with the max-pool)."""
        return self.stride * (2 if self.pool else 1)

    def out_side(self, resolution: int) -> int:
        """Side of the stem's output map for a ``resolution`` input (after the max-pool, if any)."""
        side = conv_out(resolution, self.stride)
        return pool_out(side) if self.pool else side


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One superblock: ``depth`` blocks of type ``block``.

    Attributes:
        block: One of :data:`BLOCK_TYPES`.
        in_channels: Input width of the first block.
        out_channels: Output width of every block.
        bottleneck: Inner width b of every block.
        kernel: Kernel of the kxk (or depthwise) conv.
        stride: Stride of the first block (the others have 1).
        depth: Number of blocks.
        se: Squeeze-excitation after the depthwise conv (``k1dwk1`` only).
        shortcut: Residual path of the first block of a ``k1kxk1`` or ``basic`` superblock:
            ``"auto"``, a 1x1 conv + BN projection only when the stride is not 1 or the width
            changes, else identity; ``"conv"``, the projection always, as DeepMAD's reference code
            builds its bottleneck superblocks (TinyNAS, ``BaseSuperBlock`` sets ``force_resproj`` on
            the first ``ResK1KXK1``). Later blocks keep the identity either way. ``k1dwk1`` takes
            ``"auto"`` (MobileNetV2's: an identity residual at stride 1 and equal widths) or ``"pool"``,
            for every block of the superblock: the reference's ``ResK1DWK1``, which never projects but
            keeps the identity whenever the width is kept, 2x2 average-pooled at stride 2, and applies a
            ReLU after the sum.
    """

    block: str
    in_channels: int
    out_channels: int
    bottleneck: int
    kernel: int = 3
    stride: int = 1
    depth: int = 1
    se: bool = False
    shortcut: Literal["auto", "conv", "pool"] = "auto"

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise SpecError(f"stage.block: expected one of {list(BLOCK_TYPES)}, got {self.block!r}{did_you_mean(self.block, BLOCK_TYPES)}")
        check_int("stage", "in_channels", self.in_channels, 1, 16384)
        check_int("stage", "out_channels", self.out_channels, 1, 16384)
        check_int("stage", "bottleneck", self.bottleneck, 1, 65536)
        check_int("stage", "depth", self.depth, 1, 256)
        if self.kernel not in (1, 3, 5, 7):
            raise SpecError(f"stage.kernel: expected one of [1, 3, 5, 7], got {self.kernel!r}")
        if self.stride not in (1, 2):
            raise SpecError(f"stage.stride: expected 1 or 2, got {self.stride!r}")
        if not isinstance(self.se, bool):
            raise SpecError(f"stage.se: expected true or false, got {self.se!r}")
        if self.se and self.block != "k1dwk1":
            raise SpecError(f"stage.se: squeeze-excitation is only offered for the k1dwk1 block, not {self.block!r}")
        if self.shortcut not in SHORTCUTS:
            raise SpecError(f"stage.shortcut: expected one of {list(SHORTCUTS)}, got {self.shortcut!r}{did_you_mean(self.shortcut, SHORTCUTS)}")
        if self.shortcut == "conv" and self.block == "k1dwk1":
            raise SpecError("stage.shortcut: 'conv' is offered for the k1kxk1 and basic blocks, not k1dwk1 "
                            "(DeepMAD's inverted residual never projects its shortcut); use 'auto' or 'pool'")
        if self.shortcut == "pool" and self.block != "k1dwk1":
            raise SpecError(f"stage.shortcut: 'pool' is offered for the k1dwk1 block only, not {self.block!r}; "
                            "use 'auto' or 'conv'")


@register_family("cnn")
@dataclasses.dataclass(frozen=True)
class CNNSpec(ArchSpec):
    """A CNN: stem, superblocks, an optional 1x1 head conv, global average pooling and a linear classifier.

    Attributes:
        stem: The stem conv.
        stages: Superblocks in order; each one's ``in_channels`` equals the previous ``out_channels``.
        resolution: Input side length in pixels.
        num_classes: Classifier outputs (0: no classifier).
        name: Free-form label.
        head_channels: Width of a 1x1 conv + BN + ReLU after the last superblock, before the pooling
            (0: none). MobileNetV2's final conv to 1280 channels (Sandler et al., CVPR 2018), which
            DeepMAD's reference MobileNetV2-like space keeps as its last ``ConvKXBNRELU`` (TinyNAS,
            ``configs/classification/MBV2_FLOPs.py``); part of the backbone (its costs count in the
            budgets), and the classifier's input.
    """

    family: ClassVar[str]
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    resolution: int = 224
    num_classes: int = 1000
    name: str = ""
    head_channels: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.stem, StemSpec):
            raise SpecError(f"cnn.stem: expected a StemSpec, got {type(self.stem).__name__}")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages or not all(isinstance(s, StageSpec) for s in self.stages):
            raise SpecError("cnn.stages: expected a non-empty sequence of StageSpec")
        check_int("cnn", "resolution", self.resolution, 8, 4096)
        check_int("cnn", "num_classes", self.num_classes, 0, MAX_CLASSES)
        check_int("cnn", "head_channels", self.head_channels, 0, 16384)
        prev = self.stem.out_channels
        for i, stage in enumerate(self.stages):
            if stage.in_channels != prev:
                raise SpecError(
                    f"cnn.stages[{i}].in_channels: must equal the previous output width {prev}, got {stage.in_channels}"
                )
            prev = stage.out_channels

    @property
    def out_channels(self) -> int:
        """Channels of the last feature map (the head conv's when there is one): the classifier's input."""
        return self.head_channels or self.stages[-1].out_channels

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        # A stem without the max-pool is written as before the field existed, so the JSON (and the
        # candidate keys hashed from it) of every earlier spec stay the same.
        if not self.stem.pool:
            del data["stem"]["pool"]
        # Likewise a spec without a head conv.
        if not self.head_channels:
            del data["head_channels"]
        # Likewise the default shortcut rule.
        for stage in data["stages"]:
            if stage["shortcut"] == "auto":
                del stage["shortcut"]
        return data

    def layout(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        stem = self.stem
        rows: list[tuple[Any, ...]] = [("stem", "conv+maxpool" if stem.pool else "conv", stem.in_channels, stem.out_channels, "-",
                                        stem.kernel, stem.stride, 1)]
        rows += [(i + 1, s.block + ("+se" if s.se else "") + {"conv": "+proj", "pool": "+pool"}.get(s.shortcut, ""), s.in_channels,
                  s.out_channels, s.bottleneck, s.kernel, s.stride, s.depth) for i, s in enumerate(self.stages)]
        if self.head_channels:
            rows.append(("head", "conv", self.stages[-1].out_channels, self.head_channels, "-", 1, 1, 1))
        return (f"{self.name or 'cnn'} ({self.resolution} px, {self.num_classes} classes)",
                ["stage", "block", "in", "out", "b", "k", "stride", "depth"], rows)

    @property
    def depth(self) -> int:
        return sum(s.depth for s in self.stages)
