"""Designs no program chose: the scaled baseline, random designs and the score of any spec (CNN spaces)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archsearch import cost
from archsearch.cli.main import main
from archsearch.errors import SpecError
from archsearch.objectives import deepmad_score
from archsearch.solvers import DeepMADSolver
from archsearch.solvers.designs import _FAMILIES, baseline, reference_design, sample, score_spec
from archsearch.space import Budget, get_space

BUDGETS = [("deepmad-fmnist", "macs=1M,params=50K"), ("deepmad-fmnist", "macs=4M,params=200K"),
           ("deepmad-cifar", "macs=20M,params=500K"), ("deepmad-r50", "macs=4.13G,params=25.55M"),
           ("deepmad-mbv2-plus", "macs=300M,params=3.4M")]


def _fits(cand, budget: Budget) -> bool:
    return all(limit is None or value <= limit for value, limit in ((cand.macs, budget.macs), (cand.params, budget.params)))


@pytest.mark.parametrize(("name", "text"), BUDGETS)
@pytest.mark.parametrize("scale", ["uniform", "width", "depth"])
def test_baseline_is_the_largest_scaling_that_fits(name: str, text: str, scale: str) -> None:
    space, budget = get_space(name), Budget.parse(text)
    try:
        cand = baseline(space, budget, scale=scale)
    except SpecError as exc:  # the reference widths alone exceed a small budget: depth scaling cannot fit
        assert scale == "depth" and "no depth scaling" in str(exc)
        return
    assert _fits(cand, budget) and cand.extra["kind"] == "baseline" and cand.extra["scale"] == scale
    m = cand.extra["multiplier"]
    fam = _FAMILIES["cnn"]
    bigger = fam.scale(space, reference_design(space), scale, m * 1.0101)
    if bigger is not None:  # the next grid step: out of budget, or the very same design (rounding)
        nxt = score_spec(space, bigger, budget=budget)
        assert not _fits(nxt, budget) or bigger.to_dict() | {"name": ""} == cand.spec.to_dict() | {"name": ""}
    # exact costs: the candidate's costs are the cost model's (the space counts the backbone)
    assert cand.macs == cost.macs(cand.spec) and cand.params == cost.params(cand.spec)


def test_uniform_baseline_scales_every_width_by_one_multiplier() -> None:
    space = get_space("deepmad-fmnist")
    cand = baseline(space, Budget.parse("macs=16M,params=800K"))
    ref, spec, m = reference_design(space), cand.spec, cand.extra["multiplier"]
    assert [s.depth for s in spec.stages] == [s.depth for s in ref.stages]
    for a, b in zip(spec.stages, ref.stages):
        assert abs(a.out_channels - m * b.out_channels) <= 4 and a.out_channels % 8 == 0
    assert spec.resolution == 28 and spec.stem.in_channels == 1


@pytest.mark.parametrize(("name", "text"), BUDGETS)
def test_sample_draws_feasible_designs_deterministically(name: str, text: str) -> None:
    space, budget = get_space(name), Budget.parse(text)
    first = sample(space, budget, 4, seed=3)
    assert len(first) == 4 and len({json.dumps(c.spec.to_dict(), sort_keys=True) for c in first}) == 4
    for c in first:
        assert _fits(c, budget) and c.extra["rules_ok"] and c.extra["kind"] == "random"
        assert c.rho <= space.rho0 * (1 + 1e-12)
    again = sample(space, budget, 4, seed=3)
    assert [c.spec for c in again] == [c.spec for c in first]
    other = sample(space, budget, 4, seed=4)
    assert [c.spec for c in other] != [c.spec for c in first]


def test_sample_refuses_bad_n_and_says_when_it_cannot_find_enough() -> None:
    space = get_space("deepmad-fmnist")
    with pytest.raises(SpecError, match=r"-n: expected an integer in \[1, 1000\]"):
        sample(space, space.budget, 0)
    with pytest.raises(SpecError, match="found 0 of 2 random designs"):
        sample(space, Budget.parse("macs=10K"), 2, max_draws=5)


def test_score_spec_is_what_the_solver_maximised() -> None:
    space = get_space("deepmad-cifar")
    budget = Budget.parse("macs=5M,params=100K")
    res = DeepMADSolver(time_limit=3).solve(space, budget, top_k=3)
    for c in res.candidates:
        got = score_spec(space, c.spec, budget=budget)
        assert got.score == pytest.approx(c.score, rel=1e-9) and got.rho == pytest.approx(c.rho, rel=1e-9)
        assert got.macs == c.macs and got.params == c.params and got.extra["rules_ok"] and got.extra["fits_budget"]
    # deepmad-cifar leaves no superblock out of the depth penalty; the plain objective's default skips 2
    spec = res.best.spec
    assert score_spec(space, spec).extra["penalty"] == pytest.approx(deepmad_score(spec, penalty_skip=0).penalty)
    assert score_spec(space, spec, depth_penalty=False).score == pytest.approx(deepmad_score(spec).entropy)


def test_cli_baseline_and_sample_write_runs_that_show_and_pareto_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--space", "deepmad-fmnist", "--budget", "macs=4M,params=200K"]
    assert main(["baseline", *args, "--out", str(tmp_path / "b"), "--format", "json"]) == 0
    base = json.loads(capsys.readouterr().out)
    assert base["kind"] == "baseline" and len(base["candidates"]) == 1
    assert main(["sample", *args, "-n", "3", "--seed", "1", "--out", str(tmp_path / "s"), "--format", "json"]) == 0
    samp = json.loads(capsys.readouterr().out)
    assert [c["kind"] for c in samp["candidates"]] == ["random"] * 3
    record = json.loads((tmp_path / "s" / "candidates.json").read_text())
    assert record["kind"] == "random" and record["provenance"]["seed"] == 1 and "sample" in record["provenance"]["command"]
    assert main(["show", str(tmp_path / "b" / "candidates.json"), "--space", "deepmad-fmnist", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["score"] == pytest.approx(base["candidates"][0]["score"]) and shown["rules_ok"] is False  # breaks rho
    assert main(["pareto", str(tmp_path / "b"), str(tmp_path / "s"), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4


def test_cli_design_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    cases = [(["baseline", "--space", "deepmad-fmnist", "--out", str(tmp_path / "file")], "--out"),
             (["baseline", "--space", "deepmad-fmnist", "--budget", "macs=10K"], "no uniform scaling"),
             (["sample", "--space", "deepmad-fmnist", "-n", "0"], "-n: expected"),
             (["sample", "--space", "deepmad-fmnist", "--seed", "-1"], "--seed: expected"),
             (["show", str(tmp_path / "file"), "--space", "deepmad-fmnist"], "spec"),
             (["show", str(tmp_path / "file"), "--space", "nope"], "nope"),  # names are checked before files are read
             (["baseline", "--space", "nvit", "--no-depth-penalty"], "--no-depth-penalty")]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (argv, err)


def test_published_baseline_is_the_resnet_of_the_budget_at_its_own_cost() -> None:
    from archsearch.space import resnet_spec

    cand = baseline(get_space("deepmad-r50"), scale="published")
    assert cand.spec == resnet_spec(50) and cand.macs == cost.macs(resnet_spec(50)) and cand.extra["kind"] == "baseline"
    assert cand.extra["rules_ok"] is False  # a max-pool stem and 4 stages: not the DeepMAD template
    assert cand.score == pytest.approx(deepmad_score(resnet_spec(50), penalty_skip=2).score)
    with pytest.raises(SpecError, match="--scale published: space deepmad-cifar has no published network"):
        baseline(get_space("deepmad-cifar"), scale="published")


def test_show_of_a_run_scores_its_candidate_as_the_solver_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "--space", "deepmad-cifar", "--budget", "macs=5M,params=100K", "--time-limit", "3",
                 "--out", str(tmp_path / "r"), "--format", "json"]) == 0
    best = json.loads(capsys.readouterr().out)["candidates"][0]
    assert main(["show", str(tmp_path / "r" / "candidates.json"), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    # deepmad-cifar's program leaves no superblock out of the depth penalty (the plain default skips 2)
    assert shown["space"] == "deepmad-cifar" and shown["score"] == pytest.approx(best["score"], rel=1e-12)
    assert shown["rho"] == pytest.approx(best["rho"]) and shown["rules_ok"] and shown["fits_budget"]


def test_pareto_and_report_take_a_folder_of_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    args = ["--space", "deepmad-fmnist", "--budget", "macs=1M,params=50K", "--format", "json"]
    assert main(["baseline", *args, "--out", str(study / "1M" / "baseline")]) == 0
    assert main(["sample", *args, "-n", "2", "--out", str(study / "1M" / "random")]) == 0
    (study / "results.csv").write_text("budget\n")
    capsys.readouterr()
    assert main(["pareto", str(study), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["pareto", *(str(p) for p in sorted(study.iterdir())), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 3 and "skipped 1 file(s) that are not runs" in err
    assert main(["pareto", str(tmp_path / "empty-folder-missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["pareto", str(tmp_path / "empty")]) == 2 and "neither a run directory" in capsys.readouterr().err


def test_cnn_candidates_carry_the_deepmad_reference_flops_where_it_counts_them() -> None:
    from archsearch.space import DEEPMAD_R50, resnet_spec

    space = get_space("deepmad-r50")
    assert score_spec(space, DEEPMAD_R50).extra["flops"] == 4_087_263_656
    assert score_spec(space, resnet_spec(50)).extra["flops"] == 4_121_883_136  # its max-pool counted as zero
