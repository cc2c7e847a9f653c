"""The published ResNets as CNN specs (He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016, Table 1), laid out as timm's ``resnet18``/``resnet34``/``resnet50`` build them.

* stem: 7x7 stride-2 conv to 64 channels + BN + ReLU, then a 3x3 stride-2 max-pool;
* four stages of widths 64, 128, 256 and 512 (the bottleneck's output is 4x that), the first at
  stride 1 and the others at stride 2 on their first block;
* ResNet-18 and -34: ``basic`` blocks, depths 2-2-2-2 and 3-4-6-3; ResNet-50: ``k1kxk1`` bottlenecks
  with the stride on the 3x3 conv (timm's and torchvision's "ResNet v1.5"), depths 3-4-6-3;
* a projection shortcut (1x1 conv stride s + BN) wherever the shape changes, global average pooling
  and a linear classifier.

The built model has exactly the parameters and MACs of timm's (``tests/test_resnet.py``).
"""

from __future__ import annotations

from archsearch.errors import SpecError
from archsearch.space.cnn import CNNSpec, StageSpec, StemSpec

__all__ = ["RESNET_DEPTHS", "resnet_spec"]

#: Blocks per stage of each published depth (He et al., CVPR 2016, Table 1).
RESNET_DEPTHS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
_WIDTHS = (64, 128, 256, 512)


def resnet_spec(depth: int, *, num_classes: int = 1000, resolution: int = 224) -> CNNSpec:
    """The spec of ResNet-``depth``, named ``resnet<depth>``.

    Args:
        depth: 18, 34 (basic blocks) or 50 (bottlenecks).
        num_classes: Classifier outputs (0: no classifier).
        resolution: Input side length in pixels.

    Raises:
        SpecError: For a depth not in :data:`RESNET_DEPTHS`.
    """
    if depth not in RESNET_DEPTHS:
        raise SpecError(f"resnet depth: expected one of {sorted(RESNET_DEPTHS)}, got {depth!r}")
    block, expansion = ("basic", 1) if depth < 50 else ("k1kxk1", 4)
    stages, prev = [], 64
    for i, (width, blocks) in enumerate(zip(_WIDTHS, RESNET_DEPTHS[depth])):
        out = width * expansion
        stages.append(StageSpec(block, prev, out, bottleneck=width, kernel=3, stride=1 if i == 0 else 2, depth=blocks))
        prev = out
    return CNNSpec(stem=StemSpec(out_channels=64, kernel=7, stride=2, pool=True), stages=tuple(stages),
                   resolution=resolution, num_classes=num_classes, name=f"resnet{depth}")
