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
from timm.layers import DropPath, Mlp, PatchEmbed, trunc_normal_
from timm.models import build_model_with_cfg
from timm.models._pretrained import PretrainedCfg
from torch import nn
from torch.utils.checkpoint import checkpoint

from archsearch.models._builder import SpecLike, entry_spec, with_overrides
from archsearch.models._registry import register_builder, register_timm_model
from archsearch.errors import SpecError
from archsearch.space.stvit import STViTSpec

__all__ = ["ArchsearchSTViT", "SelfAttentionBlock", "SemanticBlock", "archsearch_stvit", "stvit_pretrained_cfg"]

_POOLS = ("token", "avg")


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
    return PretrainedCfg(
        architecture="archsearch_stvit",
        input_size=(spec.in_channels, spec.resolution, spec.resolution),
        num_classes=spec.num_classes,
        crop_pct=0.875,
        interpolation="bicubic",
        first_conv="patch_embed.proj",
        classifier="head",
        description=spec.name or None,
    ).to_dict()


class ArchsearchSTViT(nn.Module):
    """The semantic-token ViT of an :class:`~archsearch.space.STViTSpec`, with timm's model API.

    Attributes:
        spec: The spec the module realises (kept in sync by :meth:`reset_classifier`).
        num_classes: Classifier outputs (0: the head returns pooled features).
        num_features: Token width (the classifier's input).
        global_pool: ``token`` (the class token) or ``avg`` (the token average).
        pretrained_cfg: timm's config dict (also ``default_cfg``).
    """

    def __init__(self, spec: STViTSpec, *, num_classes: int | None = None, in_chans: int | None = None,
                 global_pool: str | None = None, drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
                 pos_drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        """Builds the module.

        Args:
            spec: The architecture.
            num_classes: Overrides ``spec.num_classes``.
            in_chans: Overrides ``spec.in_channels``.
            global_pool: ``token`` or ``avg`` (default: ``token`` with a class token, else ``avg``).
            drop_rate: Dropout before the classifier.
            proj_drop_rate: Dropout after the projections and MLPs.
            pos_drop_rate: Dropout after adding the position embedding.
            attn_drop_rate: Dropout on the attention maps.
            drop_path_rate: Stochastic depth, rising linearly over the layers to this rate.
        """
        super().__init__()
        if not isinstance(spec, STViTSpec):
            raise SpecError(f"spec: expected an STViTSpec, got {type(spec).__name__}")
        spec = with_overrides(spec, num_classes, in_chans)
        self.spec = spec
        self.num_classes = spec.num_classes
        self.in_chans = spec.in_channels
        self.embed_dim = self.num_features = self.head_hidden_size = spec.embed_dim
        self.num_prefix_tokens = int(spec.class_token)
        self.global_pool = self._check_pool(global_pool)
        self.grad_checkpointing = False
        d = spec.embed_dim

        self.patch_embed = PatchEmbed(spec.resolution, spec.patch_size, spec.in_channels, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if spec.class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, spec.image_tokens, d))
        self.pos_drop = nn.Dropout(pos_drop_rate)
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
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(d, self.num_classes) if self.num_classes else nn.Identity()
        self.pretrained_cfg = self.default_cfg = stvit_pretrained_cfg(spec)
        self._init_weights()

    def _check_pool(self, global_pool: str | None) -> str:
        if global_pool is None:
            return "token" if self.spec.class_token else "avg"
        if global_pool not in _POOLS:
            raise SpecError(f"global_pool: expected one of {list(_POOLS)}, got {global_pool!r}")
        if global_pool == "token" and not self.spec.class_token:
            raise SpecError("global_pool: 'token' needs a class token (the spec has class_token=false); use 'avg'")
        return global_pool

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^cls_token|pos_embed|patch_embed",
                    blocks=[(r"^blocks\.(\d+)", None), (r"^recovery", (len(self.blocks),)), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replaces the classifier (0: none, the head returns pooled features) and optionally the pooling."""
        self.spec = with_overrides(self.spec, num_classes, None)
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = self._check_pool(global_pool)
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _run(self, block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C, H, W) -> normed tokens: (B, M + c, d), or (B, N + c, d) with recovery."""
        spec, c = self.spec, self.num_prefix_tokens
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
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

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.global_pool == "token" else x[:, self.num_prefix_tokens:].mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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
    if kwargs.get("features_only"):
        raise SpecError("archsearch_stvit: features_only is not supported (the token count changes inside the "
                        "model); use forward_features, which returns the token map")
    st = entry_spec("archsearch_stvit", "stvit", pretrained, spec, kwargs)
    st = with_overrides(st, kwargs.pop("num_classes", None), kwargs.pop("in_chans", None))  # type: ignore[arg-type]
    return build_model_with_cfg(ArchsearchSTViT, "archsearch_stvit", pretrained=False, spec=st,
                                pretrained_cfg=stvit_pretrained_cfg(st), **kwargs)


@register_builder("stvit")
def _build_stvit(spec: STViTSpec, **kwargs: Any) -> ArchsearchSTViT:
    import timm

    return timm.create_model("archsearch_stvit", spec=spec, **kwargs)
