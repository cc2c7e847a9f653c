"""Recipes: the registry, declarative validation, the papers' settings and the dict form that keys runs."""

from __future__ import annotations

import json
import re

import pytest

from archsearch.errors import SpecError, UnknownNameError
from archsearch.train import Recipe, get_recipe, list_recipes, register_recipe


@pytest.mark.parametrize("name", list_recipes())
def test_registered_recipes_are_valid_and_round_trip(name: str) -> None:
    recipe = get_recipe(name)
    assert recipe.name == name and recipe.description
    assert Recipe(**recipe.to_dict()) == recipe


def test_builtin_recipes() -> None:
    assert {"quick", "standard"} <= set(list_recipes())
    assert get_recipe("standard").epochs > get_recipe("quick").epochs
    with pytest.raises(UnknownNameError, match="quick"):
        get_recipe("slow-and-steady")


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_recipe(lambda: get_recipe("quick"))


@pytest.mark.parametrize("field,value", [("epochs", 0), ("batch_size", 0), ("optimizer", "lamb2"), ("lr", 0.0),
                                         ("weight_decay", -1.0), ("warmup_epochs", 99.0), ("label_smoothing", 1.0)])
def test_bad_fields_name_the_field(field: str, value: object) -> None:
    with pytest.raises(SpecError, match=f"recipe.{field}: expected"):
        get_recipe("quick").replace(**{field: value})


def test_the_papers_recipes_are_registered_with_their_settings() -> None:
    assert {"quick", "standard", "fmnist", "deit", "resnet-a3", "tinyvit-distill"} <= set(list_recipes())
    deit, a3, tiny = get_recipe("deit"), get_recipe("resnet-a3"), get_recipe("tinyvit-distill")
    assert (deit.optimizer, deit.lr, deit.lr_base_size, deit.weight_decay, deit.epochs) == ("adamw", 5e-4, 512, 0.05, 300)
    assert (deit.mixup, deit.cutmix, deit.re_prob, deit.aug_repeats, deit.label_smoothing) == (0.8, 1.0, 0.25, 3, 0.1)
    assert deit.auto_augment == "rand-m9-mstd0.5-inc1" and deit.pipeline == "timm" and deit.ema_decay == 0.99996
    assert (a3.optimizer, a3.lr, a3.lr_base_size, a3.loss, a3.bce_target_thresh) == ("lamb", 8e-3, 2048, "bce", 0.2)
    assert a3.crop_pct == 0.95
    assert (a3.mixup, a3.cutmix, a3.auto_augment, a3.epochs) == (0.1, 1.0, "rand-m6-mstd0.5-inc1", 100)
    assert tiny.distill and tiny.pipeline == "batch" and not tiny.mixes and tiny.clip_grad == 5.0 and tiny.epochs == 90
    for recipe in (deit, a3, tiny):
        doc = get_recipe.__globals__[recipe.name.replace("-", "_")].__doc__ or ""
        assert re.search(r"\(\w.*?20\d\d", doc, re.S), recipe.name  # the paper is cited: authors, title, year


def test_cpu_recipes_keep_their_first_format_dict() -> None:
    # the dict keys validated runs (candidate_key): the built-in CPU recipes must not change it
    assert get_recipe("quick").to_dict() == {
        "name": "quick", "epochs": 8, "batch_size": 64, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05,
        "warmup_epochs": 1, "warmup_start": 0.1, "min_lr_ratio": 0.0, "momentum": 0.9, "label_smoothing": 0.0,
        "augment": True, "description": "a minute on 2 CPU cores for a ~5M-MAC CNN on digits: ranks candidates, no more"}
    deit = get_recipe("deit").to_dict()
    assert deit["pipeline"] == "timm" and "scale" not in deit  # newer fields appear when set
    assert Recipe(**json.loads(json.dumps(get_recipe("deit").replace(scale=(0.2, 1.0)).to_dict()))).scale == (0.2, 1.0)


@pytest.mark.parametrize("changes,match", [
    ({"auto_augment": "rand-m9"}, r"recipe.auto_augment: set to 'rand-m9', but only the timm pipeline applies it"),
    ({"re_prob": 0.25}, r"recipe.re_prob: set to 0.25, but only the timm pipeline"),
    ({"optimizer": "sgd", "momentum": 0.0}, r"recipe.momentum: .*use optimizer 'momentum'"),
    ({"optimizer": "adamq"}, r"recipe.optimizer: expected one of \['sgd'"),
    ({"sched": "cosine-restarts"}, r"recipe.sched: expected one of \['cosine', 'step', 'poly', 'constant'\]"),
    ({"pipeline": "timm", "auto_augment": "trivial"}, r"recipe.auto_augment: expected null or a timm policy string"),
    ({"scale": (0.9, 0.1), "pipeline": "timm"}, r"recipe.scale: expected null or two numbers in \(0, 1\], ascending"),
    ({"aug_repeats": 1}, r"recipe.aug_repeats: expected 0 \(off\) or an integer in \[2, 16\]"),
    ({"ema_decay": 1.0}, r"recipe.ema_decay: expected a number in \[0, 1\)"),
    ({"loss": "focal"}, r"recipe.loss: expected 'ce' or 'bce'"),
])
def test_declarative_checks_name_the_field_and_the_rule(changes: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        get_recipe("quick").replace(**changes)


@pytest.mark.parametrize("changes", [{"mixup": 0.8}, {"pipeline": "timm"}, {"loss": "bce"}])
def test_distillation_refuses_what_a_teacher_cache_cannot_replay(changes: dict) -> None:
    field = next(iter(changes))
    with pytest.raises(SpecError, match=f"recipe.{field}: expected .* with distill"):
        get_recipe("tinyvit-distill").replace(**changes)
