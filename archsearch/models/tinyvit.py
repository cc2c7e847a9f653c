"""Torch modules realising a :class:`~archsearch.space.TinyViTSpec`, registered with timm as ``archsearch_tinyvit``.

The module follows :mod:`archsearch.cost.tinyvit` layer for layer (the tests prove params and
MACs equal) and uses the parameter names and shapes of timm's ``TinyVit``, so a state dict of
timm's ``tiny_vit_*`` loads into the module of the same spec and gives the same outputs:

* ``ConvBN``: a bias-free conv and BatchNorm (names ``conv``, ``bn``);
* stem (``patch_embed``): two 3x3 stride-2 ``ConvBN`` with GELU between;
* ``MBConvBlock`` (Sandler et al., MobileNetV2, as used by TinyViT's first stage): 1x1, dw 3x3,
  1x1, GELU after each, residual before the last GELU;
* ``PatchMerging``: 1x1 ``ConvBN``, GELU, dw 3x3 stride-2 ``ConvBN``, GELU, 1x1 ``ConvBN``;
* ``WindowAttention`` (Wu et al., "TinyViT", ECCV 2022; the bias table of LeViT, Graham et al.,
  ICCV 2021): LayerNorm, one qkv linear, heads of ``head_dim``, ``softmax(q k^T / sqrt(d) + B) v``
  computed explicitly (never a fused kernel, so ``FlopCounterMode`` sees both matmuls), output
  projection; ``B`` is a learned table of ``heads x w^2`` entries, one per head and per absolute
  offset ``(|dy|, |dx|)`` inside the window, gathered by a buffer of indices ``|dy| * w + |dx|``;
* ``TinyViTBlock``: windows of the zero-padded map (padding cropped afterwards), residual, dw
  ``local_conv_size`` ``ConvBN``, residual MLP (LayerNorm, fc, GELU, fc);
* head: timm's ``NormMlpClassifierHead`` (average pooling, LayerNorm2d with eps 1e-5, linear).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, NormMlpClassifierHead, trunc_normal_
from torch import nn

from archsearch.models._base import ArchsearchModel, spec_pretrained_cfg
from archsearch.models._builder import SpecLike
from archsearch.models._registry import register_builder, register_timm_model
from archsearch.space.tinyvit import TinyViTSpec, window_count

__all__ = [
    "ArchsearchTinyViT", "ConvBN", "MBConvBlock", "PatchMerging", "TinyViTBlock", "WindowAttention",
    "archsearch_tinyvit", "tinyvit_pretrained_cfg",
]


class ConvBN(nn.Sequential):
    """A bias-free conv (padding ``kernel // 2``) followed by BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, *, stride: int = 1, groups: int = 1,
                 bn_weight: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, bn_weight)
        nn.init.zeros_(self.bn.bias)


class Stem(nn.Module):
    """Two 3x3 stride-2 ``ConvBN`` (``in -> dim/2 -> dim``) with an activation between them."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_channels, dim // 2, 3, stride=2)
        self.act = nn.GELU()
        self.conv2 = ConvBN(dim // 2, dim, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class MBConvBlock(nn.Module):
    """Inverted residual at constant width: 1x1 expand, dw 3x3, 1x1 project (zero-initialised BN)."""

    def __init__(self, dim: int, expand_ratio: float, drop_path: float = 0.0) -> None:
        super().__init__()
        mid = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, mid, 1)
        self.act1 = nn.GELU()
        self.conv2 = ConvBN(mid, mid, 3, groups=mid)
        self.act2 = nn.GELU()
        self.conv3 = ConvBN(mid, dim, 1, bn_weight=0.0)
        self.act3 = nn.GELU()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(x + self.drop_path(y))


class ConvStage(nn.Module):
    """The first stage: ``depth`` MBConv blocks (module ``blocks`` as in timm)."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, drop_path: list[float]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(MBConvBlock(dim, expand_ratio, drop_path[i]) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class PatchMerging(nn.Module):
    """Halves the side and maps ``dim_in -> dim``: 1x1, GELU, dw 3x3 stride 2, GELU, 1x1."""

    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim_in, dim, 1)
        self.act1 = nn.GELU()
        self.conv2 = ConvBN(dim, dim, 3, stride=2, groups=dim)
        self.act2 = nn.GELU()
        self.conv3 = ConvBN(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))


def relative_offset_index(window: int) -> torch.Tensor:
    """``(w^2, w^2)`` table: for token pair (p, q) in a window, the index ``|dy| * w + |dx|``."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]).abs()
    return delta[0] * window + delta[1]


class WindowAttention(nn.Module):
    """Pre-normalised multi-head self-attention over the tokens of one window with a learned
    relative position bias; always computed with explicit matmuls."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, window * window))
        self.window = window
        self.register_buffer("attention_bias_idxs", torch.empty(window * window, window * window, dtype=torch.long),
                             persistent=False)
        self.init_non_persistent_buffers()

    def init_non_persistent_buffers(self) -> None:
        """Fills the offset index table (also after a module was built on the meta device)."""
        if not self.attention_bias_idxs.is_meta:
            self.attention_bias_idxs.copy_(relative_offset_index(self.window).to(self.attention_bias_idxs.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # per token: (q, k, v) of every head laid out head by head, as timm's TinyVit does
        qkv = self.qkv(self.norm(x)).view(b, n, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        scores = scores + self.attention_biases[:, self.attention_bias_idxs]
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """LayerNorm, linear, GELU, linear (names as timm's ``NormMlp``)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(self.norm(x))))))


class TinyViTBlock(nn.Module):
    """Window attention (on the zero-padded map), local dw conv, MLP; input and output are NHWC."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, local_conv_size: int,
                 drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.window = window
        self.attn = WindowAttention(dim, heads, window)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.local_conv = ConvBN(dim, dim, local_conv_size, groups=dim)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        s = self.window
        nh, nw = window_count(h, s), window_count(w, s)
        if nh * s != h or nw * s != w:
            x = F.pad(x, (0, 0, 0, nw * s - w, 0, nh * s - h))
        x = x.view(b, nh, s, nw, s, c).transpose(2, 3).reshape(b * nh * nw, s * s, c)
        x = self.attn(x)
        x = x.view(b, nh, nw, s, s, c).transpose(2, 3).reshape(b, nh * s, nw * s, c)
        return x[:, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = x + self.drop_path1(self._attend(x))
        y = self.local_conv(x.permute(0, 3, 1, 2))
        y = y.flatten(2).transpose(1, 2)
        y = y + self.drop_path2(self.mlp(y))
        return y.view(b, h, w, c)


class AttentionStage(nn.Module):
    """Patch merging (module ``downsample``) then ``depth`` TinyViT blocks; NCHW in and out."""

    def __init__(self, dim_in: int, dim: int, depth: int, heads: int, window: int, mlp_ratio: float,
                 local_conv_size: int, drop: float, drop_path: list[float]) -> None:
        super().__init__()
        self.downsample = PatchMerging(dim_in, dim)
        self.blocks = nn.Sequential(*(
            TinyViTBlock(dim, heads, window, mlp_ratio, local_conv_size, drop, drop_path[i]) for i in range(depth)
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x).permute(0, 2, 3, 1)
        return self.blocks(x).permute(0, 3, 1, 2)


def tinyvit_pretrained_cfg(spec: TinyViTSpec) -> dict[str, Any]:
    """timm's pretrained-config dict for a spec (input size, pool size, classifier, no weights)."""
    side = spec.sides[-1]
    return spec_pretrained_cfg(spec, pool_size=(side, side), first_conv="patch_embed.conv1.conv", classifier="head.fc")


class ArchsearchTinyViT(ArchsearchModel):
    """The TinyViT of a :class:`~archsearch.space.TinyViTSpec`, with timm's model API (:class:`ArchsearchModel`).

    Attributes:
        num_classes: Classifier outputs (0: the head returns normalised pooled features).
        num_features: Channels of the last feature map.
        feature_info: timm's per-stage channels, reductions and module names.
    """

    spec_class = TinyViTSpec
    spec_noun = "a TinyViTSpec"
    pretrained_cfg_of = staticmethod(tinyvit_pretrained_cfg)

    def __init__(
        self, spec: TinyViTSpec, *, num_classes: int | None = None, in_chans: int | None = None,
        global_pool: str = "avg", drop_rate: float = 0.0, proj_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
    ) -> None:
        """Builds the module (``spec`` ... ``drop_rate`` as in :class:`ArchsearchModel`).

        Args:
            proj_drop_rate: Dropout inside the MLPs.
            drop_path_rate: Stochastic depth, rising linearly to this value over the blocks.
        """
        super().__init__(spec, num_classes=num_classes, in_chans=in_chans)
        spec = self.spec
        self.num_features = self.head_hidden_size = spec.num_features
        dims = spec.embed_dims
        total = sum(spec.depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(spec.depths[:i]) for i in range(spec.n_stages)]

        self.patch_embed = Stem(spec.in_channels, dims[0])
        stages: list[nn.Module] = [ConvStage(dims[0], spec.depths[0], spec.mbconv_expand_ratio,
                                             rates[:spec.depths[0]])]
        self.feature_info = [dict(num_chs=dims[0], reduction=4, module="stages.0")]
        for i in range(1, spec.n_stages):
            stages.append(AttentionStage(
                dims[i - 1], dims[i], spec.depths[i], spec.num_heads[i], spec.window_sizes[i], spec.mlp_ratio,
                spec.local_conv_size, proj_drop_rate, rates[starts[i]:starts[i] + spec.depths[i]],
            ))
            self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2**i, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        # the head's LayerNorm stays when reset_classifier(0) removes the classifier
        self.head = NormMlpClassifierHead(self.num_features, self.num_classes, pool_type=global_pool,
                                          norm_layer=partial(LayerNorm2d, eps=1e-5), drop_rate=drop_rate)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set[str]:
        return {"attention_biases"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^patch_embed", blocks=r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+).downsample", (0,)), (r"^stages\.(\d+)\.\w+\.(\d+)", None)])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._checkpointed(self.stages, self.patch_embed(x))


@register_timm_model
def archsearch_tinyvit(pretrained: bool = False, *, spec: SpecLike | None = None, **kwargs: Any) -> ArchsearchTinyViT:
    """timm entry point: ``timm.create_model("archsearch_tinyvit", spec=...)``.

    Args:
        pretrained: Must be False: searched architectures have no published weights (a state dict
            of timm's ``tiny_vit_*`` of the same shape loads with ``load_state_dict``).
        spec: A :class:`TinyViTSpec`, its dict, JSON text or the path of a JSON file.
        **kwargs: :class:`ArchsearchTinyViT` arguments (``num_classes``, ``in_chans``,
            ``global_pool``, ``drop_rate``, ``proj_drop_rate``, ``drop_path_rate``) and timm's
            ``pretrained_cfg_overlay``, ``features_only`` ...
    """
    return ArchsearchTinyViT.create(pretrained, spec, kwargs)


@register_builder("tinyvit")
def _build_tinyvit(spec: TinyViTSpec, **kwargs: Any) -> ArchsearchTinyViT:
    import timm

    return timm.create_model("archsearch_tinyvit", spec=spec, **kwargs)
