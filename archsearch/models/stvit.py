"""Torch modules realising an :class:`~archsearch.space.STViTSpec`, registered with timm as ``archsearch_stvit``.

The semantic-token ViT of Chang et al., "Making Vision Transformers Efficient from A Token
Sparsification View", CVPR 2023, following :mod:`archsearch.cost.stvit` layer for layer (the tests
prove params and ``FlopCounterMode`` MACs equal):

* patch embedding, class token and position embedding as in DeiT (Touvron et al., ICML 2021);
* ``blocks`` holds all ``depth`` layers by their index: pre-norm self-attention blocks on the image
  tokens, then :class:`SemanticBlock` layers (the semantic tokens, initialised by adaptive average
  pooling of the patch grid, attend to the image tokens), then self-attention blocks on the
  semantic tokens. The ordinary blocks carry DeiT's parameter names and shapes (``blocks.i.attn.qkv``
  ...), so DeiT weights load into them; a semantic layer splits ``qkv`` into ``q`` and ``kv``;
* ``recovery`` (STViT-R, optional): the image tokens attend to the final semantic tokens;
* final LayerNorm, then the class token (or the token average) and a linear classifier.

Attention is computed explicitly (``q @ k^T``, softmax, ``attn @ v``) so every product is visible
to ``FlopCounterMode``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, PatchEmbed
from torch import nn
from torch.utils.checkpoint import checkpoint

from archsearch.models._base import TokenModel, spec_pretrained_cfg
from archsearch.models._builder import SpecLike
from archsearch.models._registry import register_builder, register_timm_model
from archsearch.space.stvit import STViTSpec

__all__ = ["ArchsearchSTViT", "SelfAttentionBlock", "SemanticBlock", "archsearch_stvit", "stvit_pretrained_cfg"]

def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, drop: nn.Module) -> torch.Tensor:
    """Unfused multi-head attention on (B, H, T, hd) tensors; returns (B, Tq, H * hd)."""
    attn = (q * scale) @ k.transpose(-2, -1)
    attn = drop(attn.softmax(dim=-1))
    out = attn @ v
    return out.transpose(1, 2).flatten(2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one biased QKV projection (DeiT's layout)."""

    def __init__(self, dim: int, num_heads: int, *, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj_drop(self.proj(_attend(q, k, v, self.scale, self.attn_drop)))


class CrossAttention(nn.Module):
    """Multi-head attention of queries over another token set: Q from the queries, K/V from the context."""

    def __init__(self, dim: int, num_heads: int, *, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, tq, _ = x.shape
        tk = context.shape[1]
        q = self.q(x).reshape(b, tq, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).reshape(b, tk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj_drop(self.proj(_attend(q, k, v, self.scale, self.attn_drop)))


class SelfAttentionBlock(nn.Module):
    """Pre-norm self-attention and MLP, both residual (a DeiT block)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, *, drop_path: float = 0.0, proj_drop: float = 0.0,
                 attn_drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim, drop=proj_drop)
        self.drop_path = (DropPath(drop_path) if drop_path > 0 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SemanticBlock(nn.Module):
    """Pre-norm cross-attention of the queries over a normed context, then an MLP on the queries.

    A semantic-token layer (queries: the semantic tokens, context: the image tokens) and STViT-R's
    recovery block (queries: the image tokens, context: the semantic tokens) have this form.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, *, drop_path: float = 0.0, proj_drop: float = 0.0,
                 attn_drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_kv = nn.LayerNorm(dim, eps=1e-6)
        self.attn = CrossAttention(dim, num_heads, attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim, drop=proj_drop)
        self.drop_path = (DropPath(drop_path) if drop_path > 0 else nn.Identity())

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), self.norm_kv(context)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def stvit_pretrained_cfg(spec: STViTSpec) -> dict[str, Any]:
    """timm's pretrained-config dict for a spec (input size, classifier, DeiT's normalisation, no weights)."""
    return spec_pretrained_cfg(spec, crop_pct=0.875, interpolation="bicubic", first_conv="patch_embed.proj",
                               classifier="head")


class ArchsearchSTViT(TokenModel):
    """The semantic-token ViT of an :class:`~archsearch.space.STViTSpec`, with timm's model API
    (:class:`~archsearch.models._base.TokenModel`: ``global_pool`` is ``token`` or ``avg``)."""

    spec_class = STViTSpec
    spec_noun = "an STViTSpec"
    pretrained_cfg_of = staticmethod(stvit_pretrained_cfg)
    no_features = " (the token count changes inside the model); use forward_features, which returns the token map"

    def __init__(self, spec: STViTSpec, *, num_classes: int | None = None, in_chans: int | None = None,
                 global_pool: str | None = None, drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
                 pos_drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        """Builds the module (``spec`` ... ``drop_rate`` as in :class:`~archsearch.models._base.TokenModel`).

        Args:
            proj_drop_rate: Dropout after the projections and MLPs.
            pos_drop_rate: Dropout after adding the position embedding.
            attn_drop_rate: Dropout on the attention maps.
            drop_path_rate: Stochastic depth, rising linearly over the layers to this rate.
        """
        super().__init__(spec, global_pool=global_pool, num_classes=num_classes, in_chans=in_chans)
        spec, d = self.spec, self.embed_dim
        self._init_tokens(PatchEmbed(spec.resolution, spec.patch_size, spec.in_channels, d), spec.image_tokens,
                          pos_drop_rate)
        n_layers = spec.depth + int(spec.recovery)
        rates = [drop_path_rate * i / max(n_layers - 1, 1) for i in range(n_layers)]
        first, last = spec.semantic_layer, spec.semantic_layer + spec.semantic_layers
        opts = dict(proj_drop=proj_drop_rate, attn_drop=attn_drop_rate)
        self.blocks = nn.ModuleList(
            (SemanticBlock if first <= i < last else SelfAttentionBlock)(
                d, spec.num_heads, spec.mlp_dim, drop_path=rates[i], **opts)  # type: ignore[arg-type]
            for i in range(spec.depth)
        )
        self.recovery = (SemanticBlock(d, spec.num_heads, spec.mlp_dim, drop_path=rates[-1], **opts)  # type: ignore[arg-type]
                         if spec.recovery else None)
        self._init_head(fc_norm=False, drop_rate=drop_rate)
        self._init_weights()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^cls_token|pos_embed|patch_embed",
                    blocks=[(r"^blocks\.(\d+)", None), (r"^recovery", (len(self.blocks),)), (r"^norm", (99999,))])

    def _run(self, block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C, H, W) -> normed tokens: (B, M + c, d), or (B, N + c, d) with recovery."""
        spec, c = self.spec, self.num_prefix_tokens
        x = self._embed(x)
        first, last = spec.semantic_layer, spec.semantic_layer + spec.semantic_layers
        for block in self.blocks[:first]:
            x = self._run(block, x)
        image = x  # the keys/values of the semantic layers (and the recovery block's queries)
        b, g = x.shape[0], spec.grid
        grid = image[:, c:].transpose(1, 2).reshape(b, spec.embed_dim, g, g)
        s = F.adaptive_avg_pool2d(grid, spec.semantic_grid).flatten(2).transpose(1, 2)
        s = torch.cat([image[:, :c], s], dim=1)
        for block in self.blocks[first:last]:
            s = self._run(block, s, image)
        for block in self.blocks[last:]:
            s = self._run(block, s)
        if self.recovery is not None:
            s = torch.cat([s[:, :c], self._run(self.recovery, image[:, c:], s)], dim=1)
        return self.norm(s)


@register_timm_model
def archsearch_stvit(pretrained: bool = False, *, spec: SpecLike | None = None, **kwargs: Any) -> ArchsearchSTViT:
    """timm entry point: ``timm.create_model("archsearch_stvit", spec=...)``.

    Args:
        pretrained: Must be False: searched architectures have no published weights (load your own
            with timm's ``checkpoint_path=``; DeiT's weights fit the ordinary blocks).
        spec: An :class:`STViTSpec`, its dict, JSON text or the path of a JSON file.
        **kwargs: :class:`ArchsearchSTViT` arguments (``num_classes``, ``in_chans``, ``global_pool``,
            ``drop_rate``, ``drop_path_rate`` ...) and timm's ``pretrained_cfg_overlay``.
    """
    return ArchsearchSTViT.create(pretrained, spec, kwargs)


@register_builder("stvit")
def _build_stvit(spec: STViTSpec, **kwargs: Any) -> ArchsearchSTViT:
    import timm

    return timm.create_model("archsearch_stvit", spec=spec, **kwargs)
