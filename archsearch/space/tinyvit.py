"""TinyViT specs: a hierarchical vision transformer with an MBConv stage and window-attention stages.

The family (Wu et al., "TinyViT: Fast Pretraining Distillation for Small Vision Transformers",
ECCV 2022; timm's ``tiny_vit_*``):

* stem: two 3x3 stride-2 Conv-BN (``in -> dim/2 -> dim``) with GELU between them (stride 4);
* stage 1: ``depth`` MBConv blocks (1x1 expand, depthwise 3x3, 1x1 project; BN after each conv,
  GELU after each, the last one after the residual sum);
* stages 2..n: patch merging (1x1 Conv-BN, GELU, depthwise 3x3 stride-2 Conv-BN, GELU, 1x1 Conv-BN)
  then ``depth`` blocks ``x + WindowAttention(x)``, a depthwise ``local_conv_size`` Conv-BN,
  ``x + MLP(x)``; the attention pre-normalises, uses heads of ``head_dim`` channels and a learned
  relative position bias per head and window offset; windows are zero-padded at the border when the
  map side is not a multiple of the window;
* head: global average pooling, LayerNorm and a linear classifier.

The per-stage tuples follow timm's ``TinyVit`` arguments one to one (``embed_dims``, ``depths``,
``num_heads``, ``window_sizes``), so the first stage's heads and window are carried but unused by
its MBConv blocks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from archsearch.errors import SpecError
from archsearch.space.base import MAX_CLASSES, ArchSpec, check_int, register_family

__all__ = ["TinyViTSpec", "TINYVIT_5M", "TINYVIT_11M", "TINYVIT_21M", "conv_side", "window_count"]


def conv_side(size: int) -> int:
    """Output side of a 3x3 stride-2 conv with padding 1: ``ceil(size / 2)``."""
    return -(-size // 2)


def window_count(side: int, window: int) -> int:
    """Windows per map side after zero-padding the side up to a multiple of the window."""
    return -(-side // window)


def _int_tuple(owner: str, field: str, value: Any, n: int | None) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not value:
        raise SpecError(f"{owner}.{field}: expected a non-empty list of integers, got {value!r}")
    out = tuple(value)
    if n is not None and len(out) != n:
        raise SpecError(f"{owner}.{field}: expected {n} entries (one per stage), got {len(out)}: {value!r}")
    return out


@register_family("tinyvit")
@dataclasses.dataclass(frozen=True)
class TinyViTSpec(ArchSpec):
    """A TinyViT: stem, one MBConv stage, window-attention stages, pooled LayerNorm + linear head.

    Attributes:
        embed_dims: Channels of each stage (the first is the MBConv stage), multiples of ``head_dim``.
        depths: Blocks per stage.
        num_heads: Attention heads per stage; ``num_heads[i] * head_dim == embed_dims[i]`` (the
            first stage's entry is unused by its MBConv blocks, kept to mirror timm's arguments).
        window_sizes: Attention window side per stage (the first entry is unused, as in timm).
        head_dim: Channels per attention head (32 throughout the published family).
        mlp_ratio: MLP hidden width over the embedding width (hidden = ``int(dim * mlp_ratio)``).
        mbconv_expand_ratio: MBConv inner width over its width (inner = ``int(dim * ratio)``).
        local_conv_size: Kernel of the depthwise conv between attention and MLP (odd).
        resolution: Input side length in pixels.
        in_channels: Image channels.
        num_classes: Classifier outputs (0: no classifier).
        name: Free-form label.
    """

    family: ClassVar[str]
    embed_dims: tuple[int, ...]
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = ()
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    head_dim: int = 32
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    resolution: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    name: str = ""

    def __post_init__(self) -> None:
        dims = _int_tuple("tinyvit", "embed_dims", self.embed_dims, None)
        n = len(dims)
        if n < 2:
            raise SpecError(f"tinyvit.embed_dims: expected at least 2 stages (MBConv + attention), got {n}")
        check_int("tinyvit", "head_dim", self.head_dim, 1, 1024)
        heads_given = self.num_heads if self.num_heads != () else tuple(
            d // self.head_dim if isinstance(d, int) else d for d in dims)
        object.__setattr__(self, "embed_dims", dims)
        object.__setattr__(self, "depths", _int_tuple("tinyvit", "depths", self.depths, n))
        object.__setattr__(self, "num_heads", _int_tuple("tinyvit", "num_heads", heads_given, n))
        object.__setattr__(self, "window_sizes", _int_tuple("tinyvit", "window_sizes", self.window_sizes, n))
        for i, d in enumerate(dims):
            check_int("tinyvit", f"embed_dims[{i}]", d, self.head_dim, 16384, multiple=self.head_dim)
        for i, depth in enumerate(self.depths):
            check_int("tinyvit", f"depths[{i}]", depth, 1, 256)
        for i, (h, d) in enumerate(zip(self.num_heads, dims)):
            check_int("tinyvit", f"num_heads[{i}]", h, 1, 1024)
            if h * self.head_dim != d:
                raise SpecError(f"tinyvit.num_heads[{i}]: expected embed_dims[{i}] / head_dim = {d // self.head_dim} "
                                f"(head_dim {self.head_dim}), got {h!r}")
        for i, w in enumerate(self.window_sizes):
            check_int("tinyvit", f"window_sizes[{i}]", w, 1, 64)
        for field in ("mlp_ratio", "mbconv_expand_ratio"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 16) or not math.isfinite(value):
                raise SpecError(f"tinyvit.{field}: expected a number in (0, 16], got {value!r}")
            object.__setattr__(self, field, float(value))
        for i, d in enumerate(dims):
            if int(d * self.mbconv_expand_ratio) < 1 or int(d * self.mlp_ratio) < 1:
                raise SpecError(f"tinyvit.embed_dims[{i}]: width {d} times the MLP/MBConv ratio rounds down to 0")
        check_int("tinyvit", "local_conv_size", self.local_conv_size, 1, 15)
        if self.local_conv_size % 2 == 0:
            raise SpecError(f"tinyvit.local_conv_size: expected an odd kernel in [1, 15], got {self.local_conv_size!r}")
        check_int("tinyvit", "resolution", self.resolution, 8, 4096)
        check_int("tinyvit", "in_channels", self.in_channels, 1, 64)
        check_int("tinyvit", "num_classes", self.num_classes, 0, MAX_CLASSES)

    @property
    def n_stages(self) -> int:
        return len(self.embed_dims)

    @property
    def sides(self) -> tuple[int, ...]:
        """Feature-map side of each stage (stem: /4; every later stage halves, rounding up)."""
        side = conv_side(conv_side(self.resolution))
        out = [side]
        for _ in range(1, self.n_stages):
            side = conv_side(side)
            out.append(side)
        return tuple(out)

    @property
    def num_features(self) -> int:
        return self.embed_dims[-1]

    def timm_kwargs(self) -> dict[str, Any]:
        """The arguments of timm's ``TinyVit`` that build the same architecture."""
        return dict(
            in_chans=self.in_channels, num_classes=self.num_classes, embed_dims=list(self.embed_dims),
            depths=list(self.depths), num_heads=list(self.num_heads), window_sizes=list(self.window_sizes),
            mlp_ratio=self.mlp_ratio, mbconv_expand_ratio=self.mbconv_expand_ratio,
            local_conv_size=self.local_conv_size,
        )

    def layout(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        rows: list[tuple[Any, ...]] = [("stem", "conv3x3 s2 x2", self.in_channels, self.embed_dims[0], "-", "-",
                                        self.sides[0], 1)]
        for i, (d, depth, h, w, side) in enumerate(zip(self.embed_dims, self.depths, self.num_heads, self.window_sizes,
                                                       self.sides)):
            if i == 0:
                rows.append((1, f"mbconv x{self.mbconv_expand_ratio:g}", d, d, "-", "-", side, depth))
            else:
                rows.append((i + 1, "merge+attn", self.embed_dims[i - 1], d, h, w, side, depth))
        return (f"{self.name or 'tinyvit'} ({self.resolution} px, {self.num_classes} classes, mlp x{self.mlp_ratio:g})",
                ["stage", "block", "in", "out", "heads", "window", "side", "depth"], rows)


# The published family (Wu et al., ECCV 2022, Table 1; timm ``tiny_vit_{5m,11m,21m}_224``).
TINYVIT_5M = TinyViTSpec(embed_dims=(64, 128, 160, 320), num_heads=(2, 4, 5, 10), name="tinyvit-5m")
TINYVIT_11M = TinyViTSpec(embed_dims=(64, 128, 256, 448), num_heads=(2, 4, 8, 14), name="tinyvit-11m")
TINYVIT_21M = TinyViTSpec(embed_dims=(96, 192, 384, 576), num_heads=(3, 6, 12, 18), name="tinyvit-21m")
