"""archsearch.objectives: DeepMAD's entropy score, depth penalty and effectiveness.

Known answer: DeepMAD-R50 (Shen et al., CVPR 2023; PAPERS.md). Hand computations follow PAPERS.md's
formulas with ``math.log`` only, independently of the library's helpers.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest

from archsearch.objectives import DEPTH_PENALTY_SCALE, DeepMADScore, deepmad_score, depth_penalty, stage_ends
from archsearch.space import CNNSpec, StageSpec, StemSpec

R50 = CNNSpec(
    stem=StemSpec(out_channels=32, in_channels=3, kernel=3, stride=2),
    stages=tuple(
        StageSpec("k1kxk1", cin, cout, b, kernel=5, stride=s, depth=L)
        for cin, cout, b, s, L in [
            (32, 128, 40, 2, 1), (128, 512, 48, 2, 11), (512, 872, 88, 2, 12), (872, 1024, 104, 1, 13),
            (1024, 1232, 120, 2, 15),
        ]
    ),
    resolution=224,
)

log = math.log


# ------------------------------------------------------------------------------------------ known answer
def test_r50_entropy_and_rho_match_the_paper() -> None:
    sc = deepmad_score(R50)
    assert isinstance(sc, DeepMADScore)
    assert sc.entropy == pytest.approx(48919.28, abs=0.01)
    assert sc.rho == pytest.approx(0.2998, abs=5e-5)
    assert sc.rho <= 0.3  # published models sit at the bound
    assert sc.rho == max(sc.rho_prefixes) and len(sc.rho_prefixes) == 5 and len(sc.stage_entropy) == 5


def test_r50_penalty_and_penalised_score() -> None:
    sc = deepmad_score(R50)
    # bottleneck networks leave the first two superblocks out of the std
    assert sc.penalty == pytest.approx(10 * math.exp(statistics.pstdev([12, 13, 15])), rel=1e-12)
    assert sc.score == pytest.approx(sc.entropy - sc.penalty, rel=1e-15)
    assert sc.score == pytest.approx(48884.47, abs=0.01)
    off = deepmad_score(R50, depth_penalty_on=False)
    assert off.penalty == 0.0 and off.score == off.entropy == sc.entropy


def test_r50_has_157_conv_layers() -> None:
    # rho of the whole network: L / geomean over the 157 main-path convs (shortcuts excluded)
    n_layers = 1 + 3 * R50.depth
    assert n_layers == 157
    logs = [log(3 * 9)]
    prev = 32
    for st in R50.stages:
        for j in range(st.depth):
            cin = prev if j == 0 else st.out_channels
            logs += [log(cin), log(st.bottleneck * st.kernel**2), log(st.bottleneck)]
        prev = st.out_channels
    assert deepmad_score(R50).rho_prefixes[-1] == pytest.approx(157 / math.exp(sum(logs) / 157), rel=1e-12)


def test_paper_entropy_is_exactly_twice_the_code_entropy() -> None:
    code, paper = deepmad_score(R50), deepmad_score(R50, entropy="paper")
    assert paper.entropy == 2 * code.entropy
    assert paper.stage_entropy == tuple(2 * e for e in code.stage_entropy)
    assert paper.rho == code.rho and paper.penalty == code.penalty
    assert paper.score == pytest.approx(paper.entropy - paper.penalty, rel=1e-15)


def test_last_stage_weight() -> None:
    # S is linear in the last stage's weight: S(w) = S(0) + w * last term
    s0 = deepmad_score(R50, last_stage_weight=0.0).entropy
    s1 = deepmad_score(R50, last_stage_weight=1.0).entropy
    s8 = deepmad_score(R50).entropy
    assert s8 == pytest.approx(s0 + 8 * (s1 - s0), rel=1e-12)
    last = (log(1232) + log(7**2)) * deepmad_score(R50).stage_entropy[-1]
    assert s1 - s0 == pytest.approx(last, rel=1e-12)


# ------------------------------------------------------------------------------------------------ stages
@pytest.mark.parametrize("strides, ends", [
    ((2, 2, 2, 1, 2), [-1, 0, 1, 3, 4]),
    ((1, 2, 2), [0, 1, 2]),
    ((2,), [-1, 0]),
    ((1,), [0]),
    ((1, 1, 2, 1), [1, 3]),
    ((1, 2, 2, 2, 1, 2, 1), [0, 1, 2, 4, 6]),
    ((), [-1]),
])
def test_stage_ends(strides: tuple[int, ...], ends: list[int]) -> None:
    assert stage_ends(strides) == ends
    assert stage_ends(list(strides)) == ends


# ------------------------------------------------------------------------------------------------ penalty
@pytest.mark.parametrize("depths, skip, std", [
    ([5, 5, 1, 3], 2, 1.0),
    ([1, 11, 12, 13, 15], 2, statistics.pstdev([12, 13, 15])),
    ([1, 2, 3], 0, math.sqrt(2 / 3)),
    ([4, 4, 4, 4], 0, 0.0),
    ([9, 1, 4], 3, 0.0),  # nothing left: std 0
    ([9, 1, 4], 5, 0.0),
    ((2, 7), 1, 0.0),
])
def test_depth_penalty(depths, skip: int, std: float) -> None:
    assert DEPTH_PENALTY_SCALE == 10.0
    assert depth_penalty(depths, skip=skip) == pytest.approx(10 * math.exp(std), rel=1e-12)


def test_default_penalty_skip_depends_on_the_block() -> None:
    depths = (3, 1, 2, 6)
    bottleneck = CNNSpec(StemSpec(8), tuple(StageSpec("k1kxk1", 8 if i == 0 else 16, 16, 8, 3, 1, L) for i, L in enumerate(depths)),
                         resolution=16)
    depthwise = CNNSpec(StemSpec(8), tuple(StageSpec("k1dwk1", 8 if i == 0 else 16, 16, 32, 3, 1, L) for i, L in enumerate(depths)),
                        resolution=16)
    assert deepmad_score(bottleneck).penalty == pytest.approx(10 * math.exp(statistics.pstdev([2, 6])), rel=1e-12)
    assert deepmad_score(depthwise).penalty == pytest.approx(10 * math.exp(statistics.pstdev(depths)), rel=1e-12)
    assert deepmad_score(bottleneck, penalty_skip=0).penalty == pytest.approx(10 * math.exp(statistics.pstdev(depths)), rel=1e-12)
    assert deepmad_score(depthwise, penalty_skip=3).penalty == pytest.approx(10.0, rel=1e-12)


# ------------------------------------------------------------------------------------- hand computations
def test_hand_computed_bottleneck_network() -> None:
    # stem 3->16 k3 s2 at 32 px -> 16 px; one bottleneck superblock 16->32, b 8, k 3, stride 2, depth 2 -> 8 px.
    # Stages: the stem (C 16, R 16, weight 1) and the superblock (C 32, R 8, the last: weight 8).
    spec = CNNSpec(StemSpec(16), (StageSpec("k1kxk1", 16, 32, 8, kernel=3, stride=2, depth=2),), resolution=32)
    e_stem = 0.5 * log(3 * 3**2)
    e_b1 = 0.5 * (log(16) + log(8 * 3**2) + log(8))
    e_b2 = 0.5 * (log(32) + log(8 * 3**2) + log(8))
    s = 1 * (log(16) + log(16**2)) * e_stem + 8 * (log(32) + log(8**2)) * (e_stem + e_b1 + e_b2)
    # rho prefixes: the stem alone (1 layer), then all 7 main-path convs (the shortcut is excluded)
    widths = [3 * 9, 16, 8 * 9, 8, 32, 8 * 9, 8]
    rho1 = 1 / (3 * 9)
    rho2 = 7 / math.exp(sum(log(w) for w in widths) / 7)
    sc = deepmad_score(spec, depth_penalty_on=False)
    assert sc.entropy == pytest.approx(s, rel=1e-12) and sc.score == sc.entropy
    assert sc.rho_prefixes == pytest.approx((rho1, rho2), rel=1e-12)
    assert sc.rho == pytest.approx(max(rho1, rho2), rel=1e-12)
    assert sc.stage_entropy == pytest.approx((e_stem, e_stem + e_b1 + e_b2), rel=1e-12)
    # one superblock, bottleneck default skip 2: nothing left, std 0
    assert deepmad_score(spec).penalty == pytest.approx(10.0, rel=1e-12)
    assert deepmad_score(spec, entropy="paper").entropy == pytest.approx(2 * s, rel=1e-12)


def test_hand_computed_inverted_residual_network_with_se() -> None:
    # stem 3->16 k5 s2 at 20 px -> 10 px; one k1dwk1 superblock 16->24, b 48, k 5, stride 1, depth 3, with SE.
    # The stride-1 superblock belongs to the stem's stage: one stage, which is the last (weight 8).
    # A depthwise conv contributes k^2; SE is ignored.
    spec = CNNSpec(StemSpec(16, kernel=5), (StageSpec("k1dwk1", 16, 24, 48, kernel=5, stride=1, depth=3, se=True),),
                   resolution=20)
    e_stem = 0.5 * log(3 * 5**2)
    e_first = 0.5 * (log(16) + log(5**2) + log(48))
    e_rest = 0.5 * (log(24) + log(5**2) + log(48))
    total_e = e_stem + e_first + 2 * e_rest
    s = 8 * (log(24) + log(10**2)) * total_e
    widths = [3 * 25, 16, 25, 48] + [24, 25, 48] * 2
    rho = 10 / math.exp(sum(log(w) for w in widths) / 10)
    sc = deepmad_score(spec)
    assert sc.entropy == pytest.approx(s, rel=1e-12)
    assert sc.rho == pytest.approx(rho, rel=1e-12) and len(sc.rho_prefixes) == 1
    assert sc.penalty == pytest.approx(10.0, rel=1e-12)  # one superblock: std 0
    assert sc.score == pytest.approx(s - 10.0, rel=1e-12)
    # SE changes nothing
    assert deepmad_score(spec.replace(stages=(dataclasses.replace(spec.stages[0], se=False),))) == sc


def test_hand_computed_two_stage_depthwise_network() -> None:
    # stem 3->8 k3 s1 at 8 px; superblocks (s1, 8->8, b 16, k3, L2) and (s2, 8->16, b 32, k7, L1) -> 4 px.
    # Stages: the stem with the stride-1 superblock (C 8, R 8), then the stride-2 one (C 16, R 4, weight 8).
    spec = CNNSpec(StemSpec(8, stride=1), (StageSpec("k1dwk1", 8, 8, 16, 3, 1, 2), StageSpec("k1dwk1", 8, 16, 32, 7, 2, 1)),
                   resolution=8)
    l1 = [log(27), log(8), log(9), log(16), log(8), log(9), log(16)]
    l2 = [log(8), log(49), log(32)]
    e1 = 0.5 * sum(l1)
    e2 = e1 + 0.5 * sum(l2)
    s = (log(8) + log(8**2)) * e1 + 8 * (log(16) + log(4**2)) * e2
    rho1 = 7 / math.exp(sum(l1) / 7)
    rho2 = 10 / math.exp((sum(l1) + sum(l2)) / 10)
    sc = deepmad_score(spec)
    assert sc.entropy == pytest.approx(s, rel=1e-12)
    assert sc.rho_prefixes == pytest.approx((rho1, rho2), rel=1e-12)
    assert sc.rho == pytest.approx(max(rho1, rho2), rel=1e-12)
    assert sc.penalty == pytest.approx(10 * math.exp(statistics.pstdev([2, 1])), rel=1e-12)  # depthwise: skip 0
