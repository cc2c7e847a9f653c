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
se_expand], conv3). The stem's max-pool, when there is one, sits between the stem conv (whose
``r_out`` is the conv's side) and the first block (whose ``r_in`` is the pooled side).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from archsearch.space.cnn import CNNSpec, StageSpec, conv_out, pool_out, se_channels

__all__ = ["ConvLayer", "cnn_layers", "cnn_params", "cnn_macs", "cnn_activation_memory", "cnn_head_params", "cnn_head_macs", "block_has_shortcut_conv", "block_has_residual"]


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
    role: str  # stem | conv1 | conv2 | conv3 | shortcut | se_reduce | se_expand
    superblock: int  # -1 for the stem
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
    if stage.block not in _RESNET_BLOCKS or not first:
        return False
    return stage.stride != 1 or stage.in_channels != stage.out_channels


def block_has_residual(stage: StageSpec, first: bool) -> bool:
    c_in = stage.in_channels if first else stage.out_channels
    stride = stage.stride if first else 1
    if stage.block in _RESNET_BLOCKS:
        return True
    return stride == 1 and c_in == stage.out_channels


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
    block's ``r_in`` is the pooled side)."""
    stem = spec.stem
    r = conv_out(spec.resolution, stem.stride)
    layers = [ConvLayer(stem.in_channels, stem.out_channels, stem.kernel, stem.stride, 1, spec.resolution, r, False, True, "stem", -1, 0)]
    r = stem.out_side(spec.resolution)
    for sb, stage in enumerate(spec.stages):
        for j in range(stage.depth):
            block = list(_block_layers(stage, sb, j, r))
            layers.extend(block)
            r = block[-1].r_out
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
