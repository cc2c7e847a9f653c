"""Free constants, profiles and ``tune`` (issue 20): declared constants with ranges, a program that applies
them (checked against brute force), profiles checked like any untrusted file, and a tune of a few trials on
digits that stores its trials, reuses trained designs, resumes after an interruption and writes a profile
that a solve applies."""

from __future__ import annotations

import json
import math

import pytest

from archsearch.errors import SpecError
from archsearch.solvers import DeepMADProgram, DeepMADSolver, brute_force
from archsearch.solvers.constants import FreeConstant, check_constants, default_constants, free_constants
from archsearch.solvers.profile import FORMAT, Profile, read_profile, write_profile
from archsearch.space import get_space
from archsearch.space.budget import Budget

from test_solver_deepmad import _all_valid, _tiny


# ----------------------------------------------------------------------------------------- constants
def test_deepmad_and_nvit_declare_their_constants_with_ranges_and_the_papers_defaults() -> None:
    space = get_space("deepmad-r50")
    consts = {c.name: c for c in free_constants(space)}
    assert set(consts) == {"rho0", "last_stage_weight", "penalty_weight"}
    assert (consts["rho0"].low, consts["rho0"].high) == (0.1, 0.8)
    assert consts["last_stage_weight"].log
    assert default_constants(space) == {"rho0": 0.3, "last_stage_weight": 8.0, "penalty_weight": 10.0}
    assert default_constants(get_space("deepmad-mbv2-plus"))["rho0"] == 0.5
    nvit = get_space("nvit")
    assert [c.name for c in free_constants(nvit)] == ["priors"]
    assert default_constants(nvit) == {"priors": nvit.priors}
    assert free_constants(get_space("tinyvit")) == ()  # a program that declares none
    # every declared constant is a keyword the solver takes
    for name in ("deepmad-r50", "nvit"):
        sp = get_space(name)
        from archsearch.solvers import get_solver

        assert {c.name for c in free_constants(sp)} <= set(get_solver(sp.solver).options)


@pytest.mark.parametrize(("values", "message"), [
    ({"rho0": 0.05}, "rho0: expected a number in [0.1, 0.8], got 0.05"),
    ({"rho0": "0.3"}, "rho0: expected a number in [0.1, 0.8], got '0.3'"),
    ({"rho0": math.nan}, "rho0: expected a number in [0.1, 0.8], got nan"),
    ({"penalty_weight": True}, "penalty_weight: expected a number in [0, 40], got True"),
    ({"rho": 0.3}, "rho: not a free constant of the program of space deepmad-r50; its constants: "
                   "['last_stage_weight', 'penalty_weight', 'rho0']"),
])
def test_constants_out_of_range_are_one_line_errors(values: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        check_constants(get_space("deepmad-r50"), values)
    assert str(err.value) == message


def test_a_categorical_constant_takes_only_its_choices() -> None:
    c = FreeConstant("priors", "categorical", choices=(True, False))
    assert c.check(False, "x") is False
    for bad in (0, 1, "true", None):
        with pytest.raises(SpecError, match=r"x: expected one of \[True, False\]"):
            c.check(bad, "x")
    with pytest.raises(ValueError):
        FreeConstant("w", "float", 1.0, 0.5)  # an empty range is a programming error


def test_the_program_applies_the_constants() -> None:
    space = _tiny("k1kxk1")
    d = _all_valid(space)[7]
    base = DeepMADProgram(space, Budget()).evaluate(d)
    none = DeepMADProgram(space, Budget(), penalty_weight=0.0).evaluate(d)
    heavy = DeepMADProgram(space, Budget(), penalty_weight=25.0).evaluate(d)
    assert none.penalty == 0.0 and none.score == none.entropy
    assert heavy.penalty == pytest.approx(2.5 * base.penalty)
    w2 = DeepMADProgram(space, Budget(), last_stage_weight=2.0).evaluate(d)
    w8 = DeepMADProgram(space, Budget(), last_stage_weight=8.0).evaluate(d)
    assert w2.entropy < w8.entropy  # the last stage's term scales with its weight
    with pytest.raises(SpecError, match=r"penalty_weight: expected a number in \[0, 1e6\]"):
        DeepMADProgram(space, Budget(), penalty_weight=-1.0)


@pytest.mark.parametrize("constants", [{"last_stage_weight": 2.0, "penalty_weight": 25.0},
                                       {"last_stage_weight": 14.0, "penalty_weight": 0.0, "rho0": 0.6}])
def test_the_solver_with_tuned_constants_matches_brute_force(constants: dict) -> None:
    space = _tiny("k1kxk1")
    budget = space.budget
    kw = {"rho0": constants.get("rho0"), "last_stage_weight": constants["last_stage_weight"],
          "penalty_weight": constants["penalty_weight"]}
    best = brute_force(DeepMADProgram(space, budget, **kw), _all_valid(space))
    res = DeepMADSolver(max_nodes=2000).solve(space, budget, top_k=1, **kw)
    assert res.best.score == pytest.approx(best[1].score, rel=1e-9)
    assert res.bound >= best[1].score - 1e-6 * abs(best[1].score)


# ------------------------------------------------------------------------------------------ profiles
def test_a_profile_round_trips_and_is_checked_against_its_space(tmp_path) -> None:
    prof = Profile("deepmad-fmnist", {"rho0": 0.45, "penalty_weight": 3.0}, {"value": 0.9}, {"study": "s"})
    path = write_profile(tmp_path, prof)
    assert path == tmp_path / "profile.json"
    assert json.loads(path.read_text())["format"] == FORMAT
    assert read_profile(tmp_path) == prof
    with pytest.raises(SpecError, match="the profile is for space 'deepmad-fmnist', not 'deepmad-r50'"):
        read_profile(path).check(get_space("deepmad-r50"))


@pytest.mark.parametrize(("data", "tail"), [
    ({"format": "x", "space": "deepmad-fmnist", "constants": {}}, "format: expected 'archsearch-profile/1'"),
    ({"format": FORMAT, "space": 3, "constants": {}}, "space: expected a space name, got the number 3"),
    ({"format": FORMAT, "space": "nope", "constants": {}}, "space: space 'nope' is not registered"),
    ({"format": FORMAT, "space": "deepmad-fmnist", "constants": [1]}, "constants: expected an object"),
    ({"format": FORMAT, "space": "deepmad-fmnist", "constants": {"rho0": 9}}, "constants.rho0: expected a number in [0.1, 0.8], got 9"),
    ({"format": FORMAT, "space": "deepmad-fmnist", "constants": {"x": 1}}, "constants.x: not a free constant"),
])
def test_bad_profiles_get_one_line_errors(tmp_path, data: dict, tail: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError) as err:
        read_profile(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"--profile {path}: ") and tail in msg


def test_a_profile_that_is_not_json_is_refused(tmp_path) -> None:
    path = tmp_path / "profile.json"
    path.write_bytes(b"\x00\x01binary")
    with pytest.raises(SpecError, match="binary data|not UTF-8"):
        read_profile(path)
    with pytest.raises(SpecError, match="file not found"):
        read_profile(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------- tune
_BUDGETS = [Budget.parse("macs=500K,params=15K")]
_SPACE = "test-tune-tiny"


def _space():
    """A tiny registered space (16 px, two superblocks): a tune names its space, so the space is registered."""
    from archsearch.space.search_space import list_spaces, register_space

    if _SPACE not in list_spaces():
        register_space(_tiny("k1kxk1", name=_SPACE))
    return get_space(_SPACE)


def _plan(out, trials: int = 3, **kw):
    from archsearch.study.tune import plan_tune

    return plan_tune(space=_space(), budgets=kw.pop("budgets", _BUDGETS), run_dir=out,
                     dataset="digits", recipe="quick", epochs=1, max_batches=1, trials=trials, max_nodes=30, **kw)


def test_a_tune_stores_trials_reuses_designs_and_writes_a_profile_that_solve_applies(tmp_path) -> None:
    import optuna

    from archsearch.study.tune import run_tune, tune_profile

    settings, url, name = _plan(tmp_path, trials=3)
    seen = []
    summary = run_tune(study=name, storage=url, on_trial=seen.append)
    assert summary.completed + summary.pruned == 3 and summary.failed == 0
    assert [t["number"] for t in seen] == [0, 1, 2]
    study = optuna.load_study(study_name=name, storage=url)
    assert len(study.trials) == 3 and study.user_attrs["tune"]["space"] == _SPACE
    for t in study.trials:
        assert set(t.params) == {"rho0", "last_stage_weight", "penalty_weight"}
    # the papers' constants run first, so the tuned ones are judged beside them
    assert study.trials[0].params == default_constants(_space()) and study.trials[0].user_attrs["paper"]
    designs = optuna.load_study(study_name=f"{name}/designs", storage=url)
    keys = [t.user_attrs["key"] for t in designs.trials if t.state.name == "COMPLETE"]
    assert len(keys) == len(set(keys)) == summary.trained  # each design trained once
    # running again adds nothing: the study holds its trials
    again = run_tune(study=name, storage=url)
    assert (again.completed, again.trained) == (0, 0) and len(optuna.load_study(study_name=name, storage=url).trials) == 3
    # the same constants twice: the second trial reuses the design
    study.enqueue_trial(study.best_trial.params)
    settings2, _, _ = _plan(tmp_path, trials=4)
    more = run_tune(study=name, storage=url)
    assert (more.completed, more.trained, more.reused) == (1, 0, 1)
    path = tune_profile(study=name, storage=url, out=tmp_path)
    prof = read_profile(path)
    assert prof.space == _SPACE and prof.constants == study.best_trial.params
    assert prof.evidence["value"] == pytest.approx(study.best_value) and prof.provenance["study"] == name
    assert prof.evidence["paper"]["number"] == 0
    # a solve with the profile's constants gives the design the best trial trained
    best = optuna.load_study(study_name=name, storage=url).best_trial
    res = DeepMADSolver(max_nodes=30).solve(_space(), _BUDGETS[0], top_k=1, **prof.constants)
    assert res.best.macs == best.user_attrs["designs"][0]["macs"]


def test_an_interrupted_tune_resumes_its_trial_and_its_training(tmp_path) -> None:
    import optuna

    from archsearch.study.tune import run_tune

    settings, url, name = _plan(tmp_path, trials=2)

    def interrupt(event: dict) -> None:
        if event["trial"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tune(study=name, storage=url, on_epoch=interrupt)
    study = optuna.load_study(study_name=name, storage=url)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "WAITING"]  # the interrupted constants wait to run again
    assert study.trials[2].params == study.trials[1].params or study.trials[2].system_attrs["fixed_params"] == study.trials[1].params
    summary = run_tune(study=name, storage=url)
    study = optuna.load_study(study_name=name, storage=url)
    assert summary.completed == 1 and study.trials[2].state.name == "COMPLETE"
    assert study.trials[2].params == study.trials[1].params
    designs = optuna.load_study(study_name=f"{name}/designs", storage=url)
    done = [t.user_attrs["key"] for t in designs.trials if t.state.name == "COMPLETE"]
    assert len(done) == len(set(done))


def test_tune_refuses_what_it_cannot_tune(tmp_path) -> None:
    from archsearch.study.tune import plan_tune

    with pytest.raises(SpecError, match="--space tinyvit: its program .* declares no free constants"):
        plan_tune(space=get_space("tinyvit"), budgets=[Budget.parse("params=5M")], run_dir=tmp_path)
    with pytest.raises(SpecError, match="--trials: expected an integer >= 1, got 0"):
        _plan(tmp_path, trials=0)
    _plan(tmp_path, trials=2)
    with pytest.raises(SpecError, match="tuned with other settings \\(budgets differ\\)"):
        _plan(tmp_path, trials=2, budgets=[Budget.parse("macs=600K,params=15K")])


# ----------------------------------------------------------------------------------------------- CLI
def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from archsearch.cli.main import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_tune_command_writes_a_profile_that_solve_show_and_worker_use(tmp_path, capsys) -> None:
    _space()
    out = tmp_path / "tune"
    base = ["--space", _SPACE, "--budget", "macs=500K,params=15K", "--dataset", "digits", "--epochs", "1",
            "--max-batches", "1", "--trials", "2", "--max-nodes", "30", "--out", str(out)]
    # created only: a worker runs its trials
    code, stdout, _ = _cli(capsys, "tune", *base, "--enqueue-only", "--format", "json")
    assert code == 0 and json.loads(stdout)["best"] is None
    code, stdout, _ = _cli(capsys, "worker", "--study", f"tune-{_SPACE}", "--storage", f"sqlite:///{out}/study.db",
                           "--device", "cpu", "--format", "json")
    assert code == 0 and json.loads(stdout)["completed"] + json.loads(stdout)["pruned"] == 2
    code, stdout, stderr = _cli(capsys, "tune", *base)  # resumes: nothing left to run, prints the best and writes the profile
    assert code == 0 and "best constants" in stdout and "wrote" in stderr
    prof = read_profile(out / "profile.json")
    code, stdout, _ = _cli(capsys, "solve", "--space", _SPACE, "--budget", "macs=500K,params=15K", "--max-nodes", "30",
                           "--top-k", "1", "--profile", str(out / "profile.json"), "--format", "json", "--out", str(tmp_path / "run"))
    solved = json.loads(stdout)
    assert code == 0 and solved["profile"]["constants"] == prof.constants
    direct = DeepMADSolver(max_nodes=30).solve(_space(), _BUDGETS[0], top_k=1, **prof.constants)
    assert solved["candidates"][0]["score"] == pytest.approx(direct.best.score)
    # show scores the run's candidate with the run's constants
    code, stdout, _ = _cli(capsys, "show", str(tmp_path / "run" / "candidates.json"), "--format", "json")
    shown = json.loads(stdout)
    assert code == 0 and shown["score"] == pytest.approx(direct.best.score) and shown["profile"]["constants"] == prof.constants
    # an explicit --rho wins over the profile's rho0 and says so
    code, stdout, _ = _cli(capsys, "solve", "--space", _SPACE, "--budget", "macs=500K,params=15K", "--max-nodes", "30",
                           "--top-k", "1", "--profile", str(out / "profile.json"), "--rho", "0.5", "--format", "json")
    assert code == 0 and json.loads(stdout)["profile"]["overridden"] == ["rho0"]


@pytest.mark.parametrize(("argv", "message"), [
    (["solve", "--space", "deepmad-r50", "--profile", "{tmp}/missing.json"], "--profile: file not found"),
    (["solve", "--space", "deepmad-r50", "--profile", "{tmp}/other.json"], "the profile is for space 'deepmad-fmnist', not 'deepmad-r50'"),
    (["tune", "--space", "tinyvit", "--budget", "params=5M", "--out", "{tmp}/t"], "--space tinyvit: its program"),
    (["tune", "--space", "deepmad-fmnist", "--budget", "macs=1M", "--trials", "0", "--out", "{tmp}/t"], "--trials: expected an integer >= 1"),
    (["tune", "--space", "deepmad-fmnist", "--budget", "macs=abc", "--out", "{tmp}/t"], "budget field 'macs': cannot read 'abc'"),
])
def test_bad_tune_and_profile_input_is_one_line_and_exit_2(tmp_path, capsys, argv: list, message: str) -> None:
    write_profile(tmp_path / "other.json", Profile("deepmad-fmnist", {"rho0": 0.4}))
    code, _, stderr = _cli(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2 and message in stderr and stderr.count("\n") == 1
