"""DeepMAD's MobileNetV2-like space as its reference code searches it (TinyNAS,
``configs/classification/MBV2_FLOPs.py``): the head conv, the reference FLOPs of concrete designs counted
by hand from the per-layer rules of ``blocks_basic.ConvKXBN`` / ``ConvKXBNRELU`` and
``super_res_k1dwk1.ResK1DWK1``, the space's rules and its solves.
"""

from __future__ import annotations

import pytest

from archsearch.cost import cnn_layers, cnn_macs, cnn_params, deepmad_flops, deepmad_params
from archsearch.space import CNNSpec, StageSpec, StemSpec


def _spec(rows: list[tuple[int, int, int, int, int, int]], stem: int = 16, head: int = 1280, resolution: int = 224) -> CNNSpec:
    """``rows``: per superblock (in, out, inner width, kernel, stride, depth); the reference's inverted residual."""
    return CNNSpec(stem=StemSpec(out_channels=stem, kernel=3, stride=2),
                   stages=tuple(StageSpec("k1dwk1", *row, shortcut="pool") for row in rows), head_channels=head,
                   resolution=resolution)


#: the reference config's initial structure (MBV2_FLOPs.py: every depth 1, k 3, inner width 2 out)
_START = [(16, 24, 48, 3, 2, 1), (24, 48, 96, 3, 2, 1), (48, 64, 128, 3, 2, 1), (64, 96, 192, 3, 1, 1), (96, 192, 384, 3, 2, 1)]


def _conv_bn(c_in: int, c_out: int, k: int, side_out: int, groups: int = 1, relu: bool = True) -> int:
    """One reference ConvKXBN (+ReLU) at its output side: MACs, 2 per BN output, 1 per ReLU output."""
    return (c_in // groups * k * k * c_out + 2 * c_out + (c_out if relu else 0)) * side_out**2


def test_head_conv_is_backbone_and_round_trips() -> None:
    spec = _spec(_START)
    head = cnn_layers(spec)[-1]
    assert (head.role, head.c_in, head.c_out, head.kernel, head.r_out, head.is_main) == ("head", 192, 1280, 1, 7, True)
    assert spec.out_channels == 1280
    assert CNNSpec.from_json(spec.to_json()) == spec
    assert "head_channels" not in _spec(_START, head=0).to_dict()  # earlier specs keep their JSON
    assert cnn_macs(spec) - cnn_macs(_spec(_START, head=0)) == 192 * 1280 * 49
    assert cnn_params(spec, with_head=True) - cnn_params(spec) == 1280 * 1000 + 1000
    assert deepmad_params(spec) == cnn_params(spec) == 425_136
    assert spec.layout()[2][-1] == ("head", "conv", 192, 1280, "-", 1, 1, 1)


def test_reference_start_structure_flops_by_hand() -> None:
    """The config's own initial network: 73 115 840 reference FLOPs (stem, five single-block superblocks,
    the head conv; no width is kept at a stride, so no pooled residual)."""
    sides = [112, 56, 28, 14, 14, 7]
    total = _conv_bn(3, 16, 3, 112)
    for i, (c, out, b, k, s, _) in enumerate(_START):
        total += _conv_bn(c, b, 1, sides[i]) + _conv_bn(b, b, k, sides[i + 1], groups=b) + _conv_bn(b, out, 1, sides[i + 1])
    total += _conv_bn(192, 1280, 1, 7)
    assert deepmad_flops(_spec(_START)) == total == 73_115_840


def test_design_with_repeats_and_a_pooled_residual_by_hand() -> None:
    """A deeper design: repeated blocks (identity residuals, not counted), a stride-2 superblock that keeps
    its width (the reference's 2x2 average-pooled residual adds its input elements), kernels 3 and 5."""
    rows = [(16, 16, 32, 3, 2, 2), (16, 40, 120, 5, 2, 3), (40, 40, 144, 5, 2, 2), (40, 96, 384, 3, 1, 4),
            (96, 160, 800, 5, 2, 4)]
    spec = _spec(rows)
    stem = (27 * 16 + 3 * 16) * 112**2                                     # 6 021 120
    sb1 = ((16 * 32 + 3 * 32) * 112**2 + (32 * 9 + 3 * 32) * 56**2 + (32 * 16 + 3 * 16) * 56**2
           + 16 * 112**2                                                   # pooled residual: in == out at stride 2
           + ((16 * 32 + 3 * 32) + (32 * 9 + 3 * 32) + (32 * 16 + 3 * 16)) * 56**2)
    sb2 = ((16 * 120 + 360) * 56**2 + (120 * 25 + 360) * 28**2 + (120 * 40 + 120) * 28**2
           + 2 * ((40 * 120 + 360) + (120 * 25 + 360) + (120 * 40 + 120)) * 28**2)
    sb3 = ((40 * 144 + 432) * 28**2 + (144 * 25 + 432) * 14**2 + (144 * 40 + 120) * 14**2 + 40 * 28**2
           + ((40 * 144 + 432) + (144 * 25 + 432) + (144 * 40 + 120)) * 14**2)
    sb4 = ((40 * 384 + 1152) + (384 * 9 + 1152) + (384 * 96 + 288)) * 14**2 \
        + 3 * ((96 * 384 + 1152) + (384 * 9 + 1152) + (384 * 96 + 288)) * 14**2
    sb5 = ((96 * 800 + 2400) * 14**2 + (800 * 25 + 2400) * 7**2 + (800 * 160 + 480) * 7**2
           + 3 * ((160 * 800 + 2400) + (800 * 25 + 2400) + (800 * 160 + 480)) * 7**2)
    head = (160 + 3) * 1280 * 7**2
    assert deepmad_flops(spec) == stem + sb1 + sb2 + sb3 + sb4 + sb5 + head == 199_194_016
    # the reference's model size: weights and 2 per BN channel of every conv, the head conv's included
    assert deepmad_params(spec) == cnn_params(spec)


def _measured_reference_flops(spec: CNNSpec) -> int:
    """The reference count measured on the built module: MACs, 2 per BatchNorm output, 1 per ReLU output, the
    residual average pool's input elements (what the built reference block runs, independent of the rules'
    arithmetic in :func:`deepmad_flops`)."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from archsearch.models import build_model

    with torch.device("meta"):
        model = build_model(spec.replace(num_classes=0))
    counts = {"elements": 0}

    def add(factor: int, use_input: bool = False):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            counts["elements"] += factor * (args[0] if use_input else out).numel()
        return hook

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(add(2))
        elif isinstance(m, nn.ReLU):
            m.register_forward_hook(add(1))
        elif isinstance(m, nn.AvgPool2d):
            m.register_forward_hook(add(1, use_input=True))
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        model.eval()(torch.empty(1, 3, spec.resolution, spec.resolution, device="meta"))
    return flops.get_total_flops() // 2 + counts["elements"]


def test_built_reference_block_runs_what_the_count_counts() -> None:
    """Built with ``shortcut="pool"``, the blocks are the reference's ResK1DWK1: a ReLU after every block, the
    2x2 average-pooled identity where a stride-2 superblock keeps its width, none where the width changes;
    the reference FLOPs measured on that module equal :func:`deepmad_flops`."""
    from archsearch.models import build_model

    rows = [(16, 16, 32, 3, 2, 2), (16, 40, 120, 5, 2, 3), (40, 40, 144, 5, 2, 2), (40, 96, 384, 3, 1, 4),
            (96, 160, 800, 5, 2, 4)]
    import torch

    spec = _spec(rows)
    assert _measured_reference_flops(spec) == deepmad_flops(spec) == 199_194_016
    with torch.device("meta"):
        model = build_model(spec)
    first, changed = model.stages[0][0], model.stages[1][0]
    assert first.has_residual and type(first.pool).__name__ == "AvgPool2d" and type(first.act).__name__ == "ReLU"
    assert not changed.has_residual and type(changed.act).__name__ == "ReLU"
    # odd sides (17 -> 9 -> 5 -> 3): the pool keeps the conv's ceil(side / 2), so the residual sums
    small = _spec([(8, 8, 16, 3, 2, 1), (8, 8, 16, 3, 2, 2), (8, 16, 24, 3, 2, 1), (16, 16, 24, 3, 1, 1),
                   (16, 16, 24, 3, 2, 1)], stem=8, head=32, resolution=33).replace(num_classes=10)
    assert build_model(small)(torch.zeros(1, 3, 33, 33)).shape == (1, 10)


def test_built_module_equals_the_cost_model() -> None:
    from archsearch.models import measured_costs

    spec = _spec([(16, 16, 32, 3, 2, 2), (16, 40, 120, 5, 2, 1), (40, 40, 144, 5, 2, 1), (40, 96, 384, 3, 1, 1),
                  (96, 160, 800, 5, 2, 1)])
    measured = measured_costs(spec)
    assert measured["measured_macs"] == cnn_macs(spec)
    assert measured["measured_params"] == cnn_params(spec)
    assert measured["measured_params_with_head"] == cnn_params(spec, with_head=True)
    assert measured["measured_macs_with_head"] == cnn_macs(spec, with_head=True)


# ------------------------------------------------------------------------------------------ the space
import functools  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402

from archsearch.errors import SpecError  # noqa: E402
from archsearch.objectives import madnas_score  # noqa: E402
from archsearch.solvers import OPTIMAL  # noqa: E402
from archsearch.solvers.deepmad import DeepMADProgram, DeepMADSolver, Design, brute_force  # noqa: E402
from archsearch.space import Budget, SearchSpace, get_space  # noqa: E402


@functools.lru_cache(maxsize=None)
def _program() -> DeepMADProgram:
    space = get_space("deepmad-mbv2")
    return DeepMADProgram(space, space.budget)


def _smart_round(x: float) -> int:  # TinyNAS space_utils.smart_round with base 8
    return max(8, round(x / 8) * 8)


def test_space_is_the_reference_config() -> None:
    space = get_space("deepmad-mbv2")
    assert space.strides == (2, 2, 2, 1, 2) and space.kernels == (3, 5) and space.head_channels == 1280
    assert space.budget == Budget(flops=300_000_000) and space.max_layers == 53 and space.score == "madnas"
    assert (space.stem_widths, space.widths, space.depths, space.first_depth_max) == ((8, 32), (8, 1280), (1, 4), 3)
    grid = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)
    for c in (8, 24, 40, 152, 280, 1280):
        assert space.inner_widths(c) == tuple(sorted({_smart_round(r * c) for r in grid}))
    assert space.inner_widths(24)[0] == 32 and space.min_inner_ratio() == pytest.approx(32 / 24)  # 36 -> 32 (ties to even)
    assert space.max_inner_ratio() == 6.0
    plus = get_space("deepmad-mbv2-plus")
    assert plus.strides == (1, 2, 2, 2, 1, 2, 1) and plus.budget == Budget(macs=300_000_000, params=3_400_000)
    assert plus.head_channels == 0 and plus.score == "deepmad" and not plus.bottleneck_grid


def test_is_valid_keeps_the_reference_rules() -> None:
    prog = _program()
    good = Design(16, (32, 72, 152, 160, 280), (48, 112, 224, 240, 416), (5, 5, 5, 5, 5), (1, 4, 4, 4, 4))
    assert prog.is_valid(good) and prog.layers(good.L) == 53
    bad = {
        "inner width off the grid": good._replace(b=(56,) + good.b[1:]),
        "first depth above 3": good._replace(L=(4, 4, 4, 4, 1)),
        "a depth above 4": good._replace(L=(1, 5, 4, 4, 3)),
        "54 layers": good._replace(L=(2, 4, 4, 4, 4)),
        "stem above 32": good._replace(c0=40, c=(40,) + good.c[1:], b=(64,) + good.b[1:]),
        "a narrower superblock": good._replace(c=(32, 72, 152, 144, 280), b=(48, 112, 224, 216, 416)),
        "kernel 7": good._replace(k=(7, 5, 5, 5, 5)),
        "width above 1280": good._replace(c=good.c[:4] + (1288,), b=good.b[:4] + (1936,)),
    }
    for why, d in bad.items():
        assert not prog.is_valid(d), why
    assert prog.is_valid(good._replace(b=(192,) + good.b[1:]))  # 6 x 32
    with pytest.raises(SpecError, match="head_channels=1280, got 0"):
        prog.from_spec(prog.to_spec(good).replace(head_channels=0))


def test_madnas_score_by_hand_and_program_equals_cost_model() -> None:
    """The reference madnas score of the config's initial network: 1/2 of the log-widths of every conv (stem,
    three per block, the head's input) plus log 1280, the head's width; no depth penalty."""
    prog = _program()
    spec = _spec(_START)
    logs = math.log(27) + sum(math.log(c) + math.log(9) + math.log(b) for c, _, b, *_ in _START) + math.log(192)
    expected = 0.5 * logs + math.log(1280)
    assert madnas_score(spec) == pytest.approx(expected, rel=1e-12)
    ev = prog.evaluate(prog.from_spec(spec))
    assert ev.score == pytest.approx(expected, rel=1e-12) and ev.penalty == 0.0
    assert (ev.flops, ev.macs, ev.params) == (73_115_840, cnn_macs(spec), cnn_params(spec))
    from archsearch.cost import cnn_activation_memory
    from archsearch.solvers.designs import sample

    for cand in sample(get_space("deepmad-mbv2"), n=3, seed=2):
        d = prog.from_spec(cand.spec)
        ev = prog.evaluate(d)
        assert prog.is_valid(d) and ev.feasible
        assert (ev.macs, ev.params, ev.flops, ev.memory) == (
            cnn_macs(cand.spec), cnn_params(cand.spec), deepmad_flops(cand.spec), cnn_activation_memory(cand.spec))
        assert ev.score == pytest.approx(madnas_score(cand.spec), rel=1e-12)


def test_solve_returns_designs_of_the_space_within_budget() -> None:
    prog = _program()
    res = DeepMADSolver(max_nodes=50).solve(prog.space, prog.space.budget, top_k=3)
    assert res.status == OPTIMAL and res.gap <= 1e-3 and res.bound >= res.best.score
    for cand in res.candidates:
        d = prog.from_spec(cand.spec)
        assert prog.is_valid(d) and prog.layers(d.L) <= 53
        assert cand.extra["flops"] == deepmad_flops(cand.spec) <= 300_000_000
        assert cand.spec.head_channels == 1280 and cand.score == pytest.approx(madnas_score(cand.spec), rel=1e-12)


# a tiny version of the space: two superblocks, a small ratio grid, a head conv, a layer limit, the FLOPs budget
def _tiny(**changes) -> SearchSpace:
    base = dict(name="tiny-mbv2", block="k1dwk1", resolution=32, num_classes=10, strides=(2, 2), kernels=(3, 5),
                stem_widths=(8, 16), widths=(8, 40), bottleneck_ratio=(1.5, 6.0), bottleneck_grid=(1.5, 3.0, 6.0),
                depths=(1, 3), first_depth_max=2, max_width_ratio=160.0, max_layers=14, head_channels=64,
                rho0=100.0, penalty_skip=0, last_stage_weight=1.0, score="madnas", shortcut="pool",
                budget=Budget(flops=600_000))
    base.update(changes)
    return SearchSpace(**base)


def _all_designs(space: SearchSpace) -> list[Design]:
    prog = DeepMADProgram(space, Budget())
    m = prog.m
    widths = range(space.widths[0], space.widths[1] + 1, m)
    out = []
    for c0 in range(space.stem_widths[0], space.stem_widths[1] + 1, m):
        for cs in itertools.product(widths, repeat=prog.n):
            for bs in itertools.product(*(space.inner_widths(c) for c in cs)):
                for ks in itertools.product(space.kernels, repeat=prog.n):
                    for Ls in itertools.product(range(1, 3), range(1, 4)):
                        d = Design(c0, cs, bs, ks, Ls)
                        if prog.is_valid(d):
                            out.append(d)
    return out


@pytest.mark.parametrize(("score", "flops"), [("madnas", 600_000), ("madnas", 1_200_000), ("deepmad", 1_200_000)])
def test_solver_matches_brute_force_on_a_tiny_version(score: str, flops: int) -> None:
    """Every rule of the space binds somewhere here (the grid, the layer limit, the FLOPs budget); the deepmad
    score (with its depth penalty) checks the stage product whose width is the head conv's constant."""
    space = _tiny(score=score)
    budget = Budget(flops=flops)
    prog = DeepMADProgram(space, budget)
    designs = _all_designs(space)
    assert any(prog.layers(d.L) == 14 for d in designs) and not any(prog.layers(d.L) > 14 for d in designs)
    best = brute_force(prog, designs)
    unlimited = brute_force(DeepMADProgram(space, Budget(flops=10**12)), designs)
    assert best is not None and unlimited[1].score > best[1].score + 1e-6  # the budget binds
    res = DeepMADSolver().solve(space, budget)
    assert res.status == OPTIMAL
    assert res.best.score == pytest.approx(best[1].score, rel=1e-9)
    assert res.bound >= best[1].score - 1e-6
    for cand in res.candidates:
        d = prog.from_spec(cand.spec)
        assert prog.is_valid(d) and prog.evaluate(d).feasible and cand.extra["flops"] <= flops


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _designs(draw, prog: DeepMADProgram) -> Design:
    sp, m = prog.space, prog.m
    c0 = draw(st.sampled_from(range(sp.stem_widths[0], sp.stem_widths[1] + 1, m)))
    cs, prev = [], c0
    for _ in range(prog.n):
        prev = draw(st.sampled_from(range(prev, min(prev + 160, sp.widths[1]) + 1, m)))
        cs.append(prev)
    bs = tuple(draw(st.sampled_from(prog.b_options(c))) for c in cs)
    ks = tuple(draw(st.sampled_from(sp.kernels)) for _ in cs)
    budget_left = (sp.max_layers - prog.layers((1,) * prog.n)) // 3
    Ls = []
    for i in range(prog.n):
        extra = draw(st.integers(0, min(budget_left, (sp.first_depth_max if i == 0 else sp.depths[1]) - 1)))
        budget_left -= extra
        Ls.append(1 + extra)
    return Design(c0, tuple(cs), bs, ks, tuple(Ls))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), resolution=st.sampled_from([224, 160, 97]), counts=st.sampled_from(["backbone", "model"]),
       entropy=st.sampled_from(["code", "paper"]), score=st.sampled_from(["madnas", "deepmad"]))
def test_evaluate_equals_cost_model_and_objectives(data, resolution: int, counts: str, entropy: str, score: str) -> None:
    """The program's closed form with the head conv and the ratio grid equals the cost model and the spec-level
    scores (madnas, and DeepMAD's entropy score, whose last stage then has the head's width), at other
    resolutions and with the classifier counted."""
    from archsearch.cost import costs
    from archsearch.objectives import deepmad_score

    space = get_space("deepmad-mbv2").replace(budget_counts=counts, score=score, budget=Budget(flops=10**12))
    prog = DeepMADProgram(space, space.budget, resolution=resolution, entropy=entropy, depth_penalty=False)
    d = data.draw(_designs(prog))
    assert prog.is_valid(d)
    spec, ev = prog.to_spec(d), prog.evaluate(d)
    c = costs(spec)
    suffix = "_with_head" if counts == "model" else ""
    assert (ev.macs, ev.params, ev.memory) == (c["macs" + suffix], c["params" + suffix], c["activation_memory"])
    assert ev.flops == deepmad_flops(spec)
    sc = deepmad_score(spec, last_stage_weight=1.0, depth_penalty_on=False, entropy=entropy)
    expected = madnas_score(spec, entropy=entropy) if score == "madnas" else sc.entropy
    assert ev.score == pytest.approx(expected, rel=1e-12) and ev.rho == pytest.approx(sc.rho, rel=1e-12)
    assert prog.from_spec(spec) == d


@pytest.mark.parametrize("scale", ["uniform", "width", "depth"])
def test_baselines_and_samples_stay_in_the_space(scale: str) -> None:
    """The config's initial network scaled the classic way to the budget (depth scaling stops at the 53-layer
    limit: every depth 3) and random designs keep every rule: grid, depths, layers, head, reference block."""
    from archsearch.solvers.designs import baseline

    prog = _program()
    cand = baseline(prog.space, prog.space.budget, scale=scale)
    assert cand.extra["rules_ok"] and cand.extra["fits_budget"] and prog.is_valid(prog.from_spec(cand.spec))
    assert cand.spec.head_channels == 1280 and all(s.shortcut == "pool" for s in cand.spec.stages)
    if scale == "depth":
        assert [s.depth for s in cand.spec.stages] == [3, 3, 3, 3, 3]


def test_the_madnas_space_has_no_constants_to_tune() -> None:
    from archsearch.solvers.constants import default_constants, free_constants

    assert free_constants(get_space("deepmad-mbv2")) == () and default_constants(get_space("deepmad-mbv2")) == {}
    assert default_constants(get_space("deepmad-mbv2-plus"))["rho0"] == 0.5
