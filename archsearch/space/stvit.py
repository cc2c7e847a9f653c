"""Semantic-token ViT specs (STViT).

Chang et al., "Making Vision Transformers Efficient from A Token Sparsification View", CVPR 2023:
after ``semantic_layer`` ordinary layers on the N image tokens, the patch grid is pooled to
``sqrt(M) x sqrt(M)`` semantic tokens (the cluster centres' initialisation), ``semantic_layers``
semantic-token layers refine them with the M semantic tokens as queries and the image tokens as
keys/values, and the remaining layers run on the M semantic tokens only. STViT-R's optional
recovery block lets the image tokens attend to the final semantic tokens (N queries over M
keys/values) for dense outputs.

The dims are DeiT's (Touvron et al., ICML 2021): uniform blocks of ``num_heads`` heads of width
``embed_dim / num_heads`` and an MLP of ``int(mlp_ratio * embed_dim)``.

Conventions of this implementation (the cost model and the built module share them):

* ``depth`` counts every layer: ``semantic_layer`` image-token layers, ``semantic_layers``
  semantic-token layers, then ``depth - semantic_layer - semantic_layers`` layers on the semantic
  tokens (DeiT-S in the paper: 4 + 2 + 6 = 12).
* ``num_semantic`` M must be a perfect square ``g * g`` with ``1 <= g <= resolution / patch_size``:
  the initial semantic tokens are an adaptive average pooling of the ``G x G`` patch grid to
  ``g x g`` (windows overlap when ``g`` does not divide ``G``; pooling is not a product and costs no MACs).
* The class token (``class_token=True``) is kept alongside the tokens throughout: it is a token
  of every image-token layer, the semantic-token layers update it with the semantic tokens (it is
  one more query, M + 1 in all, and one more key/value, N + 1, since it attends over the same token
  set as in the earlier layers), the later layers see M + 1 tokens and the classifier reads it.
  Without a class token the classifier reads the average of the final tokens.
* The recovery block's queries are the N image tokens as they left layer ``semantic_layer``, its
  keys/values the final semantic tokens (with the class token, M + 1); its output (the class token
  followed by the N recovered image tokens) replaces the semantic tokens as the features, so
  ``forward_features`` returns a dense token map.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from archsearch.errors import SpecError
from archsearch.space.base import MAX_CLASSES, ArchSpec, check_int, register_family
from archsearch.space.search_space import BaseSpace
from archsearch.space.vit import DEIT, MAX_DIM

__all__ = ["STViTSpec", "STViTSpace", "STVIT_DEIT_LAYOUT"]

# The paper's DeiT layout (PAPERS.md): 4 layers on 196 tokens, 2 semantic-token layers, 6 layers on 16 tokens.
STVIT_DEIT_LAYOUT = dict(semantic_layer=4, num_semantic=16, semantic_layers=2)


@register_family("stvit")
@dataclasses.dataclass(frozen=True)
class STViTSpec(ArchSpec):
    """A DeiT-like ViT whose later layers run on a few semantic tokens.

    Attributes:
        embed_dim: Token width C.
        depth: All layers: image-token, semantic-token and semantic layers together.
        num_heads: Attention heads (``embed_dim`` must be a multiple).
        mlp_ratio: MLP hidden width over ``embed_dim`` (the hidden width is ``int(mlp_ratio * embed_dim)``).
        semantic_layer: Image-token layers l before the semantic tokens are formed (0: right after
            the patch embedding).
        num_semantic: Semantic tokens M, a perfect square (the pooled grid is ``sqrt(M)`` a side).
        semantic_layers: Semantic-token layers (M queries over the N image tokens).
        recovery: Add the recovery block (N image-token queries over the M semantic tokens).
        patch_size: Side of the square, non-overlapping patches.
        resolution: Input side in pixels (a multiple of ``patch_size``).
        in_channels: Image channels.
        class_token: Keep a class token alongside the tokens and classify from it; otherwise
            classify from the average token.
        num_classes: Classifier outputs (0: no classifier).
        name: Free-form label.
    """

    family: ClassVar[str]
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    semantic_layer: int = 4
    num_semantic: int = 16
    semantic_layers: int = 2
    recovery: bool = False
    patch_size: int = 16
    resolution: int = 224
    in_channels: int = 3
    class_token: bool = True
    num_classes: int = 1000
    name: str = ""

    def __post_init__(self) -> None:
        check_int("stvit", "embed_dim", self.embed_dim, 1, MAX_DIM)
        check_int("stvit", "depth", self.depth, 1, 1024)
        check_int("stvit", "num_heads", self.num_heads, 1, self.embed_dim)
        if self.embed_dim % self.num_heads:
            raise SpecError(f"stvit.embed_dim: expected a multiple of num_heads {self.num_heads}, got {self.embed_dim}")
        ratio = self.mlp_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (0 < ratio <= 64) or not math.isfinite(ratio):
            raise SpecError(f"stvit.mlp_ratio: expected a number in (0, 64], got {ratio!r}")
        object.__setattr__(self, "mlp_ratio", float(ratio))
        if self.mlp_dim < 1:
            raise SpecError(f"stvit.mlp_ratio: int(mlp_ratio * embed_dim) must be >= 1, got {ratio!r} * {self.embed_dim}")
        check_int("stvit", "semantic_layers", self.semantic_layers, 1, self.depth)
        check_int("stvit", "semantic_layer", self.semantic_layer, 0, self.depth - self.semantic_layers)
        check_int("stvit", "patch_size", self.patch_size, 1, 256)
        check_int("stvit", "resolution", self.resolution, self.patch_size, 4096)
        if self.resolution % self.patch_size:
            raise SpecError(f"stvit.resolution: expected a multiple of patch_size {self.patch_size}, got {self.resolution}")
        grid = self.grid
        check_int("stvit", "num_semantic", self.num_semantic, 1, grid * grid)
        if math.isqrt(self.num_semantic) ** 2 != self.num_semantic:
            squares = [g * g for g in range(1, min(grid, 6) + 1)]
            raise SpecError(f"stvit.num_semantic: expected a perfect square in [1, {grid * grid}] "
                            f"({', '.join(map(str, squares))}, ...), got {self.num_semantic}")
        for field in ("recovery", "class_token"):
            if not isinstance(getattr(self, field), bool):
                raise SpecError(f"stvit.{field}: expected true or false, got {getattr(self, field)!r}")
        check_int("stvit", "in_channels", self.in_channels, 1, 64)
        check_int("stvit", "num_classes", self.num_classes, 0, MAX_CLASSES)

    @property
    def grid(self) -> int:
        """Side of the patch grid."""
        return self.resolution // self.patch_size

    @property
    def semantic_grid(self) -> int:
        """Side of the pooled semantic-token grid."""
        return math.isqrt(self.num_semantic)

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_dim(self) -> int:
        return int(self.mlp_ratio * self.embed_dim)

    @property
    def image_tokens(self) -> int:
        """Tokens of the image-token layers: the patches, plus the class token when there is one."""
        return self.num_patches + int(self.class_token)

    @property
    def semantic_tokens(self) -> int:
        """Tokens after pooling: the M semantic tokens, plus the class token when there is one."""
        return self.num_semantic + int(self.class_token)

    @property
    def tail_layers(self) -> int:
        """Layers that run on the semantic tokens only."""
        return self.depth - self.semantic_layer - self.semantic_layers

    @classmethod
    def from_deit(cls, variant: str = "deit_small", **fields: Any) -> "STViTSpec":
        """The STViT of a DeiT variant (``deit_tiny``, ``deit_small``, ``deit_base``): the paper's
        layout (4 + 2 semantic + 6 layers, 16 semantic tokens) unless ``fields`` say otherwise."""
        if variant not in DEIT:
            raise SpecError(f"stvit.from_deit: unknown variant {variant!r}; expected one of {sorted(DEIT)}")
        dims = DEIT[variant]
        base = dict(embed_dim=dims["embed_dim"], depth=dims["depth"], num_heads=dims["heads"], **STVIT_DEIT_LAYOUT,
                    name=f"stvit_{variant.removeprefix('deit_')}")
        return cls(**{**base, **fields})

    def layout(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        c = int(self.class_token)
        n, m = self.num_patches, self.num_semantic
        rows: list[tuple[Any, ...]] = []
        if self.semantic_layer:
            rows.append((f"1-{self.semantic_layer}", "image-token", self.semantic_layer, f"{n}+{c}", f"{n}+{c}"))
        first = self.semantic_layer + 1
        rows.append((f"{first}-{first + self.semantic_layers - 1}", f"semantic (pool {self.semantic_grid}x{self.semantic_grid})",
                     self.semantic_layers, f"{m}+{c}", f"{n}+{c}"))
        if self.tail_layers:
            rows.append((f"{first + self.semantic_layers}-{self.depth}", "semantic-only", self.tail_layers,
                         f"{m}+{c}", f"{m}+{c}"))
        if self.recovery:
            rows.append(("recovery", "image <- semantic", 1, f"{n}", f"{m}+{c}"))
        title = (f"{self.name or 'stvit'} (EMB {self.embed_dim}, {self.num_heads} heads, MLP {self.mlp_dim}, "
                 f"patch {self.patch_size}, {self.resolution} px, {'class token' if c else 'average'}, "
                 f"{self.num_classes} classes)")
        return title, ["layers", "kind", "count", "queries", "keys/values"], rows


@dataclasses.dataclass(frozen=True, kw_only=True)
class STViTSpace(BaseSpace):
    """An STViT program's space: DeiT-like dims of one width, and the semantic-token design variables.

    The program chooses the number of semantic-token layers S, the layer l after which the tokens
    are pooled and the number of semantic tokens M; the solver enumerates them all (the space is
    finite and small). The width is fixed because the program's objective (the attention
    interactions kept, :mod:`archsearch.objectives.stvit`) compares token designs of one width.

    Attributes:
        embed_dim: Token width (DeiT-S: 384).
        num_heads: Attention heads (DeiT-S: 6).
        depth: Layers of every design.
        mlp_ratio: MLP hidden width over the width.
        patch_size: Patch side.
        num_semantic: Semantic-token counts M to choose from, perfect squares; empty: every square
            below the number of patches at the solve's resolution.
        semantic_layers: Semantic-token layer counts to choose from.
        semantic_layer: Inclusive range of l (clipped to ``depth - S``).
        recovery: Whether every design carries the recovery block.
        class_token: Whether every design keeps a class token.
        in_channels: Image channels.
    """

    family: ClassVar[str] = "stvit"
    solver: ClassVar[str] = "stvit-enum"
    embed_dim: int = 384
    num_heads: int = 6
    depth: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    num_semantic: tuple[int, ...] = ()
    semantic_layers: tuple[int, ...] = (1, 2, 3)
    semantic_layer: tuple[int, int] = (0, 12)
    recovery: bool = False
    class_token: bool = True
    in_channels: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("num_semantic", "semantic_layers", "semantic_layer"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        object.__setattr__(self, "num_semantic", tuple(sorted(set(self.num_semantic))))
        object.__setattr__(self, "semantic_layers", tuple(sorted(set(self.semantic_layers))))
        check_int("space", "embed_dim", self.embed_dim, 1, MAX_DIM)
        check_int("space", "num_heads", self.num_heads, 1, self.embed_dim)
        if self.embed_dim % self.num_heads:
            raise SpecError(f"space.embed_dim: expected a multiple of num_heads {self.num_heads}, got {self.embed_dim}")
        check_int("space", "depth", self.depth, 1, 1024)
        check_int("space", "patch_size", self.patch_size, 1, 256)
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 or math.isqrt(m) ** 2 != m
               for m in self.num_semantic):
            raise SpecError(f"space.num_semantic: expected perfect squares (1, 4, 9, ...), got {self.num_semantic!r}")
        if not self.semantic_layers or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= self.depth
                                           for s in self.semantic_layers):
            raise SpecError(f"space.semantic_layers: expected integers in [1, {self.depth}], got {self.semantic_layers!r}")
        lo_hi = self.semantic_layer
        if (len(lo_hi) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in lo_hi)
                or not 0 <= lo_hi[0] <= lo_hi[1] or lo_hi[0] > self.depth - self.semantic_layers[0]):
            raise SpecError(f"space.semantic_layer: expected (lo, hi) with 0 <= lo <= hi and lo <= depth - "
                            f"{self.semantic_layers[0]}, got {self.semantic_layer!r}")
        ratio = self.mlp_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 64:
            raise SpecError(f"space.mlp_ratio: expected a number in (0, 64], got {ratio!r}")
        if self.resolution % self.patch_size:
            raise SpecError(f"space.resolution: expected a multiple of patch_size {self.patch_size}, got {self.resolution}")
        for field in ("recovery", "class_token"):
            if not isinstance(getattr(self, field), bool):
                raise SpecError(f"space.{field}: expected true or false, got {getattr(self, field)!r}")

    def semantic_counts(self, resolution: int | None = None) -> tuple[int, ...]:
        """The M values offered at ``resolution`` (default: the space's): those that fit the patch grid."""
        res = self.resolution if resolution is None else resolution
        n = (res // self.patch_size) ** 2
        if not self.num_semantic:
            return tuple(g * g for g in range(1, math.isqrt(n))) or (1,)
        return tuple(m for m in self.num_semantic if m <= n)

    def summary(self) -> dict[str, Any]:
        row = super().summary()
        row.update(embed_dim=self.embed_dim, depth=self.depth, semantic_layers=list(self.semantic_layers))
        return row
