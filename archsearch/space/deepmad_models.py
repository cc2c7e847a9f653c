"""Published DeepMAD models as specs (Shen et al., "DeepMAD", CVPR 2023).

Transcribed from the reference code's model files (TinyNAS,
``configs/classification/models/deepmad-R18.txt``, ``deepmad-R34.txt``, ``deepmad-R50.txt``): a stem conv, then bottleneck superblocks whose
first block always has the 1x1 conv + BN projection shortcut (``shortcut="conv"``), the way the
reference ``BaseSuperBlock`` builds them. The classifier is the usual 1000-way linear layer on pooled
features; DeepMAD's budgets count the backbone only.
"""

from __future__ import annotations

from archsearch.space.cnn import CNNSpec, StageSpec, StemSpec

__all__ = ["DEEPMAD_R18", "DEEPMAD_R34", "DEEPMAD_R50"]

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


def _published(name: str, stem: int, rows: list[tuple[int, int, int, int, int, int]]) -> CNNSpec:
    """``rows``: per superblock (in, out, inner width, kernel, stride, depth)."""
    return CNNSpec(
        stem=StemSpec(out_channels=stem, kernel=3, stride=2),
        stages=tuple(StageSpec("k1kxk1", c_in, c_out, bottleneck=b, kernel=k, stride=s, depth=d, shortcut="conv")
                     for c_in, c_out, b, k, s, d in rows),
        resolution=224, num_classes=1000, name=name,
    )


#: DeepMAD-R18 (224 px; ImageNet top-1 77.7 at the R18 budget 1.82 G FLOPs / 11.69 M params): in the reference
#: counting 1 837 323 208 FLOPs (0.95 % over that budget) and 11 153 088 parameters. Its last superblock is
#: narrower than the one before (672 < 1024), which the reference space allows and archsearch's
#: ``deepmad-r18`` (non-decreasing widths) does not.
DEEPMAD_R18 = _published("DeepMAD-R18", 32, [
    (32, 96, 40, 5, 2, 1), (96, 384, 40, 5, 2, 6), (384, 384, 64, 5, 2, 9), (384, 1024, 104, 3, 1, 10),
    (1024, 672, 104, 5, 2, 12),
])

#: DeepMAD-R34 (224 px; ImageNet top-1 79.7 at the R34 budget 3.68 G FLOPs / 21.80 M params): in the reference
#: counting 3 675 274 792 FLOPs and 21 073 160 parameters; its last superblock is narrower too (616 < 1024).
DEEPMAD_R34 = _published("DeepMAD-R34", 24, [
    (24, 128, 24, 5, 2, 1), (128, 512, 48, 5, 2, 10), (512, 896, 88, 5, 2, 13), (896, 1024, 104, 5, 1, 11),
    (1024, 616, 128, 5, 2, 14),
])
