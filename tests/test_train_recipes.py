"""Recipes: the registry, validation, and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest

from archsearch.errors import SpecError, UnknownNameError
from archsearch.train import Recipe, get_recipe, list_recipes, lr_factor, register_recipe


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


@pytest.mark.parametrize("field,value", [("epochs", 0), ("batch_size", 0), ("optimizer", "lamb"), ("lr", 0.0),
                                         ("weight_decay", -1.0), ("warmup_epochs", 99.0), ("label_smoothing", 1.0)])
def test_bad_fields_name_the_field(field: str, value: object) -> None:
    with pytest.raises(SpecError, match=f"recipe.{field}: expected"):
        get_recipe("quick").replace(**{field: value})


def test_lr_factor_warms_up_linearly_then_decays_by_cosine() -> None:
    kw = dict(total_steps=110, warmup_steps=10, warmup_start=0.1, min_lr_ratio=0.05)
    assert lr_factor(0, **kw) == pytest.approx(0.1)
    assert lr_factor(5, **kw) == pytest.approx(0.55)
    assert lr_factor(10, **kw) == pytest.approx(1.0)
    assert lr_factor(60, **kw) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(110, **kw) == pytest.approx(0.05)
    values = [lr_factor(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_factor(35, **kw) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 4)))
