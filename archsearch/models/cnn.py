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
  linear projection and an identity residual only when the shape is kept;
* head: global average pooling and a linear classifier (none when ``num_classes`` is 0).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from timm.layers import ClassifierHead, SEModule, create_act_layer
from timm.models import build_model_with_cfg, checkpoint_seq
from timm.models._pretrained import PretrainedCfg
from torch import nn

from archsearch.models._builder import SpecLike, entry_spec
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


def _refuse_se(block: str, se: bool) -> None:
    if se:
        # The cost model counts no SE layers for this block; building one would break its budgets.
        raise SpecError(f"stage.se: the {block} block has no squeeze-excitation variant, got se=True; "
                        "set se to false or use the k1dwk1 block")


@register_block("basic")
class BasicBlock(nn.Module):
    """ResNet basic block (He et al., CVPR 2016): kxk (in -> b, stride), kxk (b -> out), residual, ReLU."""

    has_residual = True

    def __init__(
        self, in_channels: int, out_channels: int, *, bottleneck: int, kernel: int = 3, stride: int = 1,
        se: bool = False, act_layer: str = "relu", shortcut: str = "auto",
    ) -> None:
        super().__init__()
        _refuse_se("basic", se)
        self.conv1 = ConvNormAct(in_channels, bottleneck, kernel, stride=stride, act_layer=act_layer)
        self.conv2 = ConvNormAct(bottleneck, out_channels, kernel, act_layer=None)
        self.shortcut = _shortcut(in_channels, out_channels, stride, shortcut)
        self.act = create_act_layer(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The main branch runs before the shortcut conv, the order the memory model assumes.
        out = self.conv2(self.conv1(x))
        return self.act(out + self.shortcut(x))


@register_block("k1kxk1")
class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 (in -> b), kxk (b -> b, stride), 1x1 (b -> out), residual, ReLU."""

    has_residual = True

    def __init__(
        self, in_channels: int, out_channels: int, *, bottleneck: int, kernel: int = 3, stride: int = 1,
        se: bool = False, act_layer: str = "relu", shortcut: str = "auto",
    ) -> None:
        super().__init__()
        _refuse_se("k1kxk1", se)
        self.conv1 = ConvNormAct(in_channels, bottleneck, 1, act_layer=act_layer)
        self.conv2 = ConvNormAct(bottleneck, bottleneck, kernel, stride=stride, act_layer=act_layer)
        self.conv3 = ConvNormAct(bottleneck, out_channels, 1, act_layer=None)
        self.shortcut = _shortcut(in_channels, out_channels, stride, shortcut)
        self.act = create_act_layer(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The main branch runs before the shortcut conv, the order the memory model assumes.
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.act(out + self.shortcut(x))


@register_block("k1dwk1")
class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, depthwise kxk (stride), [SE], linear 1x1 project."""

    def __init__(
        self, in_channels: int, out_channels: int, *, bottleneck: int, kernel: int = 3, stride: int = 1,
        se: bool = False, act_layer: str = "relu", shortcut: str = "auto",
    ) -> None:
        super().__init__()
        if shortcut != "auto":
            raise SpecError(f"shortcut: the k1dwk1 block only has the 'auto' shortcut, got {shortcut!r}")
        self.has_residual = stride == 1 and in_channels == out_channels
        self.conv1 = ConvNormAct(in_channels, bottleneck, 1, act_layer=act_layer)
        self.conv2 = ConvNormAct(bottleneck, bottleneck, kernel, stride=stride, groups=bottleneck, act_layer=act_layer)
        self.se = (
            SEModule(bottleneck, rd_channels=se_channels(bottleneck), act_layer=act_layer) if se else nn.Identity()
        )
        self.conv3 = ConvNormAct(bottleneck, out_channels, 1, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.se(self.conv2(self.conv1(x))))
        return out + x if self.has_residual else out


def _with_overrides(spec: CNNSpec, num_classes: int | None, in_chans: int | None) -> CNNSpec:
    """The spec with timm's ``num_classes`` / ``in_chans`` arguments applied (validated by the spec)."""
    if num_classes is not None and num_classes != spec.num_classes:
        spec = dataclasses.replace(spec, num_classes=num_classes)
    if in_chans is not None and in_chans != spec.stem.in_channels:
        spec = dataclasses.replace(spec, stem=dataclasses.replace(spec.stem, in_channels=in_chans))
    return spec


def cnn_pretrained_cfg(spec: CNNSpec) -> dict[str, Any]:
    """timm's pretrained-config dict for a spec (input size, pool size, classifier, no weights)."""
    side = spec.stem.out_side(spec.resolution)
    for stage in spec.stages:
        side = conv_out(side, stage.stride)
    return PretrainedCfg(
        architecture="archsearch_cnn",
        input_size=(spec.stem.in_channels, spec.resolution, spec.resolution),
        pool_size=(side, side),
        num_classes=spec.num_classes,
        first_conv="stem.conv",
        classifier="head.fc",
        description=spec.name or None,
    ).to_dict()


class ArchsearchCNN(nn.Module):
    """The CNN of a :class:`~archsearch.space.CNNSpec`, with timm's model API.

    Attributes:
        spec: The spec the module realises (kept in sync by :meth:`reset_classifier`).
        num_classes: Classifier outputs (0: the head returns pooled features).
        num_features: Channels of the last feature map (the classifier's input).
        feature_info: timm's per-level channels, reductions and module names.
        pretrained_cfg: timm's config dict (also ``default_cfg``).
    """

    def __init__(
        self, spec: CNNSpec, *, num_classes: int | None = None, in_chans: int | None = None,
        global_pool: str = "avg", drop_rate: float = 0.0, act_layer: str = "relu",
    ) -> None:
        """Builds the module.

        Args:
            spec: The architecture.
            num_classes: Overrides ``spec.num_classes``.
            in_chans: Overrides ``spec.stem.in_channels``.
            global_pool: timm pooling type of the head (``"avg"`` as in the cost model).
            drop_rate: Dropout before the classifier.
            act_layer: timm activation name (``"relu"`` as in the papers; costs do not depend on it).
        """
        super().__init__()
        if not isinstance(spec, CNNSpec):
            raise SpecError(f"spec: expected a CNNSpec, got {type(spec).__name__}")
        spec = _with_overrides(spec, num_classes, in_chans)
        self.spec = spec
        self.num_classes = spec.num_classes
        self.in_chans = spec.stem.in_channels
        self.num_features = self.head_hidden_size = spec.out_channels
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

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
                    se=stage.se, act_layer=act_layer, shortcut=stage.shortcut if j == 0 else "auto",
                )
                for j in range(stage.depth)
            )))
            reduction *= stage.stride
            self.feature_info.append(dict(num_chs=stage.out_channels, reduction=reduction, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(self.num_features, self.num_classes, pool_type=global_pool, drop_rate=drop_rate)
        self.pretrained_cfg = self.default_cfg = cnn_pretrained_cfg(spec)
        self._init_weights()

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
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replaces the classifier (0: none, the head returns pooled features) and optionally the pooling."""
        self.spec = _with_overrides(self.spec, num_classes, None)
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.stem(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.stages, x)
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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
    cnn = entry_spec("archsearch_cnn", "cnn", pretrained, spec, kwargs)
    cnn = _with_overrides(cnn, kwargs.pop("num_classes", None), kwargs.pop("in_chans", None))  # type: ignore[arg-type]
    return build_model_with_cfg(
        ArchsearchCNN, "archsearch_cnn", pretrained=False, spec=cnn, pretrained_cfg=cnn_pretrained_cfg(cnn),
        feature_cfg=dict(flatten_sequential=True, out_indices=tuple(range(len(cnn.stages) + 1))), **kwargs,
    )


@register_builder("cnn")
def _build_cnn(spec: CNNSpec, **kwargs: Any) -> ArchsearchCNN:
    import timm

    return timm.create_model("archsearch_cnn", spec=spec, **kwargs)
