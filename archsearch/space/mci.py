"""MCi (FastViT) specs: the MobileCLIP image towers as timm builds ``fastvit_mci0/1/2``.

Architecture (Vasu et al., "FastViT: A Fast Hybrid Vision Transformer using Structural
Reparameterization", ICCV 2023; Vasu et al., "MobileCLIP", CVPR 2024; MCi2 in "CLIP with Quality
Captions", 2024):

* stem: three MobileOne blocks (Vasu et al., "MobileOne", CVPR 2023): 3x3 stride 2, depthwise 3x3
  stride 2, 1x1; each with a 1x1 "scale" branch (kernel > 1) and a BatchNorm identity branch
  (same shape) beside its kxk conv + BN, GELU after the sum;
* stages: stage 1 keeps the stem's width and resolution; every later stage opens with a patch
  embedding (a 7x7 stride-2 conv grouped by the input width, with a 3x3 branch, an optional
  squeeze-excitation and GELU, then a 1x1 MobileOne block), so each width is a multiple of the
  previous one;
* token mixers: RepMixer (depthwise kxk MobileOne conv minus a BatchNorm "norm", layer-scaled,
  residual) or multi-head self-attention (BatchNorm, qkv, head dim 32, proj, layer scale,
  residual), optionally after a 7x7 depthwise conditional positional encoding (RepCPE, Chu et
  al., "Conditional Positional Encodings for Vision Transformers", ICLR 2023);
* ConvFFN in every block: depthwise 7x7 + BN, 1x1 expansion, GELU, 1x1 projection, layer scale;
* final conv: a MobileOne 3x3 conv grouped by the last width to ``cls_ratio`` times it, with SE,
  then global average pooling and a linear head (512-d CLIP projection for ``fastvit_mci*``).

``reparameterized`` selects the inference form where every multi-branch block is fused into one
conv with bias (what timm's ``reparameterize_model`` produces).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from archsearch.errors import SpecError, did_you_mean
from archsearch.space.base import MAX_CLASSES, ArchSpec, check_int, register_family

__all__ = ["MCiSpec", "TOKEN_MIXERS", "MCI_TEMPLATES", "mci_template", "half_up"]

TOKEN_MIXERS = ("repmixer", "attention")


def half_up(size: int) -> int:
    """Side after a stride-2 'same'-padded conv: ceil(size / 2)."""
    return -(-size // 2)


@register_family("mci")
@dataclasses.dataclass(frozen=True)
class MCiSpec(ArchSpec):
    """An MCi / FastViT network.

    Attributes:
        dims: Width of each stage; each is a multiple of the one before (the patch embedding's conv
            is grouped by its input width), attention stages a multiple of ``head_dim``.
        depths: Blocks per stage.
        token_mixers: ``repmixer`` or ``attention`` per stage.
        pos_embs: Whether a stage starts with a 7x7 conditional positional encoding (RepCPE).
        se_downsamples: Whether a stage's patch embedding carries squeeze-excitation (ignored for
            stage 1, which has no patch embedding).
        mlp_ratios: ConvFFN expansion per stage (hidden width ``int(dim * ratio)``).
        head_dim: Attention head width.
        repmixer_kernel: Kernel of the RepMixer depthwise conv.
        cls_ratio: The final conv's width is ``cls_ratio * dims[-1]`` (an integer: the conv is
            grouped by the last width).
        stem_scale_branch: Whether the stem's MobileOne blocks carry their 1x1 scale branch.
        lkc_use_act: GELU after the patch embedding's large-kernel conv (timm's ``lkc_use_act``;
            no effect on costs).
        reparameterized: Build the fused inference form instead of the training form.
        resolution: Input side length in pixels.
        in_channels: Image channels.
        num_classes: Outputs of the linear head (512: the CLIP projection; 0: none).
        name: Free-form label.
    """

    family: ClassVar[str]
    dims: tuple[int, ...]
    depths: tuple[int, ...]
    token_mixers: tuple[str, ...]
    pos_embs: tuple[bool, ...]
    se_downsamples: tuple[bool, ...]
    mlp_ratios: tuple[float, ...]
    head_dim: int = 32
    repmixer_kernel: int = 3
    cls_ratio: int = 2
    stem_scale_branch: bool = True
    lkc_use_act: bool = True
    reparameterized: bool = False
    resolution: int = 256
    in_channels: int = 3
    num_classes: int = 512
    name: str = ""

    def __post_init__(self) -> None:
        for field in ("dims", "depths", "token_mixers", "pos_embs", "se_downsamples", "mlp_ratios"):
            value = getattr(self, field)
            if not isinstance(value, (tuple, list)):
                raise SpecError(f"mci.{field}: expected a list with one entry per stage, got {value!r}")
            object.__setattr__(self, field, tuple(value))
        n = len(self.dims)
        if not 1 <= n <= 8:
            raise SpecError(f"mci.dims: expected 1 to 8 stages, got {n}")
        for field in ("depths", "token_mixers", "pos_embs", "se_downsamples", "mlp_ratios"):
            if len(getattr(self, field)) != n:
                raise SpecError(f"mci.{field}: expected {n} entries (one per stage of dims), got {len(getattr(self, field))}")
        check_int("mci", "head_dim", self.head_dim, 1, 1024)
        for i, (d, depth, mixer, pos, se, ratio) in enumerate(zip(
            self.dims, self.depths, self.token_mixers, self.pos_embs, self.se_downsamples, self.mlp_ratios
        )):
            check_int("mci", f"dims[{i}]", d, 1, 16384)
            check_int("mci", f"depths[{i}]", depth, 1, 256)
            if mixer not in TOKEN_MIXERS:
                raise SpecError(f"mci.token_mixers[{i}]: expected one of {list(TOKEN_MIXERS)}, got {mixer!r}{did_you_mean(mixer, TOKEN_MIXERS)}")
            for field, flag in (("pos_embs", pos), ("se_downsamples", se)):
                if not isinstance(flag, bool):
                    raise SpecError(f"mci.{field}[{i}]: expected true or false, got {flag!r}")
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 16:
                raise SpecError(f"mci.mlp_ratios[{i}]: expected a number in (0, 16], got {ratio!r}")
            if int(d * ratio) < 1:
                raise SpecError(f"mci.mlp_ratios[{i}]: the hidden width int({d} * {ratio}) must be >= 1")
            if mixer == "attention" and d % self.head_dim:
                raise SpecError(f"mci.dims[{i}]: an attention stage's width must be a multiple of head_dim "
                                f"{self.head_dim}, got {d}")
            if i > 0 and d % self.dims[i - 1]:
                raise SpecError(f"mci.dims[{i}]: must be a multiple of dims[{i - 1}] = {self.dims[i - 1]} (the patch "
                                f"embedding conv is grouped by its input width), got {d}")
        if self.repmixer_kernel not in (1, 3, 5, 7):
            raise SpecError(f"mci.repmixer_kernel: expected one of [1, 3, 5, 7], got {self.repmixer_kernel!r}")
        check_int("mci", "cls_ratio", self.cls_ratio, 1, 16)
        for field in ("stem_scale_branch", "lkc_use_act", "reparameterized"):
            if not isinstance(getattr(self, field), bool):
                raise SpecError(f"mci.{field}: expected true or false, got {getattr(self, field)!r}")
        check_int("mci", "resolution", self.resolution, 8, 4096)
        check_int("mci", "in_channels", self.in_channels, 1, 64)
        check_int("mci", "num_classes", self.num_classes, 0, MAX_CLASSES)

    @property
    def n_stages(self) -> int:
        return len(self.dims)

    @property
    def num_features(self) -> int:
        """Width of the final conv's output (the head's input)."""
        return self.cls_ratio * self.dims[-1]

    def hidden(self, i: int) -> int:
        """ConvFFN hidden width of stage ``i``."""
        return int(self.dims[i] * self.mlp_ratios[i])

    def sides(self) -> list[int]:
        """Feature-map side of each stage (the stem divides by 4, each later stage by 2)."""
        side = half_up(half_up(self.resolution))
        out = [side]
        for _ in self.dims[1:]:
            side = half_up(side)
            out.append(side)
        return out

    def layout(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        sides = self.sides()
        rows: list[tuple[Any, ...]] = [
            (i + 1, self.token_mixers[i] + ("+cpe" if self.pos_embs[i] else ""), self.dims[i], self.depths[i],
             self.hidden(i), f"{sides[i]}x{sides[i]}", "yes" if (i > 0 and self.se_downsamples[i]) else "-")
            for i in range(self.n_stages)
        ]
        rows.append(("final", "mobileone+se", self.num_features, 1, "-", f"{sides[-1]}x{sides[-1]}", "yes"))
        form = "inference form" if self.reparameterized else "training form"
        return (f"{self.name or 'mci'} ({self.resolution} px, {self.num_classes} outputs, {form})",
                ["stage", "mixer", "dim", "depth", "mlp", "map", "se"], rows)


def _mci(name: str, dims: tuple[int, ...], depths: tuple[int, ...]) -> MCiSpec:
    return MCiSpec(dims=dims, depths=depths, token_mixers=("repmixer",) * 3 + ("attention",),
                   pos_embs=(False, False, False, True), se_downsamples=(False, False, True, True),
                   mlp_ratios=(3.0,) * 4, name=name)


# timm 1.0.31 ``fastvit_mci0/1/2`` (MobileCLIP S0/S1/S2 image towers; MCi2 also in PAPERS.md)
MCI_TEMPLATES: dict[str, MCiSpec] = {
    "mci0": _mci("mci0", (64, 128, 256, 512), (2, 6, 10, 2)),
    "mci1": _mci("mci1", (64, 128, 256, 512), (4, 12, 20, 4)),
    "mci2": _mci("mci2", (80, 160, 320, 640), (4, 12, 24, 4)),
}


def mci_template(name: str, **changes: Any) -> MCiSpec:
    """The spec of ``fastvit_<name>`` (``mci0``, ``mci1``, ``mci2``) with optional field changes."""
    if name not in MCI_TEMPLATES:
        raise SpecError(f"mci template: expected one of {sorted(MCI_TEMPLATES)}, got {name!r}")
    spec = MCI_TEMPLATES[name]
    return dataclasses.replace(spec, **changes) if changes else spec
