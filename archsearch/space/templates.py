"""Built-in search spaces.

DeepMAD budgets and effectiveness bounds: Shen et al., "DeepMAD: Mathematical Architecture Design
for Deep Convolutional Neural Network", CVPR 2023 (budgets count the backbone, classifier excluded).
"""

from __future__ import annotations

from archsearch.space.budget import Budget
from archsearch.space.search_space import SearchSpace, register_space

_RESNET = dict(block="k1kxk1", strides=(2, 2, 2, 1, 2), kernels=(3, 5), rho0=0.3, penalty_skip=2)

register_space(SearchSpace(
    name="deepmad-r18", budget=Budget(macs=1_820_000_000, params=11_690_000),
    description="DeepMAD ResNet-bottleneck template at the ResNet-18 budget (224 px)", **_RESNET,
))
register_space(SearchSpace(
    name="deepmad-r34", budget=Budget(macs=3_680_000_000, params=21_800_000),
    description="DeepMAD ResNet-bottleneck template at the ResNet-34 budget (224 px)", **_RESNET,
))
register_space(SearchSpace(
    name="deepmad-r50", budget=Budget(macs=4_130_000_000, params=25_550_000),
    description="DeepMAD ResNet-bottleneck template at the ResNet-50 budget (224 px)", **_RESNET,
))
# MobileNetV2's stride pattern (Sandler et al., CVPR 2018): stem s2, then 1, 2, 2, 2, 1, 2, 1.
register_space(SearchSpace(
    name="deepmad-mbv2", block="k1dwk1", strides=(1, 2, 2, 2, 1, 2, 1), kernels=(3, 5, 7),
    stem_widths=(8, 48), widths=(8, 1280), bottleneck_ratio=(1.0, 6.0), depths=(1, 10), rho0=0.5,
    penalty_skip=0, budget=Budget(macs=300_000_000, params=3_400_000),
    description="DeepMAD inverted-residual template with MobileNetV2's strides (224 px)",
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
