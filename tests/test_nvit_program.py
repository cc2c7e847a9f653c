"""The NViT redistribution program (space ``nvit``, solver ``nvit-program``).

Known answers: brute force over every design of tiny spaces (priors on and off; MACs, params and
memory budgets); the program's behaviour at the DeiT-S budget (less-more-less, within budget); the
order in which blocks shrink as the budget tightens; the priors-off optimum; bad input.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from archsearch.cli.main import main
from archsearch.cost.vit import vit_activation_memory, vit_block_macs, vit_macs, vit_params
from archsearch.errors import SpecError
from archsearch.objectives.nvit import block_profile, nvit_entropy
from archsearch.solvers import (
    INFEASIBLE, OPTIMAL, NViTProgram, NViTSolver, brute_force_nvit, get_solver, list_solvers, relative_gap, solve_nvit,
)
from archsearch.solvers.nvit import _pareto
from archsearch.space import Budget, ViTSpec, get_space
from archsearch.space.nvit_templates import NViTSpace

# 32 px, patch 16: 5 tokens; EMB 16..48; every block chooses H, qk, v, MLP from small menus
TINY2 = NViTSpace(name="tiny2", depth=2, resolution=32, num_classes=10, embed_dims=(16, 48), heads=(1, 3),
                  qk_dims=(8, 16), v_dims=(8, 16), mlp_dims=(16, 64), heads_ratio=(0.0, 1.0), qk_ratio=(0.0, 1.0),
                  mlp_ratio=(0.0, 4.0), v_prior=(8, 8))
TINY3 = TINY2.replace(name="tiny3", depth=3, heads=(1, 2), qk_dims=(8, 8), mlp_dims=(16, 48))


def _within(cand, budget: Budget) -> None:
    spec = cand.spec
    macs, params = vit_macs(spec, with_head=True), vit_params(spec, with_head=True)
    assert (cand.macs, cand.params) == (macs, params)
    assert budget.macs is None or macs <= budget.macs
    assert budget.params is None or params <= budget.params
    assert budget.memory is None or vit_activation_memory(spec) <= budget.memory


def _middle_ends(spec: ViTSpec) -> tuple[list[int], list[int]]:
    w = block_profile(spec.depth)
    n = spec.num_tokens
    macs = [vit_block_macs(b, spec.embed_dim, n) for b in spec.blocks]
    return [m for m, x in zip(macs, w) if x > 1], [m for m, x in zip(macs, w) if x == 1]


# ------------------------------------------------------------------------------------ brute force
def _tiny_budgets(space: NViTSpace) -> list[Budget]:
    prog = NViTProgram(space, Budget())
    lo = min(prog.min_costs(d)[0] for d in prog.embed_grid())
    lp = min(prog.min_costs(d)[1] for d in prog.embed_grid())
    return [Budget(macs=int(lo * 1.6)), Budget(params=int(lp * 2.2)), Budget(macs=int(lo * 2.5), params=int(lp * 1.8)),
            Budget(macs=int(lo * 3), memory=4 * (3 * 32 * 32 + 4 * 32))]


CASES = [(sp, pri, b) for sp in (TINY2, TINY3) for pri in (True, False) for b in _tiny_budgets(sp)]


@pytest.mark.parametrize("space,priors,budget", CASES, ids=[f"{s.name}-{'priors' if p else 'plain'}-{b.to_text()}" for s, p, b in CASES])
def test_solver_matches_brute_force(space: NViTSpace, priors: bool, budget: Budget) -> None:
    prog = NViTProgram(space, budget, priors=priors)
    brute = brute_force_nvit(prog)
    res = NViTSolver().solve(space, budget, top_k=3, priors=priors)
    if brute is None:
        assert res.status == INFEASIBLE and not res.candidates and res.smallest
        return
    best = res.best
    assert res.status == OPTIMAL and res.gap <= 1e-3
    assert best.score == pytest.approx(brute[0], rel=1e-12, abs=1e-12)
    assert res.bound >= brute[0] - 1e-9
    assert res.gap == relative_gap(res.bound, best.score)
    for cand in res.candidates:
        _within(cand, budget)
        assert prog.is_member(cand.spec.embed_dim, tuple((b.heads, b.qk_dim, b.v_dim, b.mlp_dim) for b in cand.spec.blocks))
        assert cand.score == pytest.approx(prog.score(cand.spec), rel=1e-12)
    assert [c.score for c in res.candidates] == sorted((c.score for c in res.candidates), reverse=True)


def test_lp_and_lagrangian_bounds_are_upper_bounds() -> None:
    budget = _tiny_budgets(TINY2)[2]
    prog = NViTProgram(TINY2, budget, priors=False)
    for d in prog.embed_grid():
        sol, bound = prog.solve_emb(d)
        lp, lam = prog.lp_bound(d)
        if sol is None:
            assert lp == -math.inf
            continue
        assert lp >= sol.score - 1e-9 and bound >= sol.score - 1e-9
        for lam2 in (lam, (0.0, 0.0), (lam[0] * 3, lam[1] / 2)):
            assert prog.lagrangian_bound(d, *lam2) >= lp - 1e-7


def test_pareto_filter_against_pairwise_check() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        v, m, p = rng.integers(0, 4, n).astype(float), rng.integers(0, 4, n), rng.integers(0, 4, n)
        keep = set(_pareto(v, m, p).tolist())
        order = list(np.lexsort((p, m, -v)))
        ref = {i for a, i in enumerate(order)
               if not any(v[j] >= v[i] and m[j] <= m[i] and p[j] <= p[i] for j in order[:a])}
        assert keep == ref
        for i in range(n):  # every option is matched by a kept one at least as good
            assert any(v[j] >= v[i] and m[j] <= m[i] and p[j] <= p[i] for j in keep)


# ------------------------------------------------------------------------------------ DeiT-S budget
def test_deit_s_budget_less_more_less_within_budget() -> None:
    space = get_space("nvit")
    budget = Budget(macs=4_600_000_000)
    t0 = time.perf_counter()
    res = solve_nvit(space, budget, top_k=3)
    elapsed = time.perf_counter() - t0
    assert elapsed < 30  # a few seconds on an idle machine
    assert res.status == OPTIMAL and res.gap <= 1e-3 and res.bound >= res.best.score
    for cand in res.candidates:
        _within(cand, budget)
    spec = res.best.spec
    assert spec.depth == 12 and spec.patch_size == 16 and spec.resolution == 224 and spec.class_token
    middle, ends = _middle_ends(spec)
    assert min(middle) > max(ends)  # blocks 4-9 larger than blocks 1-3 and 10-12
    assert all(b.v_dim == 64 for b in spec.blocks)
    assert all(b.mlp_dim > b.heads * b.qk_dim for b in spec.blocks)  # MLP favoured
    assert res.best.score == pytest.approx(nvit_entropy(spec, block_weights=block_profile(12), mlp_weight=2.0),
                                           rel=1e-12)


def test_default_budget_counts_the_whole_model() -> None:
    space = get_space("nvit")
    assert space.budget_counts == "model" and space.family == "vit" and space.solver in list_solvers()
    deit_s = ViTSpec.uniform(embed_dim=384, depth=12, heads=6)
    assert vit_macs(deit_s, with_head=True) <= space.budget.macs
    assert vit_params(deit_s, with_head=True) <= space.budget.params
    res = solve_nvit(space, top_k=1)
    assert res.status == OPTIMAL
    _within(res.best, space.budget)


def test_end_blocks_shrink_before_middle_blocks() -> None:
    """At a fixed EMB and a decreasing series of budgets, the end blocks leave their largest size first."""
    space = get_space("nvit").replace(embed_dims=(384, 384))
    budgets = [8.0, 7.0, 6.5, 6.0, 5.5, 5.0, 4.6, 4.0]
    first_shrunk: dict[int, int] = {}
    full = None
    for k, g in enumerate(budgets):
        res = solve_nvit(space, Budget(macs=int(g * 1e9)), top_k=1)
        assert res.status == OPTIMAL
        spec = res.best.spec
        macs = [vit_block_macs(b, 384, spec.num_tokens) for b in spec.blocks]
        if full is None:
            full = max(macs)
            assert min(macs) == full  # the largest budget fits every block at its largest size
        for i, m in enumerate(macs):
            if m < full:
                first_shrunk.setdefault(i, k)
    w = block_profile(12)
    ends = [first_shrunk[i] for i in range(12) if w[i] == 1]
    middle = [first_shrunk.get(i, len(budgets)) for i in range(12) if w[i] > 1]
    assert max(ends) < min(middle)


def test_priors_off_gives_no_profile() -> None:
    """The objective alone is symmetric in the blocks: the optimum is (nearly) uniform."""
    space = get_space("nvit")
    res = solve_nvit(space, Budget(macs=4_600_000_000), top_k=1, priors=False)
    assert res.status == OPTIMAL
    _within(res.best, Budget(macs=4_600_000_000))
    spec = res.best.spec
    macs = [vit_block_macs(b, spec.embed_dim, spec.num_tokens) for b in spec.blocks]
    assert max(macs) / min(macs) < 1.03
    assert res.best.score == pytest.approx(nvit_entropy(spec), rel=1e-12)
    # fewer, wider heads: the score rewards qk per head, the costs only see H qk
    assert all(b.qk_dim == space.qk_dims[1] for b in spec.blocks)


# ------------------------------------------------------------------------------------ errors and CLI
def test_infeasible_reports_an_achievable_smallest_design() -> None:
    space = get_space("nvit")
    res = solve_nvit(space, Budget(macs=50_000_000))
    assert res.status == INFEASIBLE and not res.candidates
    small = res.smallest
    assert solve_nvit(space, Budget(macs=small["macs"]), top_k=1).status == OPTIMAL
    assert solve_nvit(space, Budget(macs=small["macs"] - 1), top_k=1).status == INFEASIBLE


def test_bad_input() -> None:
    space = get_space("nvit")
    with pytest.raises(SpecError, match="latency"):
        solve_nvit(space, Budget(latency_ms=3.0))
    with pytest.raises(SpecError, match="rho0"):
        NViTSolver().solve(space, space.budget, rho0=0.3)
    with pytest.raises(SpecError, match="heads_ratio"):
        space.replace(heads_ratio=(0.1, 0.01))
    with pytest.raises(SpecError, match="budget_counts"):
        space.replace(budget_counts="backbone")
    with pytest.raises(SpecError, match="profile"):
        space.replace(profile="more-less-more")
    with pytest.raises(SpecError, match="resolution"):
        solve_nvit(space, resolution=200)
    assert get_solver("nvit-program") is NViTSolver and "priors" in NViTSolver.options


def test_cli_solve_json_and_out(tmp_path, capsys) -> None:
    assert main(["solve", "--space", "nvit", "--budget", "macs=4.6G", "--format", "json", "--top-k", "2"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["status"] == "optimal" and obj["space"] == "nvit" and obj["bound"] >= obj["candidates"][0]["score"]
    assert obj["candidates"][0]["spec"]["family"] == "vit" and obj["candidates"][0]["macs"] <= 4_600_000_000
    assert main(["solve", "--space", "nvit", "--budget", "macs=4.6G", "--out", str(tmp_path), "--top-k", "2"]) == 0
    saved = json.loads((tmp_path / "candidates.json").read_text())
    assert saved["candidates"][0]["spec"] == obj["candidates"][0]["spec"]
    assert (tmp_path / "pareto.csv").exists()
    assert main(["solve", "--space", "nvit", "--budget", "latency=3ms"]) == 2
    assert main(["solve", "--space", "nvit", "--budget", "macs=50M"]) == 2
