"""DeepMAD's score, penalty and effectiveness against the paper's known answer and a hand computation."""

from __future__ import annotations

import math
import statistics

import pytest

from archsearch.objectives import deepmad_score, depth_penalty, stage_ends
from archsearch.space import CNNSpec, StageSpec, StemSpec

R50 = CNNSpec(
    stem=StemSpec(32),
    stages=tuple(StageSpec("k1kxk1", a, b, c, 5, s, L) for a, b, c, s, L in
                 [(32, 128, 40, 2, 1), (128, 512, 48, 2, 11), (512, 872, 88, 2, 12), (872, 1024, 104, 1, 13), (1024, 1232, 120, 2, 15)]),
)


def test_r50_known_answer() -> None:
    sc = deepmad_score(R50)
    assert sc.entropy == pytest.approx(48919.28, abs=0.01)
    assert sc.rho == pytest.approx(0.2998, abs=5e-5)
    assert sc.penalty == pytest.approx(10 * math.exp(statistics.pstdev([12, 13, 15])), rel=1e-12)
    assert sc.score == pytest.approx(48884.47, abs=0.01)
    assert deepmad_score(R50, depth_penalty_on=False).score == sc.entropy


def test_paper_variant_doubles_the_entropy() -> None:
    assert deepmad_score(R50, entropy="paper").entropy == pytest.approx(2 * deepmad_score(R50).entropy, rel=1e-12)


def test_stage_ends() -> None:
    assert stage_ends((2, 2, 2, 1, 2)) == [-1, 0, 1, 3, 4]
    assert stage_ends((1, 2, 2)) == [0, 1, 2]
    assert depth_penalty([5, 5, 1, 3], skip=2) == pytest.approx(10 * math.exp(1.0))


def test_hand_computed_small_network() -> None:
    # stem 3->16 k3 s2 at 32 px -> 16 px; one bottleneck 16->32, b 8, k 3, stride 2, depth 2 -> 8 px
    spec = CNNSpec(StemSpec(16), (StageSpec("k1kxk1", 16, 32, 8, 3, 2, 2),), resolution=32)
    stem = 0.5 * math.log(3 * 9)
    b1 = 0.5 * (math.log(16) + math.log(8 * 9) + math.log(8))
    b2 = 0.5 * (math.log(32) + math.log(8 * 9) + math.log(8))
    s_expected = 1 * (math.log(16) + math.log(16**2)) * stem + 8 * (math.log(32) + math.log(8**2)) * (stem + b1 + b2)
    logs = [math.log(27), math.log(16), math.log(72), math.log(8), math.log(32), math.log(72), math.log(8)]
    rho_expected = max(1 / math.exp(logs[0]), 7 / math.exp(sum(logs) / 7))
    sc = deepmad_score(spec)
    assert sc.entropy == pytest.approx(s_expected, rel=1e-12)
    assert sc.rho == pytest.approx(rho_expected, rel=1e-12)
