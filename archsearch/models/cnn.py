"""Torch modules realising a :class:`~archsearch.space.CNNSpec`, registered with timm as ``archsearch_cnn``.

The modules follow :mod:`archsearch.cost.cnn` layer for layer, so the cost model's params and MACs
equal the module's (the tests prove it for every block and for random specs):

* every conv is 'same'-padded (``padding = k // 2``), bias-free and followed by BatchNorm; the
  output side is ``ceil(size / stride)``;
* the stride sits on the (first) kxk conv, the first 1x1 runs at input resolution;
* stem: the conv + BN + ReLU, then (``StemSpec.pool``) the classic 3x3 stride-2 max-pool with
  padding 1 of He et al. (CVPR 2016), a separate child ``stem_pool`` as timm's ``resnet*`` keep it;
* ``basic`` (He et al., CVPR 2016; ResNet-18/34): two kxk convs (in -> b, stride; b -> out), ReLU
  after the first and after the sum, a strided 1x1 conv + BN shortcut when the shape changes;
* ``k1kxk1`` (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016): bottleneck
  with a strided 1x1 conv + BN shortcut when the shape changes, ReLU after the sum;
* both take ``StageSpec.shortcut``: with ``"conv"`` the first block of the superblock has the
  projection whatever its shape (DeepMAD's reference code, TinyNAS ``BaseSuperBlock``; it
  average-pools before a stride-1 projection where this strides the 1x1 conv, which has the same
  MACs and parameters);
* ``k1dwk1`` (Sandler et al., "MobileNetV2", CVPR 2018): inverted residual with an optional
  squeeze-excitation (Hu et al., CVPR 2018) of width :func:`~archsearch.space.se_channels`, a
  linear projection and an identity residual only when the shape is kept; with ``shortcut="pool"``
  DeepMAD's reference ``ResK1DWK1`` (TinyNAS): the identity residual whenever the width is kept, through
  a 2x2 average pool at stride 2 (``ceil_mode``, so odd sides give the conv's ``ceil(size / 2)``), and
  a ReLU after the sum, on every block of the superblock;
* head: the optional 1x1 conv + BN + ReLU (``CNNSpec.head_channels``; MobileNetV2's final conv, the
  child ``final_conv``), then global average pooling and a linear classifier (none when ``num_classes`` is 0).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from timm.layers import ClassifierHead, SEModule, create_act_layer
from torch import nn

from archsearch.models._base import ArchsearchModel, spec_pretrained_cfg
from archsearch.models._builder import SpecLike
from archsearch.models._registry import get_block, register_block, register_builder, register_timm_model
from archsearch.errors import SpecError
from archsearch.space.cnn import CNNSpec, conv_out, se_channels

__all__ = [
    "ArchsearchCNN", "BasicBlock", "Bottleneck", "ConvNormAct", "InvertedResidual", "archsearch_cnn", "cnn_pretrained_cfg",
]


class ConvNormAct(nn.Module):
    """A bias-free 'same'-padded conv, BatchNorm and an optional activation."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, groups: int = 1,
        act_layer: str | None = "relu",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = create_act_layer(act_layer, inplace=True) if act_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _shortcut(in_channels: int, out_channels: int, stride: int, shortcut: str) -> nn.Module:
    """The residual path: a strided 1x1 conv + BN where :func:`archsearch.cost.cnn.block_has_shortcut_conv`
    puts one (the shape changes, or ``shortcut="conv"``), else identity."""
    if shortcut not in ("auto", "conv"):
        raise SpecError(f"shortcut: expected one of ['auto', 'conv'], got {shortcut!r}")
    if shortcut == "conv" or stride != 1 or in_channels != out_channels:
        return ConvNormAct(in_channels, out_channels, 1, stride=stride, act_layer=None)
    return nn.Identity()


class _ResNetBlock(nn.Module):
    """A ResNet block: a main branch of ``ConvNormAct`` layers ``conv1``, ``conv2`` ... (the last without
    activation) as the subclass's :meth:`layers` lists them, the residual of :func:`_shortcut` and the
    activation after the sum."""

    has_residual = True

    def __init__(
        self, in_channels: int, out_channels: int, *, bottleneck: int, kernel: int = 3, stride: int = 1,
        se: bool = False, act_layer: str = "relu", shortcut: str = "auto",
    ) -> None:
        super().__init__()
        if se:
            # The cost model counts no SE layers for this block; building one would break its budgets.
            raise SpecError(f"stage.se: the {self.block_type} block has no squeeze-excitation variant, got se=True; "
                            "set se to false or use the k1dwk1 block")
        layers = self.layers(in_channels, out_channels, bottleneck, kernel, stride)
        self._main = tuple(f"conv{i}" for i in range(1, len(layers) + 1))
        for i, (name, (c_in, c_out, k, s)) in enumerate(zip(self._main, layers), 1):
            self.add_module(name, ConvNormAct(c_in, c_out, k, stride=s, act_layer=act_layer if i < len(layers) else None))
        self.shortcut = _shortcut(in_channels, out_channels, stride, shortcut)
        self.act = create_act_layer(act_layer, inplace=True)

    @staticmethod
    def layers(c_in: int, c_out: int, b: int, k: int, stride: int) -> list[tuple[int, int, int, int]]:
        """The main branch: (input channels, output channels, kernel, stride) of each conv."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The main branch runs before the shortcut conv, the order the memory model assumes.
        out = x
        for name in self._main:
            out = self._modules[name](out)
        return self.act(out + self.shortcut(x))


@register_block("basic")
class BasicBlock(_ResNetBlock):
    """ResNet basic block (He et al., CVPR 2016): kxk (in -> b, stride), kxk (b -> out), residual, ReLU."""

    @staticmethod
    def layers(c_in: int, c_out: int, b: int, k: int, stride: int) -> list[tuple[int, int, int, int]]:
        return [(c_in, b, k, stride), (b, c_out, k, 1)]


@register_block("k1kxk1")
class Bottleneck(_ResNetBlock):
    """ResNet bottleneck: 1x1 (in -> b), kxk (b -> b, stride), 1x1 (b -> out), residual, ReLU."""

    @staticmethod
    def layers(c_in: int, c_out: int, b: int, k: int, stride: int) -> list[tuple[int, int, int, int]]:
        return [(c_in, b, 1, 1), (b, b, k, stride), (b, c_out, 1, 1)]


@register_block("k1dwk1")
class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, depthwise kxk (stride), [SE], linear 1x1 project."""

    def __init__(
        self, in_channels: int, out_channels: int, *, bottleneck: int, kernel: int = 3, stride: int = 1,
        se: bool = False, act_layer: str = "relu", shortcut: str = "auto",
    ) -> None:
        super().__init__()
        if shortcut not in ("auto", "pool"):
            raise SpecError(f"shortcut: the k1dwk1 block has the 'auto' and 'pool' shortcuts, got {shortcut!r}")
        reference = shortcut == "pool"
        self.has_residual = in_channels == out_channels and (stride == 1 or reference)
        self.pool = (nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False)
                     if self.has_residual and stride != 1 else nn.Identity())
        self.act = create_act_layer(act_layer, inplace=True) if reference else nn.Identity()
        self.conv1 = ConvNormAct(in_channels, bottleneck, 1, act_layer=act_layer)
        self.conv2 = ConvNormAct(bottleneck, bottleneck, kernel, stride=stride, groups=bottleneck, act_layer=act_layer)
        self.se = (
            SEModule(bottleneck, rd_channels=se_channels(bottleneck), act_layer=act_layer) if se else nn.Identity()
        )
        self.conv3 = ConvNormAct(bottleneck, out_channels, 1, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act(out + self.pool(x) if self.has_residual else out)


def cnn_pretrained_cfg(spec: CNNSpec) -> dict[str, Any]:
    """timm's pretrained-config dict for a spec (input size, pool size, classifier, no weights)."""
    side = spec.stem.out_side(spec.resolution)
    for stage in spec.stages:
        side = conv_out(side, stage.stride)
    return spec_pretrained_cfg(spec, in_channels=spec.stem.in_channels, pool_size=(side, side), first_conv="stem.conv",
                               classifier="head.fc")


class ArchsearchCNN(ArchsearchModel):
    """The CNN of a :class:`~archsearch.space.CNNSpec`, with timm's model API (:class:`ArchsearchModel`).

    Attributes:
        num_features: Channels of the last feature map (the classifier's input).
        feature_info: timm's per-level channels, reductions and module names.
    """

    spec_class = CNNSpec
    spec_noun = "a CNNSpec"
    pretrained_cfg_of = staticmethod(cnn_pretrained_cfg)

    def __init__(
        self, spec: CNNSpec, *, num_classes: int | None = None, in_chans: int | None = None,
        global_pool: str = "avg", drop_rate: float = 0.0, act_layer: str = "relu",
    ) -> None:
        """Builds the module (``in_chans`` is the stem's; the other arguments as in :class:`ArchsearchModel`).

        Args:
            act_layer: timm activation name (``"relu"`` as in the papers; costs do not depend on it).
        """
        super().__init__(spec, num_classes=num_classes, in_chans=in_chans)
        spec = self.spec
        self.num_features = self.head_hidden_size = spec.out_channels
        self.drop_rate = drop_rate

        stem = spec.stem
        self.stem = ConvNormAct(stem.in_channels, stem.out_channels, stem.kernel, stride=stem.stride, act_layer=act_layer)
        # registered between stem and stages: timm's feature extraction runs the children in order
        self.stem_pool = nn.MaxPool2d(3, stride=2, padding=1) if stem.pool else nn.Identity()
        self.feature_info = [dict(num_chs=stem.out_channels, reduction=stem.stride, module="stem")]
        stages, reduction = [], stem.reduction
        for i, stage in enumerate(spec.stages):
            block_cls = get_block(stage.block)
            stages.append(nn.Sequential(*(
                block_cls(
                    stage.in_channels if j == 0 else stage.out_channels, stage.out_channels,
                    bottleneck=stage.bottleneck, kernel=stage.kernel, stride=stage.stride if j == 0 else 1,
                    se=stage.se, act_layer=act_layer,
                    shortcut=stage.shortcut if j == 0 or stage.shortcut == "pool" else "auto",
                )
                for j in range(stage.depth)
            )))
            reduction *= stage.stride
            self.feature_info.append(dict(num_chs=stage.out_channels, reduction=reduction, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.final_conv = (ConvNormAct(spec.stages[-1].out_channels, spec.head_channels, 1, act_layer=act_layer)
                           if spec.head_channels else nn.Identity())
        self.head = ClassifierHead(self.num_features, self.num_classes, pool_type=global_pool, drop_rate=drop_rate)
        self._init_weights()

    @staticmethod
    def with_overrides(spec: CNNSpec, num_classes: int | None = None, in_chans: int | None = None) -> CNNSpec:
        """The spec with timm's ``num_classes`` / ``in_chans`` arguments applied (the input channels are the stem's)."""
        if num_classes is not None and num_classes != spec.num_classes:
            spec = dataclasses.replace(spec, num_classes=num_classes)
        if in_chans is not None and in_chans != spec.stem.in_channels:
            spec = dataclasses.replace(spec, stem=dataclasses.replace(spec.stem, in_channels=in_chans))
        return spec

    @staticmethod
    def input_channels(spec: CNNSpec) -> int:
        return spec.stem.in_channels

    @staticmethod
    def feature_levels(spec: CNNSpec) -> int:
        return len(spec.stages) + 1  # the stem and every stage

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem", blocks=[(r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)", None),
                                           (r"^final_conv", (99999,))])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(self._checkpointed(self.stages, self.stem_pool(self.stem(x))))


@register_timm_model
def archsearch_cnn(pretrained: bool = False, *, spec: SpecLike | None = None, **kwargs: Any) -> ArchsearchCNN:
    """timm entry point: ``timm.create_model("archsearch_cnn", spec=...)``.

    Args:
        pretrained: Must be False: searched architectures have no published weights (load your own
            with timm's ``checkpoint_path=``).
        spec: A :class:`CNNSpec`, its dict, JSON text or the path of a JSON file.
        **kwargs: :class:`ArchsearchCNN` arguments (``num_classes``, ``in_chans``, ``global_pool``,
            ``drop_rate``, ``act_layer``) and timm's ``pretrained_cfg_overlay``, ``features_only`` ...
    """
    return ArchsearchCNN.create(pretrained, spec, kwargs)


@register_builder("cnn")
def _build_cnn(spec: CNNSpec, **kwargs: Any) -> ArchsearchCNN:
    import timm

    return timm.create_model("archsearch_cnn", spec=spec, **kwargs)
