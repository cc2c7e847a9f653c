"""The units of a CNN: the stem, every block of every superblock, the head.

A conv's MACs count its input and output channels rounded up to the calibration's ``channel_block``
(conv kernels compute whole blocks of channels), and a kxk or depthwise MAC counts
``(k^2 / 9)^-kernel_exponent`` (a 3x3 MAC counts 1; larger kernels reuse each input more). The
stem's max-pool, if any, adds its elements to the activations; the head is global pooling and the
classifier. The ``basic`` block has no unit type (the DeepMAD solvers do not search it and no
calibration times it), so predicting a spec with one raises :class:`~archsearch.errors.SpecError`.

For fixed depths and kernels every feature with unrounded channels is a posynomial in the widths
(and in ``k^2`` with the kernel exponent) and no larger than the rounded one, so the posynomial with
the calibrated coefficients never overestimates the prediction: a valid relaxation of a latency
budget for the solvers.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from archsearch.errors import SpecError
from archsearch.space.cnn import CNNSpec, conv_out, pool_out, se_channels

__all__ = ["block_features", "cnn_units", "head_features", "stem_features"]


def _padded(channels: int, block: int) -> int:
    """``channels`` rounded up to a multiple of ``block``."""
    return -(-channels // block) * block


def _conv(c_in: int, c_out: int, k: int, stride: int, groups: int, r_in: int, block: int = 1,
          gamma: float = 0.0, pad_in: bool = True) -> tuple[float, ...]:
    """(1x1 MACs, dense kxk MACs, depthwise MACs, activation elements, weights) of one conv at batch 1;
    its MACs count the input (when ``pad_in``) and output channels rounded up to ``block``, and a kxk
    MAC counts ``(k^2 / 9)^-gamma``."""
    r_out = conv_out(r_in, stride)
    p_out = _padded(c_out, block)
    p_in = _padded(c_in, block) if pad_in else c_in
    macs = float(r_out * r_out * p_out * (c_in // groups if groups > 1 else p_in) * k * k)
    if k > 1 and gamma:
        macs *= (k * k / 9.0) ** -gamma
    acts = float(c_in * r_in * r_in + c_out * r_out * r_out)
    weights = float(c_out * (c_in // groups) * k * k)
    if groups > 1:
        return (0.0, 0.0, macs, acts, weights)
    return (macs, 0.0, 0.0, acts, weights) if k == 1 else (0.0, macs, 0.0, acts, weights)


def _features(convs: Sequence[tuple[float, ...]], extra_elems: float = 0.0) -> tuple[float, ...]:
    sums = [sum(c[i] for c in convs) for i in range(5)]
    sums[3] += extra_elems
    return (1.0, *(v / 1e6 for v in sums))


def block_features(block: str, *, c_in: int, c_out: int, bottleneck: int, kernel: int, stride: int, r_in: int,
                   se: bool = False, channel_block: int = 1, kernel_exponent: float = 0.0,
                   projection: bool = False) -> tuple[float, ...]:
    """Features of one block (see :data:`FEATURES`); the residual sum's elements count once. The convs'
    MACs count channels rounded up to ``channel_block`` (:attr:`LatencyModel.channel_block`), a kxk MAC
    ``(k^2 / 9)^-kernel_exponent`` (:attr:`LatencyModel.kernel_exponent`). ``projection``: a bottleneck
    whose shortcut is a 1x1 conv even at stride 1 and equal widths (``StageSpec.shortcut="conv"``, the
    first block of a DeepMAD reference superblock); the conv is counted as the module runs it."""
    b, r_out, cb, g = bottleneck, conv_out(r_in, stride), channel_block, kernel_exponent
    if block == "k1kxk1":
        convs = [_conv(c_in, b, 1, 1, 1, r_in, cb), _conv(b, b, kernel, stride, 1, r_in, cb, g), _conv(b, c_out, 1, 1, 1, r_out, cb)]
        if stride != 1 or c_in != c_out or projection:
            convs.append(_conv(c_in, c_out, 1, stride, 1, r_in, cb))
        return _features(convs, 2.0 * c_out * r_out * r_out)
    if block == "k1dwk1":
        convs = [_conv(c_in, b, 1, 1, 1, r_in, cb), _conv(b, b, kernel, stride, b, r_in, cb, g), _conv(b, c_out, 1, 1, 1, r_out, cb)]
        extra = 2.0 * c_out * r_out * r_out if (stride == 1 and c_in == c_out) else 0.0
        if se:
            rd = se_channels(b)
            convs += [(2.0 * b * rd, 0.0, 0.0, 2.0 * (b + rd), 2.0 * b * rd)]
            extra += 2.0 * b * r_out * r_out
        return _features(convs, extra)
    raise SpecError(f"block: the latency predictor is not calibrated for the {block!r} block; "
                    "it covers ['k1kxk1', 'k1dwk1']")


def stem_features(*, c_in: int, c_out: int, kernel: int, stride: int, r_in: int, pool: bool = False,
                  channel_block: int = 1, kernel_exponent: float = 0.0) -> tuple[float, ...]:
    """The stem conv; its output channels are rounded up to ``channel_block`` in its MACs, the image's are
    not (``kernel_exponent``: as :func:`block_features`). With ``pool`` the max-pool's input and output
    elements are added to the activations (it has no MACs or weights)."""
    conv = _conv(c_in, c_out, kernel, stride, 1, r_in, channel_block, kernel_exponent, pad_in=False)
    r = conv_out(r_in, stride)
    return _features([conv], c_out * (r * r + pool_out(r) ** 2) if pool else 0.0)


def head_features(*, channels: int, side: int, num_classes: int) -> tuple[float, ...]:
    """Global average pooling of ``channels x side^2`` and a linear layer to ``num_classes``."""
    return (1.0, channels * num_classes / 1e6, 0.0, 0.0, (channels * side * side + channels + num_classes) / 1e6,
            channels * num_classes / 1e6)


def cnn_units(spec: CNNSpec, channel_block: int = 1, kernel_exponent: float = 0.0) -> Iterator[tuple[str, tuple[float, ...]]]:
    """``(unit type, features)`` of every unit of the whole model in execution order (MACs counted at
    ``channel_block`` and ``kernel_exponent``: :func:`block_features`)."""
    if spec.head_channels or any(st.shortcut == "pool" for st in spec.stages):
        raise SpecError("latency: the CNN predictor has no unit for the head conv (head_channels) nor for the pooled "
                        "residual of DeepMAD's reference inverted residual (shortcut='pool'); calibrated spaces have neither")
    stem = spec.stem
    yield "stem", stem_features(c_in=stem.in_channels, c_out=stem.out_channels, kernel=stem.kernel, stride=stem.stride,
                                r_in=spec.resolution, pool=stem.pool, channel_block=channel_block,
                                kernel_exponent=kernel_exponent)
    r = stem.out_side(spec.resolution)
    for st in spec.stages:
        for j in range(st.depth):
            first = j == 0
            stride = st.stride if first else 1
            yield st.block, block_features(st.block, c_in=st.in_channels if first else st.out_channels, c_out=st.out_channels,
                                           bottleneck=st.bottleneck, kernel=st.kernel, stride=stride, r_in=r, se=st.se,
                                           channel_block=channel_block, kernel_exponent=kernel_exponent,
                                           projection=first and st.shortcut == "conv")
            r = conv_out(r, stride)
    if spec.num_classes:
        yield "head", head_features(channels=spec.out_channels, side=r, num_classes=spec.num_classes)
