"""Studies: keys, trials with spec and metrics, skipping finished candidates, resuming interrupted ones."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from _train_helpers import one_thread, tiny_spec, write_run
from archsearch.space import CNNSpec
from archsearch.study import ValidationStudy, candidate_key, default_storage, load_results, validate_run
from archsearch.train import get_recipe

FAST = dict(epochs=2, max_batches=3, device="cpu", latency=False)


def test_candidate_key_depends_on_spec_recipe_dataset_and_seed() -> None:
    spec, recipe = tiny_spec().to_dict(), get_recipe("quick").to_dict()
    key = candidate_key(spec, recipe, "digits", 0)
    assert len(key) == 16 and key == candidate_key(dict(reversed(list(spec.items()))), recipe, "digits", 0)
    others = {candidate_key(tiny_spec(width=24).to_dict(), recipe, "digits", 0),
              candidate_key(spec, get_recipe("standard").to_dict(), "digits", 0),
              candidate_key(spec, recipe, "fashion-mnist", 0), candidate_key(spec, recipe, "digits", 1)}
    assert key not in others and len(others) == 4


def test_study_start_reuses_a_running_trial_and_finish_completes_it(tmp_path: Path) -> None:
    study = ValidationStudy(name="r", storage=default_storage(tmp_path))
    trial = study.start("k1", {"name": "a"})
    study.report(trial, 1, 0.5, [{"epoch": 1}])
    again = ValidationStudy(name="r", storage=default_storage(tmp_path)).start("k1", {"name": "a"})
    assert again.number == trial.number
    other = study.start("k2", {"name": "b"})
    assert other.number != trial.number
    study.finish(again, {"top1": 0.75, "top5": 1.0})
    study.fail(other, "RuntimeError: boom")
    done = study.finished()
    assert list(done) == ["k1"] and done["k1"].value == 0.75 and done["k1"].intermediate_values == {1: 0.5}
    assert study.rows()[0]["top5"] == 1.0 and study.rows()[0]["name"] == "a"
    states = sorted(t.state.name for t in optuna.load_study(study_name="r", storage=default_storage(tmp_path)).trials)
    assert states == ["COMPLETE", "FAIL"]


def test_validate_records_trials_and_skips_finished_candidates(tmp_path: Path) -> None:
    one_thread()
    run = write_run(tmp_path / "run", [tiny_spec(name="a"), tiny_spec(name="b", width=24)])
    rows = validate_run(run, **FAST)
    assert [r["status"] for r in rows] == ["trained", "trained"] and [r["name"] for r in rows] == ["a", "b"]
    assert all(0 <= r["top1"] <= r["top5"] <= 1 and r["epochs"] == 2 for r in rows)
    assert rows[0]["params"] == sum(p.numel() for p in __import__("archsearch.models", fromlist=["x"]).build_model(
        tiny_spec(), num_classes=10).parameters())
    study = optuna.load_study(study_name="tiny-run", storage=default_storage(run))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    attrs = study.trials[0].user_attrs
    assert CNNSpec.from_dict(attrs["spec"]) == tiny_spec(name="a") and attrs["dataset"] == "digits" and attrs["recipe"] == "quick"
    assert len(attrs["history"]) == 2 and study.trials[0].intermediate_values.keys() == {1, 2}
    again = validate_run(run, **FAST)
    assert [r["status"] for r in again] == ["cached", "cached"] and [r["top1"] for r in again] == [r["top1"] for r in rows]
    assert len(optuna.load_study(study_name="tiny-run", storage=default_storage(run)).trials) == 2
    assert [r["name"] for r in load_results(run)] == ["a", "b"]
    seeded = validate_run(run, **FAST, top_k=1, seed=1)
    assert seeded[0]["status"] == "trained"  # another seed is another experiment


def test_interrupted_run_resumes_at_the_next_epoch_and_loses_nothing(tmp_path: Path) -> None:
    one_thread()
    run = write_run(tmp_path / "run", [tiny_spec(name="a"), tiny_spec(name="b", width=24)])

    def interrupt(record):  # type: ignore[no-untyped-def]
        if record.epoch == 1 and calls.append(1) is None and len(calls) == 2:  # epoch 1 of the second candidate
            raise KeyboardInterrupt

    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        validate_run(run, **FAST, callbacks=[interrupt])
    study = optuna.load_study(study_name="tiny-run", storage=default_storage(run))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert study.trials[1].intermediate_values == {1: study.trials[1].intermediate_values[1]}
    ckpts = list((run / "checkpoints").glob("*.pt"))
    assert len(ckpts) == 2 and sorted(torch.load(c, weights_only=True)["epoch"] for c in ckpts) == [1, 2]

    epochs: list[int] = []
    rows = validate_run(run, **FAST, callbacks=[lambda r: epochs.append(r.epoch)])
    assert [r["status"] for r in rows] == ["cached", "resumed"] and epochs == [2]
    study = optuna.load_study(study_name="tiny-run", storage=default_storage(run))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["resumed_from"] == 1 and len(study.trials[1].user_attrs["history"]) == 2
    assert study.trials[1].intermediate_values.keys() == {1, 2}


def test_a_candidates_file_stores_results_beside_it_and_storage_url_is_honoured(tmp_path: Path) -> None:
    one_thread()
    run = write_run(tmp_path / "run", [tiny_spec(name="a")])
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    validate_run(run / "candidates.json", **{**FAST, "epochs": 1}, storage=url)
    assert (tmp_path / "elsewhere.db").is_file() and not (run / "study.db").exists()
    assert (run / "checkpoints").is_dir()
    assert load_results(run, storage=url)[0]["name"] == "a"


def test_max_batches_enters_the_key_and_full_keys_are_unchanged() -> None:
    spec, recipe = tiny_spec().to_dict(), get_recipe("quick").to_dict()
    full = candidate_key(spec, recipe, "digits", 0)
    assert candidate_key(spec, recipe, "digits", 0, max_batches=None) == full
    smoke = {candidate_key(spec, recipe, "digits", 0, max_batches=n) for n in (20, 21)}
    assert full not in smoke and len(smoke) == 2
    shorter = candidate_key(spec, {**recipe, "epochs": 1}, "digits", 0)
    assert shorter != full


def test_a_smoke_run_is_never_served_as_the_full_one_and_seeds_are_an_axis(tmp_path: Path) -> None:
    from archsearch.results import validated_frame

    one_thread()
    run = write_run(tmp_path / "run", [tiny_spec(name="a")])
    smoke = validate_run(run, **{**FAST, "epochs": 1, "max_batches": 2})
    other = validate_run(run, **{**FAST, "epochs": 1, "max_batches": 3})
    assert smoke[0]["status"] == other[0]["status"] == "trained" and smoke[0]["key"] != other[0]["key"]
    assert smoke[0]["max_batches"] == 2 and smoke[0]["kind"] == "designed"
    rows = validate_run(run, **{**FAST, "epochs": 1, "max_batches": 2}, seeds=[0, 1, 2])
    assert [r["status"] for r in rows] == ["cached", "trained", "trained"] and [r["seed"] for r in rows] == [0, 1, 2]
    assert len({r["design"] for r in rows}) == 1 and len({r["key"] for r in rows}) == 3
    table = validated_frame(load_results(run))
    assert len(table) == 2  # two trainings (2 and 3 batches an epoch), never merged
    three = table[table["max_batches"] == 2].iloc[0]
    tops = [r["top1"] for r in rows]
    assert three["seeds"] == 3 and three["seed_list"] == [0, 1, 2]
    assert three["top1"] == pytest.approx(sum(tops) / 3) and three["top1_std"] == pytest.approx(float(torch.tensor(tops).std()))
    with pytest.raises(Exception, match="--seeds"):
        validate_run(run, **FAST, seeds=[-1])


def test_pareto_shows_the_most_complete_training_of_each_candidate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json as _json

    from archsearch.cli.main import main

    one_thread()
    run = write_run(tmp_path / "run", [tiny_spec(name="a"), tiny_spec(name="b", width=24)])
    validate_run(run, **{**FAST, "epochs": 1, "max_batches": 2}, top_k=1, seeds=[0, 1])
    full = validate_run(run, **{**FAST, "epochs": 2, "max_batches": 2}, top_k=1, seeds=[0])
    assert main(["pareto", str(run), "--format", "json"]) == 0
    rows = {r["name"]: r for r in _json.loads(capsys.readouterr().out)}
    assert rows["a"]["top1"] == pytest.approx(full[0]["top1"]) and rows["a"]["seeds"] == 1  # 2 epochs beat 2 seeds
    assert rows["a"]["training"] == "digits/quick 2 ep x 2 b"
    assert rows["b"]["seeds"] == 0 and rows["b"]["top1"] is None
