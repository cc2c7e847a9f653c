"""Training recipes: named, frozen hyper-parameter sets, registered with :func:`register_recipe`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal

from archsearch.errors import SpecError, UnknownNameError, did_you_mean

__all__ = ["Recipe", "get_recipe", "list_recipes", "lr_factor", "register_recipe"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """How a candidate is trained.

    Attributes:
        name: Registry name.
        epochs: Passes over the training split.
        batch_size: Images per step (per process under DDP).
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adamw"``.
        lr: Peak learning rate, reached at the end of the warm-up.
        weight_decay: Decoupled (AdamW) or L2 (SGD) weight decay, not applied to norms and biases.
        warmup_epochs: Linear warm-up from ``lr * warmup_start`` to ``lr``, in epochs (may be fractional).
        warmup_start: Fraction of ``lr`` the warm-up starts from.
        min_lr_ratio: Cosine decay floor as a fraction of ``lr``.
        momentum: SGD momentum (AdamW: beta1).
        label_smoothing: Cross-entropy label smoothing.
        augment: Apply the dataset's light augmentation (random crop with padding, flips).
        description: One line for listings.
    """

    name: str
    epochs: int
    batch_size: int
    optimizer: Literal["sgd", "adamw"]
    lr: float
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0
    warmup_start: float = 0.1
    min_lr_ratio: float = 0.0
    momentum: float = 0.9
    label_smoothing: float = 0.0
    augment: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        checks = [
            ("epochs", isinstance(self.epochs, int) and 1 <= self.epochs <= 10_000, "an integer in [1, 10000]"),
            ("batch_size", isinstance(self.batch_size, int) and 1 <= self.batch_size <= 65_536, "an integer in [1, 65536]"),
            ("optimizer", self.optimizer in ("sgd", "adamw"), "'sgd' or 'adamw'"),
            ("lr", 0 < self.lr <= 10, "a number in (0, 10]"),
            ("weight_decay", 0 <= self.weight_decay < 1, "a number in [0, 1)"),
            ("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, f"a number in [0, epochs={self.epochs}]"),
            ("warmup_start", 0 <= self.warmup_start <= 1, "a number in [0, 1]"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "a number in [0, 1]"),
            ("momentum", 0 <= self.momentum < 1, "a number in [0, 1)"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "a number in [0, 1)"),
            ("augment", isinstance(self.augment, bool), "true or false"),
        ]
        for field, ok, accepted in checks:
            if not ok:
                raise SpecError(f"recipe.{field}: expected {accepted}, got {getattr(self, field)!r}")

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, warmup_start: float, min_lr_ratio: float) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then half-cosine decay to ``min_lr_ratio``
    (Loshchilov & Hutter, "SGDR", ICLR 2017; Goyal et al., "Accurate, Large Minibatch SGD", 2017)."""
    if step < warmup_steps:
        return warmup_start + (1 - warmup_start) * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


_RECIPES: dict[str, Recipe] = {}


def register_recipe(factory: Callable[[], Recipe]) -> Callable[[], Recipe]:
    """Decorator registering the recipe a zero-argument function returns, under the recipe's name."""
    recipe = factory()
    if recipe.name in _RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    _RECIPES[recipe.name] = recipe
    return factory


def list_recipes() -> list[str]:
    return sorted(_RECIPES)


def get_recipe(name: str) -> Recipe:
    if name not in _RECIPES:
        raise UnknownNameError(f"--recipe: unknown recipe {name!r}{did_you_mean(name, list_recipes())}; known: {list_recipes()}")
    return _RECIPES[name]


@register_recipe
def quick() -> Recipe:
    return Recipe(name="quick", epochs=8, batch_size=64, optimizer="adamw", lr=3e-3, weight_decay=0.05,
                  warmup_epochs=1, label_smoothing=0.0, augment=True,
                  description="a minute on 2 CPU cores for a ~5M-MAC CNN on digits: ranks candidates, no more")


@register_recipe
def standard() -> Recipe:
    return Recipe(name="standard", epochs=100, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=5e-4,
                  warmup_epochs=5, label_smoothing=0.1, augment=True,
                  description="SGD-Nesterov, cosine, 100 epochs: the CIFAR-style baseline")


@register_recipe
def fmnist() -> Recipe:
    # AdamW with a one-epoch warm-up and cosine decay (Loshchilov & Hutter, ICLR 2019) and light label
    # smoothing (Szegedy et al., CVPR 2016); the dataset's 2-px pad-crop and flips as augmentation.
    return Recipe(name="fmnist", epochs=10, batch_size=128, optimizer="adamw", lr=4e-3, weight_decay=0.05,
                  warmup_epochs=1, label_smoothing=0.1, augment=True,
                  description="Fashion-MNIST at 28 px in 10 epochs on CPU: a ~5M-MAC CNN reaches >= 91 % top-1")
