"""Built-in search spaces.

DeepMAD budgets and effectiveness bounds: Shen et al., "DeepMAD: Mathematical Architecture Design
for Deep Convolutional Neural Network", CVPR 2023 (budgets count the backbone, classifier excluded).
"""

from __future__ import annotations

from archsearch.space.budget import Budget
from archsearch.space.search_space import SearchSpace, register_space

# The paper's space and counting, as the reference code (TinyNAS) searches it: a projection shortcut on the
# first block of every superblock, a stem of at most 32 channels, inner widths of at least smart_round(out/10),
# budgets in the reference code's FLOPs (conv MACs plus BatchNorm, ReLU and residual terms).
_RESNET = dict(block="k1kxk1", strides=(2, 2, 2, 1, 2), kernels=(3, 5), rho0=0.3, penalty_skip=2, stem_widths=(16, 32),
               shortcut="conv", bottleneck_rule="deepmad")
for _name, _flops, _params, _model in (("r18", 1_820_000_000, 11_690_000, "ResNet-18"), ("r34", 3_680_000_000, 21_800_000, "ResNet-34"),
                                       ("r50", 4_130_000_000, 25_550_000, "ResNet-50")):
    register_space(SearchSpace(
        name=f"deepmad-{_name}", budget=Budget(flops=_flops, params=_params),
        description=f"DeepMAD's ResNet-bottleneck space at the {_model} budget, as the paper's code searches and counts it "
                    "(224 px)", **_RESNET,
    ))
    # archsearch's wider extension: identity shortcuts where the shape is kept, a stem up to 64 channels,
    # inner widths down to out/12, budgets in exact MACs; never compared with the paper as if it were its space
    register_space(SearchSpace(
        name=f"deepmad-{_name}-plus", budget=Budget(macs=_flops, params=_params),
        description=f"wider than the paper's space (identity shortcuts, stem <= 64, b >= out/12, exact MACs) at the "
                    f"{_model} budget (224 px)",
        **{**_RESNET, "stem_widths": (16, 64), "shortcut": "auto", "bottleneck_rule": "ratio"},
    ))
# The reference code's MobileNetV2-like space (TinyNAS configs/classification/MBV2_FLOPs.py, space_k1dwk1,
# super_res_k1dwk1_mutator, conv_bn_relu_mutator): a 3x3 s2 stem of at most 32 channels; five k1dwk1
# superblocks at strides 2, 2, 2, 1, 2 with kernels 3 or 5, widths non-decreasing up to 1280 (no out <= 4 in rule
# in this mutator), inner widths smart_round(r out) for r in the ratio grid; the first superblock's depth at most 3,
# the others' at most 53 // 3 // 4 = 4, and 53 conv layers in all; the fixed 1x1 head conv to 1280; a budget of
# 300M in the reference's FLOPs only (no params, no effectiveness bound: rho stays below 53 / 8 anyway); the
# madnas score of the last stage (multi_block_ratio [0, 0, 0, 0, 1]), which has no depth penalty.
register_space(SearchSpace(
    name="deepmad-mbv2", block="k1dwk1", strides=(2, 2, 2, 1, 2), kernels=(3, 5), stem_widths=(8, 32),
    widths=(8, 1280), bottleneck_ratio=(1.5, 6.0), bottleneck_grid=(1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0),
    depths=(1, 4), first_depth_max=3, max_width_ratio=160.0, rho0=100.0, penalty_skip=0, last_stage_weight=1.0,
    head_channels=1280, max_layers=53, score="madnas", shortcut="pool", budget=Budget(flops=300_000_000),
    description="DeepMAD's MobileNetV2-like space as the paper's code searches and counts it (inner widths on its "
                "ratio grid, depths <= 3/4, 53 layers, 1x1 head conv to 1280, madnas score, 224 px)",
))
# archsearch's wider extension: MobileNetV2's stride pattern (Sandler et al., CVPR 2018: stem s2, then 1, 2, 2, 2,
# 1, 2, 1), kernels up to 7, any inner width from 1 to 6 times the output, depths up to 10, DeepMAD's entropy score
# with rho <= 0.5, exact MACs; never compared with the paper as if it were its space
register_space(SearchSpace(
    name="deepmad-mbv2-plus", block="k1dwk1", strides=(1, 2, 2, 2, 1, 2, 1), kernels=(3, 5, 7),
    stem_widths=(8, 48), widths=(8, 1280), bottleneck_ratio=(1.0, 6.0), depths=(1, 10), rho0=0.5,
    penalty_skip=0, budget=Budget(macs=300_000_000, params=3_400_000),
    description="wider than the paper's MobileNetV2-like space (MobileNetV2's 7 strides, kernels 3-7, b/out in "
                "[1, 6], depths <= 10, DeepMAD score with rho <= 0.5, exact MACs) (224 px)",
))
register_space(SearchSpace(
    name="deepmad-cifar", block="k1kxk1", resolution=32, num_classes=10, stem_stride=1,
    strides=(1, 2, 2), stem_widths=(8, 64), widths=(8, 512), kernels=(3, 5), depths=(1, 12), rho0=0.3,
    penalty_skip=0, budget=Budget(macs=20_000_000, params=500_000),
    description="DeepMAD bottleneck template for 32 px images (stem stride 1; strides 1, 2, 2)",
))
# Fashion-MNIST at its native 28 px, grey input (Xiao et al., 2017): no resize and no channel repeat per
# batch. Stem stride 2, then strides 1, 2, 2: 28 -> 14 -> 14 -> 7 -> 4 px, so that budgets from 1M MACs
# hold the classic two-blocks-a-stage baseline.
register_space(SearchSpace(
    name="deepmad-fmnist", block="k1kxk1", resolution=28, num_classes=10, in_channels=1, stem_stride=2,
    strides=(1, 2, 2), stem_widths=(8, 64), widths=(8, 512), kernels=(3, 5), depths=(1, 12), rho0=0.3,
    penalty_skip=0, budget=Budget(macs=4_000_000, params=200_000),
    description="DeepMAD bottleneck template for 28 px grey images (Fashion-MNIST; stem stride 2; strides 1, 2, 2)",
))
