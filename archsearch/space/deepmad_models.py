"""Published DeepMAD models as specs (Shen et al., "DeepMAD", CVPR 2023).

Transcribed from the reference code's model files (TinyNAS,
``configs/classification/models/deepmad-R50.txt``): a stem conv, then bottleneck superblocks whose
first block always has the 1x1 conv + BN projection shortcut (``shortcut="conv"``), the way the
reference ``BaseSuperBlock`` builds them. The classifier is the usual 1000-way linear layer on pooled
features; DeepMAD's budgets count the backbone only.
"""

from __future__ import annotations

from archsearch.space.cnn import CNNSpec, StageSpec, StemSpec

__all__ = ["DEEPMAD_R50"]

#: DeepMAD-R50 (224 px; ImageNet top-1 80.6): 157 conv layers, rho 0.2998, entropy S 48 919.28; in the
#: reference counting 4 087 263 656 FLOPs and 24 208 144 parameters (backbone), 4 041 529 408 MACs.
DEEPMAD_R50 = CNNSpec(
    stem=StemSpec(out_channels=32, kernel=3, stride=2),
    stages=tuple(
        StageSpec("k1kxk1", c_in, c_out, bottleneck=b, kernel=5, stride=s, depth=d, shortcut="conv")
        for c_in, c_out, b, s, d in [
            (32, 128, 40, 2, 1), (128, 512, 48, 2, 11), (512, 872, 88, 2, 12), (872, 1024, 104, 1, 13),
            (1024, 1232, 120, 2, 15),
        ]
    ),
    resolution=224, num_classes=1000, name="DeepMAD-R50",
)
