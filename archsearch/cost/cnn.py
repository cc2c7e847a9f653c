"""Exact costs of a :class:`~archsearch.space.CNNSpec`: pure functions, no torch.

Conventions (checked against the built module in the tests):

* MACs count convolutions and linear layers (``FlopCounterMode`` total / 2); norms, activations,
  pooling (the stem's max-pool among them) and biases are not counted.
* Parameters count weights, biases and BatchNorm affine parameters (running stats are buffers).
* The *backbone* is everything but the classifier head (DeepMAD's budget convention).
* Peak activation memory: the largest, over conv layers and the stem's max-pool, of input + output
  elements, plus the block input while a residual branch holds it; float32 bytes at batch 1.

Block layouts are those of :mod:`archsearch.space.cnn`: ``basic`` (conv1, conv2 [, shortcut]; He et al.,
CVPR 2016), ``k1kxk1`` (conv1, conv2, conv3 [, shortcut]) and ``k1dwk1`` (conv1, conv2 [, se_reduce,
se_expand], conv3); the shortcut conv is where :func:`block_has_shortcut_conv` puts it
(``StageSpec.shortcut``). The stem's max-pool, when there is one, sits between the stem conv (whose
``r_out`` is the conv's side) and the first block (whose ``r_in`` is the pooled side).

DeepMAD's budgets use its reference code's own count, which adds BatchNorm, ReLU and residual terms
to the MACs: :func:`deepmad_flops` and :func:`deepmad_params`.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Iterator

from archsearch.errors import SpecError
from archsearch.space.cnn import CNNSpec, StageSpec, conv_out, pool_out, se_channels

__all__ = ["ConvLayer", "cnn_layers", "cnn_params", "cnn_macs", "cnn_activation_memory", "cnn_head_params", "cnn_head_macs", "block_has_shortcut_conv", "block_has_residual", "deepmad_flops", "deepmad_params", "deepmad_se_channels"]


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One conv of the network as the cost model and objectives see it."""

    c_in: int
    c_out: int
    kernel: int
    stride: int
    groups: int
    r_in: int
    r_out: int
    bias: bool
    bn: bool
    role: str  # stem | conv1 | conv2 | conv3 | shortcut | se_reduce | se_expand | head
    superblock: int  # -1 for the stem; the last superblock's index for the head conv
    block: int  # index inside the superblock
    residual_held: int = 0  # elements of the block input held by a residual branch meanwhile

    @property
    def macs(self) -> int:
        if self.role.startswith("se_"):
            return self.c_in * self.c_out // self.groups
        return self.r_out * self.r_out * self.c_out * (self.c_in // self.groups) * self.kernel * self.kernel

    @property
    def params(self) -> int:
        w = self.c_out * (self.c_in // self.groups) * self.kernel * self.kernel
        return w + (self.c_out if self.bias else 0) + (2 * self.c_out if self.bn else 0)

    @property
    def is_main(self) -> bool:
        """Whether the layer is on the main path (counted by DeepMAD's entropy and rho)."""
        return self.role not in ("shortcut", "se_reduce", "se_expand")


_RESNET_BLOCKS = ("basic", "k1kxk1")  # always a residual, a projection shortcut when the shape changes


def block_has_shortcut_conv(stage: StageSpec, first: bool) -> bool:
    """Whether a block has a 1x1 conv + BN projection shortcut (``StageSpec.shortcut``)."""
    if stage.block not in _RESNET_BLOCKS or not first:
        return False
    return stage.shortcut == "conv" or stage.stride != 1 or stage.in_channels != stage.out_channels


def block_has_residual(stage: StageSpec, first: bool) -> bool:
    """Whether a block adds a residual: ResNet blocks always; an inverted residual where the width is kept, at
    stride 1 (``shortcut="auto"``, MobileNetV2's) or at any stride (``"pool"``, average-pooled at stride 2:
    DeepMAD's reference ``ResK1DWK1``)."""
    c_in = stage.in_channels if first else stage.out_channels
    stride = stage.stride if first else 1
    if stage.block in _RESNET_BLOCKS:
        return True
    return c_in == stage.out_channels and (stride == 1 or stage.shortcut == "pool")


def _block_layers(stage: StageSpec, sb: int, j: int, r_in: int) -> Iterator[ConvLayer]:
    first = j == 0
    c_in = stage.in_channels if first else stage.out_channels
    stride = stage.stride if first else 1
    r_out = conv_out(r_in, stride)
    b, k, out = stage.bottleneck, stage.kernel, stage.out_channels
    held = c_in * r_in * r_in if block_has_residual(stage, first) else 0
    if stage.block == "basic":
        yield ConvLayer(c_in, b, k, stride, 1, r_in, r_out, False, True, "conv1", sb, j, 0)
        yield ConvLayer(b, out, k, 1, 1, r_out, r_out, False, True, "conv2", sb, j, held)
        if block_has_shortcut_conv(stage, first):
            yield ConvLayer(c_in, out, 1, stride, 1, r_in, r_out, False, True, "shortcut", sb, j, out * r_out * r_out)
    elif stage.block == "k1kxk1":
        yield ConvLayer(c_in, b, 1, 1, 1, r_in, r_in, False, True, "conv1", sb, j, 0)
        yield ConvLayer(b, b, k, stride, 1, r_in, r_out, False, True, "conv2", sb, j, held)
        yield ConvLayer(b, out, 1, 1, 1, r_out, r_out, False, True, "conv3", sb, j, held)
        if block_has_shortcut_conv(stage, first):
            yield ConvLayer(c_in, out, 1, stride, 1, r_in, r_out, False, True, "shortcut", sb, j, out * r_out * r_out)
    else:
        yield ConvLayer(c_in, b, 1, 1, 1, r_in, r_in, False, True, "conv1", sb, j, 0)
        yield ConvLayer(b, b, k, stride, b, r_in, r_out, False, True, "conv2", sb, j, held)
        if stage.se:
            rd = se_channels(b)
            yield ConvLayer(b, rd, 1, 1, 1, 1, 1, True, False, "se_reduce", sb, j, held + b * r_out * r_out)
            yield ConvLayer(rd, b, 1, 1, 1, 1, 1, True, False, "se_expand", sb, j, held + b * r_out * r_out)
        yield ConvLayer(b, out, 1, 1, 1, r_out, r_out, False, True, "conv3", sb, j, held)


def cnn_layers(spec: CNNSpec) -> list[ConvLayer]:
    """All conv layers of the backbone in execution order (the stem's max-pool is no conv: the first
    block's ``r_in`` is the pooled side); the head conv (``CNNSpec.head_channels``) last, as part of the
    last superblock's stage, on the main path."""
    stem = spec.stem
    r = conv_out(spec.resolution, stem.stride)
    layers = [ConvLayer(stem.in_channels, stem.out_channels, stem.kernel, stem.stride, 1, spec.resolution, r, False, True, "stem", -1, 0)]
    r = stem.out_side(spec.resolution)
    for sb, stage in enumerate(spec.stages):
        for j in range(stage.depth):
            block = list(_block_layers(stage, sb, j, r))
            layers.extend(block)
            r = block[-1].r_out
    if spec.head_channels:  # counted with the last superblock (its stage), as the reference code's last stage holds it
        last = spec.stages[-1]
        layers.append(ConvLayer(last.out_channels, spec.head_channels, 1, 1, 1, r, r, False, True, "head",
                                len(spec.stages) - 1, last.depth))
    return layers


def cnn_head_params(spec: CNNSpec) -> int:
    return spec.out_channels * spec.num_classes + spec.num_classes if spec.num_classes else 0


def cnn_head_macs(spec: CNNSpec) -> int:
    return spec.out_channels * spec.num_classes


def cnn_params(spec: CNNSpec, *, with_head: bool = False) -> int:
    """Parameter count of the backbone (``with_head``: of the whole model)."""
    total = sum(layer.params for layer in cnn_layers(spec))
    return total + (cnn_head_params(spec) if with_head else 0)


def cnn_macs(spec: CNNSpec, *, with_head: bool = False) -> int:
    """Multiply-accumulates at batch 1 of the backbone (``with_head``: of the whole model)."""
    total = sum(layer.macs for layer in cnn_layers(spec))
    return total + (cnn_head_macs(spec) if with_head else 0)


def cnn_activation_memory(spec: CNNSpec) -> int:
    """Peak activation memory in bytes (float32, batch 1); see the module docstring."""
    stem = spec.stem
    peak = 0
    if stem.pool:
        r = conv_out(spec.resolution, stem.stride)
        peak = stem.out_channels * (r * r + pool_out(r) ** 2)
    for layer in cnn_layers(spec):
        if layer.role.startswith("se_"):
            elems = layer.c_in + layer.c_out + layer.residual_held
        else:
            elems = layer.c_in * layer.r_in**2 + layer.c_out * layer.r_out**2 + layer.residual_held
        peak = max(peak, elems)
    return 4 * peak


# --------------------------------------------------------------------------- DeepMAD's own counting
#
# The budgets of DeepMAD (Shen et al., CVPR 2023) are in the "FLOPs" and "model size" of its reference
# code, TinyNAS (github.com/alibaba/lightweight-neural-architecture-search, tinynas/models): every block
# keeps a per-pixel count at unit input side (``self.flops``) that ``get_flops(resolution)`` scales by
# ``resolution**2``, and ``CnnNet.get_flops`` divides the side by each block's stride as it goes.


def deepmad_se_channels(bottleneck: int) -> int:
    """Width of the reference code's squeeze-excitation (TinyNAS ``blocks_basic.SE``, ratio 0.25):
    a quarter of the block width, rounded half-even by Python's ``round``, then *down* to a multiple
    of 8, at least 8 (:func:`~archsearch.space.se_channels` rounds to the nearest multiple instead)."""
    return max(1, round(bottleneck * 0.25) // 8) * 8


def deepmad_flops(spec: CNNSpec) -> int:
    """The backbone's "FLOPs" as DeepMAD's reference code counts them (TinyNAS ``CnnNet.get_flops``).

    Conv MACs (as :func:`cnn_macs`) plus, per output element, 2 for every BatchNorm and 1 for every
    ReLU, plus the residual terms below; the classifier is left out, as in DeepMAD's budgets. The
    rules, read from ``tinynas/models/blocks_cnn_2d`` (``ConvKXBN``, ``ConvKXBNRELU`` in
    ``blocks_basic.py``, ``ResK1KXK1`` in ``super_res_k1kxk1.py``, ``ResK1DWK1`` / ``ResK1DWSEK1`` in
    ``super_res_k1dwk1.py`` / ``super_res_k1dwsek1.py``), with ``R`` a block's input side and
    ``R' = R / stride``:

    * stem (``ConvKXBNRELU``): ``(c_in k^2 + 2 + 1) * c_out * R'^2``.
    * ``k1kxk1`` (``ResK1KXK1``): ``(c b + 2b + b) R^2 + (b^2 k^2 + 2b + b) R'^2 + (b out + 2 out + out) R'^2``
      (BN after the three convs, ReLU after the first two and after the sum); at stride 2 the
      residual's 2x2 average pool adds ``c R^2``; a projection shortcut adds ``(c out + 2 out + out) R'^2``
      (its conv, its BN, and the residual sum, which the code counts only on this branch: an
      identity sum costs nothing). The projection is counted where the spec has one
      (:func:`block_has_shortcut_conv`); the reference code puts one on the first block of every
      bottleneck superblock (``BaseSuperBlock`` sets ``force_resproj``), which is
      ``StageSpec.shortcut == "conv"``. (The reference pools then projects at stride 1 where
      archsearch strides the 1x1 conv: the same MACs.)
    * ``k1dwk1`` (``ResK1DWK1``; ``ResK1DWSEK1`` with ``se``, whose SE the code leaves uncounted):
      ``(c b + 3b) R^2 + (b k^2 + 3b) R'^2 + (b out + 2 out + out) R'^2``: the reference block applies
      a ReLU after the projecting 1x1 conv too, so the count is the reference block's; its residual is an
      identity whenever ``c == out`` (average-pooled at stride 2, adding ``c R^2``), never a projection,
      and its sum is not counted. archsearch builds that block with ``StageSpec.shortcut == "pool"``
      (``deepmad-mbv2``); with ``"auto"`` it builds MobileNetV2's linear bottleneck, whose identity is
      at stride 1 only, and the count stays the reference block's.
    * the head conv (``CNNSpec.head_channels``; a 1x1 ``ConvKXBNRELU``): ``(c + 3) * head * R^2`` at the
      last side.
    * ``basic`` has no counterpart and is refused: the reference ``ResKXKX`` strides its second kxk
      conv where archsearch's basic block strides the first, so the two networks differ.
    * a max-pool stem (the classic ResNet's, :func:`~archsearch.space.resnet_spec`) has no counterpart
      either; since these rules count only convs, BatchNorm, ReLU and the residual path, it is counted as
      zero (an extension, so that ResNet-50 can be set beside DeepMAD-R50 in this count), and the blocks
      after it run at the pooled side. ResNet-50's backbone costs 4 121 883 136 in this count against
      its 4 087 136 256 MACs.

    The code scales every term by the real ``(resolution / total stride)^2`` where archsearch's sides
    are ``ceil(side / stride)``; the two agree whenever every strided side is even (224 or 288 px
    with DeepMAD's strides), and the count is then an integer. Otherwise the code's fractional count
    is rounded to the nearest integer.

    Known answer: the published DeepMAD-R50 (:data:`~archsearch.space.DEEPMAD_R50`) costs
    4 087 263 656 in this count against 4 041 529 408 MACs.

    Raises:
        SpecError: For a ``basic`` superblock (no counterpart in the code).
    """
    for i, stage in enumerate(spec.stages):
        if stage.block == "basic":
            raise SpecError(f"deepmad_flops: stages[{i}] is a basic block, which the reference code has no "
                            "counterpart for (its ResKXKX strides the second kxk conv, archsearch the first)")
    stem = spec.stem
    side = Fraction(spec.resolution, stem.stride)
    total = (stem.in_channels * stem.kernel**2 + 3) * stem.out_channels * side**2
    if stem.pool:  # counted as zero (see above); the blocks run at the pooled side
        side = side / 2
    for stage in spec.stages:
        b, k, out = stage.bottleneck, stage.kernel, stage.out_channels
        for j in range(stage.depth):
            first = j == 0
            c = stage.in_channels if first else out
            stride = stage.stride if first else 1
            r_in, r_out = side, side / stride
            if stage.block == "k1kxk1":
                total += (c * b + 3 * b) * r_in**2 + (b * b * k * k + 3 * b) * r_out**2 + (b * out + 3 * out) * r_out**2
                if stride == 2:
                    total += c * r_in**2
                if block_has_shortcut_conv(stage, first):
                    total += (c * out + 3 * out) * r_out**2
            else:
                total += (c * b + 3 * b) * r_in**2 + (b * k * k + 3 * b) * r_out**2 + (b * out + 3 * out) * r_out**2
                if stride == 2 and c == out:
                    total += c * r_in**2
            side = r_out
    if spec.head_channels:
        total += (spec.stages[-1].out_channels + 3) * spec.head_channels * side**2
    return round(total)


def deepmad_params(spec: CNNSpec) -> int:
    """The backbone's parameters as DeepMAD's reference code counts them (TinyNAS ``get_model_size``).

    Every conv counts its weights and ``2 * c_out`` for its BatchNorm, as :func:`cnn_params` does, so
    the two agree for the stem and the ``k1kxk1``, ``basic`` and plain ``k1dwk1`` blocks (with the
    projection shortcuts the spec has: ``StageSpec.shortcut == "conv"`` is the reference's). They
    differ only for ``k1dwk1`` with squeeze-excitation: the reference SE (``blocks_basic.SE``) is two
    1x1 convs with BatchNorm and no bias, of width :func:`deepmad_se_channels`, where archsearch's has
    biases and :func:`~archsearch.space.se_channels`.

    A max-pool stem has no parameters (nor a counterpart in the code).
    """
    total = 0
    for layer in cnn_layers(spec):
        if layer.role == "se_reduce":  # the whole reference SE in place of archsearch's
            b = layer.c_in
            rd = deepmad_se_channels(b)
            total += b * rd + 2 * rd + rd * b + 2 * b
        elif layer.role != "se_expand":
            total += layer.params
    return total
