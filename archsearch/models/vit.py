"""Torch modules realising a :class:`~archsearch.space.ViTSpec`, registered with timm as ``archsearch_vit``,
and :func:`load_timm_weights`, which slices a timm ViT's weights into a (smaller) heterogeneous one.

The module follows :mod:`archsearch.cost.vit` layer for layer, so the cost model's params and MACs
equal the module's (the tests prove it for random specs and DeiT-T/S/B):

* patch embedding: a ``patch x patch`` convolution with bias, stride ``patch``; a class token
  (``class_token=True``) and a learned position embedding over all tokens, class token included
  (the original ViT/DeiT layout);
* blocks (pre-norm, both residual): LayerNorm, head-aligned attention, LayerNorm, GELU MLP. The
  attention is NViT's (Yang et al., "Global Vision Transformer Pruning with Hessian-Aware Saliency",
  CVPR 2023): one fused ``qkv`` Linear whose ``H (2 qk + v)`` outputs are the queries (``H qk``), the
  keys (``H qk``) and the values (``H v``), each head after head, and an output projection
  ``H v -> EMB``. It runs unfused (explicit ``q k^T`` times the block's scale, ``qk^-1/2`` unless the spec stores another, softmax, ``@ v``) so that
  ``FlopCounterMode`` sees both products; ``fused_attn=True`` switches to
  ``scaled_dot_product_attention`` for speed (same result, not for counting);
* final LayerNorm then the class token (``class_token=True``), or the token average followed by the
  LayerNorm (``class_token=False``, timm's ``fc_norm`` placement for average pooling); a linear head.

Parameter names are timm's (``patch_embed.proj``, ``blocks.i.attn.qkv``, ``blocks.i.mlp.fc1`` ...) and
for ``qk == v`` the fused ``qkv`` layout is timm's ``(3, H, head_dim)``, so a uniform timm
``VisionTransformer`` checkpoint of the same dims loads directly with ``load_state_dict``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from archsearch.models._base import LN_EPS, TokenModel, spec_pretrained_cfg
from archsearch.models._builder import SpecLike, with_overrides
from archsearch.models._registry import register_builder, register_timm_model
from archsearch.errors import SpecError
from archsearch.space.vit import ViTBlockSpec, ViTSpec

__all__ = [
    "ArchsearchViT", "HeadAlignedAttention", "ViTBlock", "archsearch_vit", "load_timm_weights", "vit_pretrained_cfg",
]

POOLS = ("token", "avg", "")


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided convolution, flattened to (B, N, EMB)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class HeadAlignedAttention(nn.Module):
    """Multi-head self-attention with per-head query/key width ``qk_dim`` and value width ``v_dim``.

    Attributes:
        heads: Number of heads H.
        qk_dim: Query/key width per head.
        v_dim: Value width per head.
        scale: The logit scale: ``scale`` when given, else ``qk_dim ** -0.5``.
        fused_attn: Use ``scaled_dot_product_attention`` (invisible to exact MAC counting).
    """

    def __init__(self, dim: int, *, heads: int, qk_dim: int, v_dim: int, scale: float | None = None,
                 fused_attn: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.heads, self.qk_dim, self.v_dim = heads, qk_dim, v_dim
        self.scale = qk_dim ** -0.5 if scale is None else scale
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, heads * (2 * qk_dim + v_dim))
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(heads * v_dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        h, qk, v_dim = self.heads, self.qk_dim, self.v_dim
        q, k, v = self.qkv(x).split([h * qk, h * qk, h * v_dim], dim=-1)
        q = q.reshape(B, N, h, qk).transpose(1, 2)
        k = k.reshape(B, N, h, qk).transpose(1, 2)
        v = v.reshape(B, N, h, v_dim).transpose(1, 2)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0, scale=self.scale
            )
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = self.attn_drop(attn.softmax(dim=-1))
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, h * v_dim)
        return self.proj_drop(self.proj(x))


class ViTBlock(nn.Module):
    """Pre-norm transformer block of a :class:`~archsearch.space.ViTBlockSpec`."""

    def __init__(self, dim: int, block: ViTBlockSpec, *, fused_attn: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = HeadAlignedAttention(dim, heads=block.heads, qk_dim=block.qk_dim, v_dim=block.v_dim,
                                         scale=block.scale, fused_attn=fused_attn, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, block.mlp_dim, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def vit_pretrained_cfg(spec: ViTSpec) -> dict[str, Any]:
    """timm's pretrained-config dict for a spec (input size, classifier, no weights)."""
    return spec_pretrained_cfg(spec, fixed_input_size=True, first_conv="patch_embed.proj", classifier="head")


class ArchsearchViT(TokenModel):
    """The ViT of a :class:`~archsearch.space.ViTSpec`, with timm's model API
    (:class:`~archsearch.models._base.TokenModel`: ``global_pool`` is ``token`` (class token), ``avg``
    (token average) or ``''`` (no pooling))."""

    spec_class = ViTSpec
    spec_noun = "a ViTSpec"
    pretrained_cfg_of = staticmethod(vit_pretrained_cfg)
    spec_arguments = ("num_classes", "in_chans", "img_size")
    weights_hint = "load a checkpoint with checkpoint_path= or load_timm_weights"
    global_pools = POOLS

    def __init__(
        self, spec: ViTSpec, *, num_classes: int | None = None, in_chans: int | None = None,
        img_size: int | Sequence[int] | None = None, global_pool: str | None = None, fc_norm: bool | None = None,
        fused_attn: bool = False,
        drop_rate: float = 0.0, pos_drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
    ) -> None:
        """Builds the module (``spec`` ... ``drop_rate`` as in :class:`~archsearch.models._base.TokenModel`).

        Args:
            img_size: Overrides ``spec.resolution`` (square inputs; timm passes it).
            fc_norm: Put the final LayerNorm after the pooling (default: with ``avg`` pooling, as timm).
            fused_attn: Use ``scaled_dot_product_attention`` (faster; hidden from ``FlopCounterMode``).
            pos_drop_rate: Dropout after the position embedding.
            proj_drop_rate: Dropout after the attention projection and the MLP layers.
            attn_drop_rate: Dropout on the attention map.
            drop_path_rate: Stochastic depth, rising linearly to this rate over the blocks.
        """
        super().__init__(spec, global_pool=global_pool, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
        spec, d = self.spec, self.embed_dim
        self.drop_rate = drop_rate
        self._init_tokens(PatchEmbed(spec.in_channels, d, spec.patch_size), spec.num_tokens, pos_drop_rate)
        rates = [drop_path_rate * i / max(1, spec.depth - 1) for i in range(spec.depth)]
        self.blocks = nn.Sequential(*(
            ViTBlock(d, b, fused_attn=fused_attn, attn_drop=attn_drop_rate, proj_drop=proj_drop_rate, drop_path=r)
            for b, r in zip(spec.blocks, rates)
        ))
        self._init_head(fc_norm=self.global_pool == "avg" if fc_norm is None else fc_norm, drop_rate=drop_rate)
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=d, reduction=spec.patch_size) for i in range(spec.depth)]
        self._init_weights()

    @staticmethod
    def with_overrides(spec: ViTSpec, num_classes: int | None = None, in_chans: int | None = None,
                       img_size: int | Sequence[int] | None = None) -> ViTSpec:
        """The spec with timm's ``num_classes`` / ``in_chans`` / ``img_size`` arguments applied (validated by the spec)."""
        if img_size is not None:
            sides = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
            if len(sides) != 2 or sides[0] != sides[1]:
                raise SpecError(f"img_size: expected one side length (square inputs), got {img_size!r}")
            if sides[0] != spec.resolution:
                spec = dataclasses.replace(spec, resolution=sides[0])
        return with_overrides(spec, num_classes, in_chans)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^cls_token|pos_embed|patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self._checkpointed(self.blocks, self._embed(x)))


@register_timm_model
def archsearch_vit(pretrained: bool = False, *, spec: SpecLike | None = None, **kwargs: Any) -> ArchsearchViT:
    """timm entry point: ``timm.create_model("archsearch_vit", spec=...)``.

    Args:
        pretrained: Must be False: searched architectures have no published weights (load your own
            with timm's ``checkpoint_path=``, or slice a timm ViT with :func:`load_timm_weights`).
        spec: A :class:`ViTSpec`, its dict, JSON text or the path of a JSON file.
        **kwargs: :class:`ArchsearchViT` arguments (``num_classes``, ``in_chans``, ``global_pool``,
            ``fc_norm``, ``fused_attn``, dropout rates) and timm's ``pretrained_cfg_overlay``.
    """
    return ArchsearchViT.create(pretrained, spec, kwargs)


@register_builder("vit")
def _build_vit(spec: ViTSpec, **kwargs: Any) -> ArchsearchViT:
    import timm

    return timm.create_model("archsearch_vit", spec=spec, **kwargs)


# ---------------------------------------------------------------------------------------------------
# loading (slicing) the weights of a timm ViT

_BLOCK_KEYS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
               "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")
_STRUCTURES = ("embed", "heads", "qk", "v", "mlp")


def _source_heads(source: nn.Module | Mapping[str, torch.Tensor], num_heads: int | Sequence[int] | None,
                  depth: int) -> list[int]:
    if num_heads is None and isinstance(source, nn.Module):
        spec = getattr(source, "spec", None)
        if isinstance(spec, ViTSpec):
            return [b.heads for b in spec.blocks]
        blocks = getattr(source, "blocks", None)
        try:
            return [int(b.attn.num_heads) for b in blocks]  # type: ignore[union-attr]
        except (TypeError, AttributeError):
            raise SpecError("source: cannot read the head counts of this module (expected timm's "
                            "blocks[i].attn.num_heads); pass num_heads=") from None
    if num_heads is None:
        raise SpecError("num_heads: a state dict does not say how many heads its blocks have; pass num_heads= "
                        "(an int, or one per block)")
    heads = [num_heads] * depth if isinstance(num_heads, int) else list(num_heads)
    if len(heads) != depth or not all(isinstance(h, int) and h > 0 for h in heads):
        raise SpecError(f"num_heads: expected a positive int or {depth} of them, got {num_heads!r}")
    return heads


def _indices(name: str, given: Sequence[int] | None, size: int, available: int) -> torch.Tensor:
    """The kept indices of one structure: the first ``size`` by default, else ``given`` (checked)."""
    if given is None:
        if size > available:
            raise SpecError(f"keep.{name}: the target needs {size} but the source has only {available}")
        return torch.arange(size)
    idx = [int(i) for i in given]
    if len(idx) != size:
        raise SpecError(f"keep.{name}: expected {size} indices (the target's width), got {len(idx)}")
    bad = sorted({i for i in idx if i < 0 or i >= available} | {i for i in idx if idx.count(i) > 1})
    if bad:
        raise SpecError(f"keep.{name}: expected distinct indices in [0, {available}); out of range or repeated: {bad[:10]}")
    return torch.tensor(idx, dtype=torch.long)


def _head_rows(heads: torch.Tensor, dims: torch.Tensor, width: int, offset: int = 0) -> torch.Tensor:
    """Rows ``offset + h * width + j`` for the kept heads h (outer) and per-head indices j (inner)."""
    return (offset + heads[:, None] * width + dims[None, :]).reshape(-1)


def load_timm_weights(
    model: ArchsearchViT, source: nn.Module | Mapping[str, torch.Tensor], *,
    keep: Mapping[str, Any] | None = None, num_heads: int | Sequence[int] | None = None,
    head: bool | None = None, rescale_qk: bool = False,
) -> ArchsearchViT:
    """Copies a ViT's weights into a (smaller or equal) heterogeneous model by slicing.

    The source is a timm ``VisionTransformer`` (``deit_*``, ``vit_*`` with the original layout: class
    token included in the position embedding, no layer scale, no register tokens, no pre-norm), an
    :class:`ArchsearchViT`, or the state dict of either. Every structure of the target keeps a set of
    the source's indices: the embedding channels (``embed``, shared by all layers), and per block the
    heads, the query/key indices within a head (``qk``, the same in every kept head: NViT's
    head-aligned pruning), the value indices within a head (``v``) and the MLP units (``mlp``). By
    default the first ones are kept; ``keep`` gives the index sets (in the order the target uses),
    e.g. ``{"embed": [...], "heads": [[...] per block], "qk": [[...] per block]}``; a missing key,
    or ``None`` for a block, means the first ones.

    Args:
        model: The target; its depth, patch size, channels, class token and token count must equal the
            source's, and every width must be at most the source's.
        source: The timm/archsearch module or its state dict (read files with
            ``torch.load(path, weights_only=True)``).
        keep: Index sets per structure (see above).
        num_heads: The source's heads (an int, or one per block); required for a state dict.
        head: Copy the classifier: ``None`` copies it when the class counts match and the target has
            one, and raises when they differ; ``False`` leaves the target's own classifier.
        rescale_qk: Scale the kept query weights by ``sqrt(qk_target / qk_source)`` so that the
            attention logits keep the source's ``qk_source ** -0.5`` scale (the target uses its own
            width's); plain slicing otherwise.

    Returns:
        The target model (its parameters are overwritten in place).

    Raises:
        SpecError: The source has parts the target lacks (the message names them), other shapes, or
            an index set is invalid.
    """
    if not isinstance(model, ArchsearchViT):
        raise SpecError(f"model: expected an ArchsearchViT, got {type(model).__name__}")
    sd = dict(source.state_dict() if isinstance(source, nn.Module) else source)
    spec, keep = model.spec, dict(keep or {})
    unknown_keep = set(keep) - set(_STRUCTURES)
    if unknown_keep:
        raise SpecError(f"keep: unknown structures {sorted(unknown_keep)}; accepted: {list(_STRUCTURES)}")
    src_depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if src_depth != spec.depth:
        raise SpecError(f"source: has {src_depth} blocks, the target {spec.depth}; depths must be equal")
    dst_sd = model.state_dict()
    expected = set(dst_sd) | {"head.weight", "head.bias"}
    extra = sorted(k for k in sd if k not in expected)
    if extra:
        raise SpecError(f"source: has parameters the target's layout lacks: {extra[:8]}"
                        f"{' ...' if len(extra) > 8 else ''} (layer scale, register tokens, pre-norm or "
                        "another final-norm placement are not supported)")
    missing = sorted(k for k in dst_sd if k not in sd and not k.startswith("head.") and not k.endswith("qkv.bias"))
    if missing:
        raise SpecError(f"source: lacks parameters the target has: {missing[:8]}")

    d_src = sd["patch_embed.proj.weight"].shape[0]
    w_shape = tuple(sd["patch_embed.proj.weight"].shape[1:])
    if w_shape != (spec.in_channels, spec.patch_size, spec.patch_size):
        raise SpecError(f"source: patch embedding takes (channels, patch, patch) = {w_shape}, the target "
                        f"{(spec.in_channels, spec.patch_size, spec.patch_size)}")
    if sd["pos_embed"].shape[1] != spec.num_tokens:
        raise SpecError(f"source: position embedding has {sd['pos_embed'].shape[1]} tokens, the target "
                        f"{spec.num_tokens} (resolution {spec.resolution}, patch {spec.patch_size}); no resampling is done")
    E = _indices("embed", keep.get("embed"), spec.embed_dim, d_src)
    src_heads = _source_heads(source, num_heads, spec.depth)
    out: dict[str, torch.Tensor] = {
        "patch_embed.proj.weight": sd["patch_embed.proj.weight"][E],
        "patch_embed.proj.bias": sd["patch_embed.proj.bias"][E],
        "pos_embed": sd["pos_embed"][:, :, E],
    }
    if spec.class_token:
        out["cls_token"] = sd["cls_token"][:, :, E]
    for name in ("norm", "fc_norm"):
        for p in ("weight", "bias"):
            if f"{name}.{p}" in dst_sd:
                out[f"{name}.{p}"] = sd[f"{name}.{p}"][E]

    def per_block(name: str, i: int) -> Any:
        sets = keep.get(name)
        if sets is None:
            return None
        if len(sets) != spec.depth:
            raise SpecError(f"keep.{name}: expected one index set per block ({spec.depth}), got {len(sets)}")
        return sets[i]

    for i, (blk, H_s) in enumerate(zip(spec.blocks, src_heads)):
        p = f"blocks.{i}."
        rows_s, hv_s = sd[p + "attn.qkv.weight"].shape[0], sd[p + "attn.proj.weight"].shape[1]
        if hv_s % H_s or (rows_s - hv_s) % (2 * H_s):
            raise SpecError(f"source block {i}: qkv rows {rows_s} and projection inputs {hv_s} do not split into "
                            f"{H_s} heads; check num_heads")
        v_s, qk_s, mlp_s = hv_s // H_s, (rows_s - hv_s) // (2 * H_s), sd[p + "mlp.fc1.weight"].shape[0]
        Hk = _indices(f"heads[{i}]", per_block("heads", i), blk.heads, H_s)
        Q = _indices(f"qk[{i}]", per_block("qk", i), blk.qk_dim, qk_s)
        V = _indices(f"v[{i}]", per_block("v", i), blk.v_dim, v_s)
        M = _indices(f"mlp[{i}]", per_block("mlp", i), blk.mlp_dim, mlp_s)
        q_rows = _head_rows(Hk, Q, qk_s)
        k_rows = _head_rows(Hk, Q, qk_s, H_s * qk_s)
        v_cols = _head_rows(Hk, V, v_s)
        rows = torch.cat([q_rows, k_rows, 2 * H_s * qk_s + v_cols])
        qkv_w = sd[p + "attn.qkv.weight"][rows][:, E]
        qkv_b = sd.get(p + "attn.qkv.bias")
        qkv_b = qkv_b[rows] if qkv_b is not None else torch.zeros(len(rows), dtype=qkv_w.dtype, device=qkv_w.device)
        if rescale_qk and blk.qk_dim != qk_s:
            factor = math.sqrt(blk.qk_dim / qk_s)
            n_q = len(q_rows)
            qkv_w, qkv_b = qkv_w.clone(), qkv_b.clone()
            qkv_w[:n_q] *= factor
            qkv_b[:n_q] *= factor
        out[p + "attn.qkv.weight"], out[p + "attn.qkv.bias"] = qkv_w, qkv_b
        out[p + "attn.proj.weight"] = sd[p + "attn.proj.weight"][E][:, v_cols]
        out[p + "attn.proj.bias"] = sd[p + "attn.proj.bias"][E]
        for n in ("norm1", "norm2"):
            out[p + n + ".weight"], out[p + n + ".bias"] = sd[p + n + ".weight"][E], sd[p + n + ".bias"][E]
        out[p + "mlp.fc1.weight"] = sd[p + "mlp.fc1.weight"][M][:, E]
        out[p + "mlp.fc1.bias"] = sd[p + "mlp.fc1.bias"][M]
        out[p + "mlp.fc2.weight"] = sd[p + "mlp.fc2.weight"][E][:, M]
        out[p + "mlp.fc2.bias"] = sd[p + "mlp.fc2.bias"][E]

    src_classes = sd["head.weight"].shape[0] if "head.weight" in sd else 0
    if model.num_classes and head is not False:
        if src_classes != model.num_classes:
            raise SpecError(f"head: the source classifies {src_classes} classes, the target {model.num_classes}; "
                            "pass head=False to keep the target's classifier")
        out["head.weight"], out["head.bias"] = sd["head.weight"][:, E], sd["head.bias"]
    for k in ("head.weight", "head.bias"):
        if k in dst_sd and k not in out:
            out[k] = dst_sd[k]
    model.load_state_dict(out, strict=True)
    return model
