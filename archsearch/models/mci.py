"""Torch modules realising an :class:`~archsearch.space.MCiSpec`, registered with timm as ``archsearch_mci``.

The modules follow :mod:`archsearch.cost.mci` operation for operation (the tests prove params and
MACs equal, and equal to timm's ``fastvit_mci0/1/2``). Submodule names follow timm's FastViT, so
a ``fastvit_mci*`` state dict loads into the module of the matching spec (training or inference
form) and gives the same outputs.

Reparameterisation (Ding et al., "RepVGG", CVPR 2021; Vasu et al., "MobileOne", CVPR 2023 and
"FastViT", ICCV 2023): in eval mode a BatchNorm after a bias-free conv is the affine map
``gamma (x - mean) / sqrt(var + eps) + beta``, so each branch is a conv with bias; parallel branches
of equal stride add their (zero-padded) kernels; an identity is a kernel with a 1 at the centre
of each channel's own input. :meth:`ArchsearchMCi.reparameterize` (or timm's
``reparameterize_model``) turns a training-form module into the inference form in place.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import ClassifierHead, ConvNormAct, SEModule, use_fused_attn
from timm.models import checkpoint_seq
from torch import nn

from archsearch.models._base import ArchsearchModel, spec_pretrained_cfg
from archsearch.models._builder import SpecLike
from archsearch.models._registry import register_builder, register_timm_model
from archsearch.cost.mci import se_width_final, se_width_lkc
from archsearch.space.mci import MCiSpec

__all__ = ["ArchsearchMCi", "MobileOneBlock", "LargeKernelConv", "RepMixer", "RepCPE", "MCiAttention",
           "archsearch_mci", "mci_pretrained_cfg"]


def _bn_fold(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` for a bias-free conv of kernel ``weight`` (eval statistics)."""
    std = (bn.running_var + bn.eps).sqrt()
    t = bn.weight / std
    return weight * t.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * t


def _identity_kernel(channels: int, groups: int, kernel: int, like: torch.Tensor) -> torch.Tensor:
    """The kxk kernel of a same-shape grouped conv that returns its input."""
    per_group = channels // groups
    w = torch.zeros(channels, per_group, kernel, kernel, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    w[idx, idx % per_group, kernel // 2, kernel // 2] = 1.0
    return w


def _pad_to(w: torch.Tensor, kernel: int) -> torch.Tensor:
    p = (kernel - w.shape[-1]) // 2
    return F.pad(w, [p, p, p, p]) if p else w


def _conv(c_in: int, c_out: int, kernel: int, *, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A biased conv with timm's symmetric 'same' padding ``((stride - 1) + (kernel - 1)) // 2``."""
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=((stride - 1) + (kernel - 1)) // 2, groups=groups)


def _conv_bn(c_in: int, c_out: int, kernel: int, *, stride: int = 1, groups: int = 1) -> ConvNormAct:
    return ConvNormAct(c_in, c_out, kernel, stride=stride, groups=groups, apply_act=False)


class MobileOneBlock(nn.Module):
    """MobileOne block: kxk conv + BN branches, a 1x1 conv + BN scale branch (k > 1), a BN identity
    (same shape), optional squeeze-excitation and GELU; fused: one biased kxk conv.

    Args:
        branches: Number of kxk conv + BN branches (0: the RepMixer "norm", a BN identity only).
        scale: Whether the 1x1 scale branch exists (when ``kernel > 1``).
        se_width: Squeeze-excitation width (0: none).
        act: GELU after the sum.
        fused: Build the inference form.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int = 1, groups: int = 1, branches: int = 1,
                 scale: bool = True, se_width: int = 0, act: bool = True, fused: bool = False) -> None:
        super().__init__()
        self.c_in, self.c_out, self.kernel, self.stride, self.groups = c_in, c_out, kernel, stride, groups
        self.se = SEModule(c_out, rd_channels=se_width) if se_width else nn.Identity()
        self.act = nn.GELU() if act else nn.Identity()
        if fused:
            self.reparam_conv: nn.Conv2d | None = _conv(c_in, c_out, kernel, stride=stride, groups=groups)
            return
        self.reparam_conv = None
        self.identity = nn.BatchNorm2d(c_in) if c_in == c_out and stride == 1 else None
        self.conv_kxk = nn.ModuleList(
            [_conv_bn(c_in, c_out, kernel, stride=stride, groups=groups) for _ in range(branches)]
        ) if branches else None
        self.conv_scale = _conv_bn(c_in, c_out, 1, stride=stride, groups=groups) if scale and kernel > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.act(self.se(self.reparam_conv(x)))
        out = self.identity(x) if self.identity is not None else 0
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        if self.conv_kxk is not None:
            for branch in self.conv_kxk:
                out = out + branch(x)
        return self.act(self.se(out))

    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel and bias of the single conv equal to the branches' sum (eval statistics)."""
        if self.reparam_conv is not None:
            return self.reparam_conv.weight, self.reparam_conv.bias
        like = next(p for p in self.parameters())
        w = torch.zeros(self.c_out, self.c_in // self.groups, self.kernel, self.kernel, dtype=like.dtype, device=like.device)
        b = torch.zeros(self.c_out, dtype=like.dtype, device=like.device)
        branches = list(self.conv_kxk or []) + ([self.conv_scale] if self.conv_scale is not None else [])
        for branch in branches:
            kw, kb = _bn_fold(branch.conv.weight, branch.bn)
            w, b = w + _pad_to(kw, self.kernel), b + kb
        if self.identity is not None:
            kw, kb = _bn_fold(_identity_kernel(self.c_in, self.groups, self.kernel, like), self.identity)
            w, b = w + kw, b + kb
        return w, b

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        w, b = self.fused_kernel_bias()
        conv = _conv(self.c_in, self.c_out, self.kernel, stride=self.stride, groups=self.groups).to(w.device, w.dtype)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        self.reparam_conv = conv
        for name in ("identity", "conv_kxk", "conv_scale"):
            delattr(self, name)


class LargeKernelConv(nn.Module):
    """The patch embedding's large-kernel conv (Ding et al., "RepLKNet", CVPR 2022): a kxk conv + BN
    and a 3x3 conv + BN, both strided and grouped by the input width, summed; optional SE and GELU."""

    def __init__(self, c_in: int, c_out: int, *, kernel: int = 7, small: int = 3, stride: int = 2,
                 se_width: int = 0, act: bool = True, fused: bool = False) -> None:
        super().__init__()
        self.c_in, self.c_out, self.kernel, self.stride = c_in, c_out, kernel, stride
        if fused:
            self.reparam_conv: nn.Conv2d | None = _conv(c_in, c_out, kernel, stride=stride, groups=c_in)
        else:
            self.reparam_conv = None
            self.large_conv = _conv_bn(c_in, c_out, kernel, stride=stride, groups=c_in)
            self.small_conv = _conv_bn(c_in, c_out, small, stride=stride, groups=c_in)
        self.se = SEModule(c_out, rd_channels=se_width) if se_width else nn.Identity()
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.reparam_conv(x) if self.reparam_conv is not None else self.large_conv(x) + self.small_conv(x)
        return self.act(self.se(out))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        w, b = _bn_fold(self.large_conv.conv.weight, self.large_conv.bn)
        ws, bs = _bn_fold(self.small_conv.conv.weight, self.small_conv.bn)
        conv = _conv(self.c_in, self.c_out, self.kernel, stride=self.stride, groups=self.c_in).to(w.device, w.dtype)
        conv.weight.copy_(w + _pad_to(ws, self.kernel))
        conv.bias.copy_(b + bs)
        self.reparam_conv = conv
        del self.large_conv, self.small_conv


class LayerScale(nn.Module):
    """Per-channel scale of a (B, C, H, W) map (``gamma`` of shape (C, 1, 1), as in timm's FastViT)."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class RepMixer(nn.Module):
    """RepMixer token mixer: ``x + gamma (mixer(x) - norm(x))`` with a depthwise kxk MobileOne mixer
    and a BN "norm"; fused: one biased depthwise conv (Vasu et al., "FastViT", ICCV 2023, eq. 2)."""

    def __init__(self, dim: int, kernel: int = 3, *, fused: bool = False) -> None:
        super().__init__()
        self.dim, self.kernel = dim, kernel
        if fused:
            self.reparam_conv: nn.Conv2d | None = _conv(dim, dim, kernel, groups=dim)
            return
        self.reparam_conv = None
        self.norm = MobileOneBlock(dim, dim, kernel, groups=dim, branches=0, scale=False, act=False)
        self.mixer = MobileOneBlock(dim, dim, kernel, groups=dim, act=False)
        self.layer_scale = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        return x + self.layer_scale(self.mixer(x) - self.norm(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        wm, bm = self.mixer.fused_kernel_bias()
        wn, bn = self.norm.fused_kernel_bias()
        gamma = self.layer_scale.gamma
        conv = _conv(self.dim, self.dim, self.kernel, groups=self.dim).to(wm.device, wm.dtype)
        conv.weight.copy_(_identity_kernel(self.dim, self.dim, self.kernel, wm) + gamma.unsqueeze(-1) * (wm - wn))
        conv.bias.copy_(gamma.flatten() * (bm - bn))
        self.reparam_conv = conv
        del self.norm, self.mixer, self.layer_scale


class RepCPE(nn.Module):
    """Conditional positional encoding ``x + dwconv7x7(x)`` (Chu et al., ICLR 2023); fused: one conv."""

    def __init__(self, dim: int, kernel: int = 7, *, fused: bool = False) -> None:
        super().__init__()
        self.dim, self.kernel = dim, kernel
        conv = _conv(dim, dim, kernel, groups=dim)
        if fused:
            self.reparam_conv: nn.Conv2d | None = conv
        else:
            self.reparam_conv = None
            self.pos_enc = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reparam_conv(x) if self.reparam_conv is not None else self.pos_enc(x) + x

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        conv = _conv(self.dim, self.dim, self.kernel, groups=self.dim).to(self.pos_enc.weight.device, self.pos_enc.weight.dtype)
        conv.weight.copy_(self.pos_enc.weight + _identity_kernel(self.dim, self.dim, self.kernel, self.pos_enc.weight))
        conv.bias.copy_(self.pos_enc.bias)
        self.reparam_conv = conv
        del self.pos_enc


class ConvFFN(nn.Module):
    """ConvFFN: depthwise 7x7 + BN, 1x1 expansion, GELU, 1x1 projection (FastViT, Sec. 3.2.3)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.conv = _conv_bn(dim, dim, 7, groups=dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.conv(x))))


class MCiAttention(nn.Module):
    """Multi-head self-attention over the tokens of a (B, C, H, W) map: bias-free qkv, biased proj.

    ``fused_attn`` follows timm's setting (``timm.layers.set_fused_attn``); the explicit path
    (``q k^T``, softmax, ``attn v``) is what the MACs convention counts.
    """

    def __init__(self, dim: int, head_dim: int = 32) -> None:
        super().__init__()
        self.head_dim, self.num_heads = head_dim, dim // head_dim
        self.scale = head_dim ** -0.5
        self.fused_attn = use_fused_attn()
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens).reshape(B, H * W, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
        out = self.proj(out.transpose(1, 2).reshape(B, H * W, C))
        return out.transpose(1, 2).reshape(B, C, H, W)


class RepMixerBlock(nn.Module):
    def __init__(self, dim: int, hidden: int, kernel: int, *, fused: bool) -> None:
        super().__init__()
        self.token_mixer = RepMixer(dim, kernel, fused=fused)
        self.mlp = ConvFFN(dim, hidden)
        self.layer_scale = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x)
        return x + self.layer_scale(self.mlp(x))


class AttentionBlock(nn.Module):
    def __init__(self, dim: int, hidden: int, head_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.token_mixer = MCiAttention(dim, head_dim)
        self.layer_scale_1 = LayerScale(dim)
        self.mlp = ConvFFN(dim, hidden)
        self.layer_scale_2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_1(self.token_mixer(self.norm(x)))
        return x + self.layer_scale_2(self.mlp(x))


class PatchEmbed(nn.Module):
    """Stride-2 large-kernel conv grouped by the input width, then a 1x1 MobileOne block."""

    def __init__(self, c_in: int, dim: int, *, se: bool, act: bool, fused: bool) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            LargeKernelConv(c_in, dim, se_width=se_width_lkc(dim) if se else 0, act=act, fused=fused),
            MobileOneBlock(dim, dim, 1, fused=fused),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class MCiStage(nn.Module):
    def __init__(self, spec: MCiSpec, i: int) -> None:
        super().__init__()
        d, fused = spec.dims[i], spec.reparameterized
        self.grad_checkpointing = False
        self.downsample = (
            PatchEmbed(spec.dims[i - 1], d, se=spec.se_downsamples[i], act=spec.lkc_use_act, fused=fused)
            if i > 0 else nn.Identity()
        )
        self.pos_emb = RepCPE(d, fused=fused) if spec.pos_embs[i] else nn.Identity()
        if spec.token_mixers[i] == "repmixer":
            blocks = [RepMixerBlock(d, spec.hidden(i), spec.repmixer_kernel, fused=fused) for _ in range(spec.depths[i])]
        else:
            blocks = [AttentionBlock(d, spec.hidden(i), spec.head_dim) for _ in range(spec.depths[i])]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_emb(self.downsample(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


def mci_pretrained_cfg(spec: MCiSpec) -> dict[str, Any]:
    """timm's pretrained-config dict for a spec (input size, pool size, classifier, no weights)."""
    side = spec.sides()[-1]
    first = "stem.0.reparam_conv" if spec.reparameterized else "stem.0.conv_kxk.0.conv"
    return spec_pretrained_cfg(spec, pool_size=(side, side), first_conv=first, classifier="head.fc")


class ArchsearchMCi(ArchsearchModel):
    """The MCi / FastViT network of an :class:`~archsearch.space.MCiSpec`, with timm's model API
    (:class:`ArchsearchModel`).

    Attributes:
        spec: The spec the module realises (kept in sync by :meth:`reset_classifier` and
            :meth:`reparameterize`).
        num_features: Channels of the final conv (the head's input).
    """

    spec_class = MCiSpec
    spec_noun = "an MCiSpec"
    pretrained_cfg_of = staticmethod(mci_pretrained_cfg)

    def __init__(self, spec: MCiSpec, *, num_classes: int | None = None, in_chans: int | None = None,
                 global_pool: str = "avg", drop_rate: float = 0.0) -> None:
        """Builds the module (the arguments as in :class:`ArchsearchModel`)."""
        super().__init__(spec, num_classes=num_classes, in_chans=in_chans)
        spec = self.spec
        self.num_features = self.head_hidden_size = spec.num_features
        self.drop_rate = drop_rate
        fused, d0, scale = spec.reparameterized, spec.dims[0], spec.stem_scale_branch
        self.stem = nn.Sequential(
            MobileOneBlock(spec.in_channels, d0, 3, stride=2, scale=scale, fused=fused),
            MobileOneBlock(d0, d0, 3, stride=2, groups=d0, scale=scale, fused=fused),
            MobileOneBlock(d0, d0, 1, scale=scale, fused=fused),
        )
        self.stages = nn.Sequential(*(MCiStage(spec, i) for i in range(spec.n_stages)))
        self.feature_info = [dict(num_chs=d, reduction=4 * 2**i, module=f"stages.{i}") for i, d in enumerate(spec.dims)]
        last = spec.dims[-1]
        self.final_conv = MobileOneBlock(last, spec.num_features, 3, groups=last,
                                         se_width=se_width_final(spec.num_features), fused=fused)
        self.head = ClassifierHead(self.num_features, self.num_classes, pool_type=global_pool, drop_rate=drop_rate)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Conv2d)) and not m.weight.is_meta:
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+).downsample", (0,)), (r"^stages\.(\d+).pos_emb", (0,)), (r"^stages\.(\d+)\.\w+\.(\d+)", None),
        ])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Every stage checkpoints its blocks (the stem and the final conv are not checkpointed)."""
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def reparameterize(self) -> "ArchsearchMCi":
        """Fuses every reparameterisable block in place (eval statistics); returns the module.

        Afterwards ``spec.reparameterized`` is true and the module equals one built from that spec.
        """
        def fuse(parent: nn.Module) -> None:  # a fusing module handles its own children
            for child in parent.children():
                if hasattr(child, "reparameterize"):
                    child.reparameterize()
                else:
                    fuse(child)

        fuse(self)
        self.spec = dataclasses.replace(self.spec, reparameterized=True)
        self.pretrained_cfg = self.default_cfg = {**self.pretrained_cfg, "first_conv": "stem.0.reparam_conv"}
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(self.stages(self.stem(x)))


@register_timm_model
def archsearch_mci(pretrained: bool = False, *, spec: SpecLike | None = None, **kwargs: Any) -> ArchsearchMCi:
    """timm entry point: ``timm.create_model("archsearch_mci", spec=...)``.

    Args:
        pretrained: Must be False (no published weights for searched designs; a ``fastvit_mci*``
            checkpoint loads with ``checkpoint_path=`` into the matching template spec).
        spec: An :class:`MCiSpec`, its dict, JSON text or the path of a JSON file.
        **kwargs: :class:`ArchsearchMCi` arguments (``num_classes``, ``in_chans``, ``global_pool``,
            ``drop_rate``) and timm's ``pretrained_cfg_overlay``, ``features_only`` ...
    """
    return ArchsearchMCi.create(pretrained, spec, kwargs)


@register_builder("mci")
def _build_mci(spec: MCiSpec, **kwargs: Any) -> ArchsearchMCi:
    import timm

    return timm.create_model("archsearch_mci", spec=spec, **kwargs)
