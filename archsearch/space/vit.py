"""Heterogeneous Vision Transformer specs: one embedding width, per-block attention and MLP dims.

The structures are those NViT prunes (Yang et al., "Global Vision Transformer Pruning with
Hessian-Aware Saliency", CVPR 2023): a global embedding width EMB and, per block, the number of
heads H, the query/key width per head, the value width per head and the MLP hidden width. Q, K and V
are head-aligned: the query projection has ``H * qk_dim`` outputs, the value projection
``H * v_dim``, and the output projection maps ``H * v_dim`` back to EMB.

A uniform DeiT/ViT (Touvron et al., ICML 2021) is the special case of equal blocks with
``qk_dim = v_dim = EMB / H`` and ``mlp_dim = 4 EMB``: :meth:`ViTSpec.uniform` builds it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from archsearch.errors import SpecError
from archsearch.space.base import MAX_CLASSES, ArchSpec, check_int, register_family

__all__ = ["ViTBlockSpec", "ViTSpec", "DEIT"]

MAX_DIM = 1 << 16


@dataclasses.dataclass(frozen=True)
class ViTBlockSpec:
    """One transformer block (pre-norm attention, then pre-norm MLP, both residual).

    Attributes:
        heads: Attention heads H.
        qk_dim: Query/key width per head.
        v_dim: Value width per head (the output projection reads ``heads * v_dim``).
        mlp_dim: Hidden width of the MLP.
        scale: Attention-logit scale; ``None`` (the default) means ``qk_dim ** -0.5``. A pruned block
            keeps the scale of the block it was cut from (NViT prunes QK dims without rescaling), so
            its outputs equal the gated model's.
    """

    heads: int
    qk_dim: int
    v_dim: int
    mlp_dim: int
    scale: float | None = None

    def __post_init__(self) -> None:
        check_int("vit.block", "heads", self.heads, 1, 1024)
        check_int("vit.block", "qk_dim", self.qk_dim, 1, MAX_DIM)
        check_int("vit.block", "v_dim", self.v_dim, 1, MAX_DIM)
        check_int("vit.block", "mlp_dim", self.mlp_dim, 1, MAX_DIM)
        if self.scale is not None:
            ok = isinstance(self.scale, (int, float)) and not isinstance(self.scale, bool) and math.isfinite(self.scale)
            if not ok or not 0 < self.scale <= 1e3:
                raise SpecError(f"vit.block.scale: expected null or a number in (0, 1000], got {self.scale!r}")
            object.__setattr__(self, "scale", float(self.scale))

    @property
    def attn_scale(self) -> float:
        """The scale the attention applies: ``scale``, or ``qk_dim ** -0.5`` when unset."""
        return self.qk_dim ** -0.5 if self.scale is None else self.scale


@register_family("vit")
@dataclasses.dataclass(frozen=True)
class ViTSpec(ArchSpec):
    """A (possibly heterogeneous) ViT: patch embedding, blocks, final LayerNorm, linear head.

    Attributes:
        embed_dim: Embedding width EMB shared by every block.
        blocks: The transformer blocks in order.
        patch_size: Side of the square, non-overlapping patches (the resolution must be a multiple).
        resolution: Input side length in pixels.
        in_channels: Image channels.
        class_token: Prepend a class token and classify from it (DeiT); otherwise average the tokens.
        num_classes: Classifier outputs (0: no classifier).
        name: Free-form label.
    """

    family: ClassVar[str]
    embed_dim: int
    blocks: tuple[ViTBlockSpec, ...]
    patch_size: int = 16
    resolution: int = 224
    in_channels: int = 3
    class_token: bool = True
    num_classes: int = 1000
    name: str = ""

    def __post_init__(self) -> None:
        check_int("vit", "embed_dim", self.embed_dim, 1, MAX_DIM)
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks or not all(isinstance(b, ViTBlockSpec) for b in self.blocks):
            raise SpecError("vit.blocks: expected a non-empty sequence of ViTBlockSpec")
        check_int("vit", "patch_size", self.patch_size, 1, 256)
        check_int("vit", "resolution", self.resolution, self.patch_size, 4096)
        if self.resolution % self.patch_size:
            raise SpecError(f"vit.resolution: expected a multiple of patch_size {self.patch_size}, got {self.resolution}")
        check_int("vit", "in_channels", self.in_channels, 1, 64)
        if not isinstance(self.class_token, bool):
            raise SpecError(f"vit.class_token: expected true or false, got {self.class_token!r}")
        check_int("vit", "num_classes", self.num_classes, 0, MAX_CLASSES)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def num_patches(self) -> int:
        return (self.resolution // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Tokens every block sees: the patches, plus the class token when there is one."""
        return self.num_patches + int(self.class_token)

    @classmethod
    def uniform(cls, *, embed_dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, patch_size: int = 16,
                resolution: int = 224, num_classes: int = 1000, class_token: bool = True, name: str = "") -> "ViTSpec":
        """A uniform ViT: every block has ``heads`` heads of width ``embed_dim / heads`` and an MLP of
        ``mlp_ratio * embed_dim``."""
        check_int("vit", "depth", depth, 1, 1024)
        check_int("vit", "heads", heads, 1, 1024)
        if embed_dim % heads:
            raise SpecError(f"vit.embed_dim: expected a multiple of heads {heads}, got {embed_dim}")
        block = ViTBlockSpec(heads, embed_dim // heads, embed_dim // heads, int(mlp_ratio * embed_dim))
        return cls(embed_dim, (block,) * depth, patch_size, resolution, 3, class_token, num_classes, name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; a block's ``scale`` appears only when set, so specs without one read as before."""
        data = super().to_dict()
        for block in data["blocks"]:
            if block.get("scale") is None:
                block.pop("scale", None)
        return data

    def layout(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        scaled = any(b.scale is not None for b in self.blocks)
        rows = [(i + 1, b.heads, b.qk_dim, b.v_dim, b.mlp_dim) + ((f"{b.attn_scale:.4g}",) if scaled else ())
                for i, b in enumerate(self.blocks)]
        title = (f"{self.name or 'vit'} (EMB {self.embed_dim}, patch {self.patch_size}, {self.resolution} px, "
                 f"{self.num_classes} classes)")
        return title, ["block", "heads", "qk/head", "v/head", "mlp"] + (["scale"] if scaled else []), rows


# DeiT (Touvron et al., "Training data-efficient image transformers", ICML 2021): 12 blocks, patch 16
DEIT = {
    "deit_tiny": dict(embed_dim=192, depth=12, heads=3),
    "deit_small": dict(embed_dim=384, depth=12, heads=6),
    "deit_base": dict(embed_dim=768, depth=12, heads=12),
}
