"""A recipe mapped onto timm's factories: the optimiser, the schedule, the transforms, Mixup/CutMix, the
loss and the EMA the trainer uses.

Every function reads a :class:`~archsearch.train.recipes.Recipe` and calls one of timm's maintained
components; nothing here reimplements one:

* :func:`create_optimizer`: ``timm.optim.create_optimizer_v2`` (weight decay off for norms, biases and
  the model's ``no_weight_decay()`` names; layer-wise lr decay over its ``group_matcher``);
* :func:`create_scheduler`: ``timm.scheduler.create_scheduler_v2`` laid out in optimiser updates;
* :func:`create_transforms`: ``timm.data.create_transform`` for training, and the eval transform from
  the model's pretrained config (``timm.data.resolve_data_config``);
* :func:`create_mixup`: ``timm.data.Mixup``; :func:`create_loss`: timm's ``SoftTargetCrossEntropy`` /
  ``BinaryCrossEntropy`` (plain ``torch.nn.CrossEntropyLoss`` with label smoothing when nothing is mixed:
  one fused kernel, the same value as timm's ``LabelSmoothingCrossEntropy``);
* :func:`create_ema`: ``timm.utils.ModelEmaV3``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from archsearch.errors import SpecError
from archsearch.train.recipes import Recipe

__all__ = ["STOCHASTIC_DEPTH_FAMILIES", "create_ema", "create_loss", "create_mixup", "create_optimizer", "create_scheduler",
           "create_transforms", "model_kwargs", "schedule_steps"]

#: Families whose builders take timm's ``drop_path_rate`` (stochastic depth); the others train without it.
STOCHASTIC_DEPTH_FAMILIES = ("vit", "tinyvit", "stvit")


def model_kwargs(recipe: Recipe, family: str) -> dict[str, Any]:
    """Builder arguments the recipe asks for: its ``drop_path_rate`` for a family that has stochastic depth."""
    if recipe.drop_path_rate and family in STOCHASTIC_DEPTH_FAMILIES:
        return {"drop_path_rate": recipe.drop_path_rate}
    return {}


def create_optimizer(model: nn.Module, recipe: Recipe, *, lr: float | None = None) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``model``'s parameters (``timm.optim.create_optimizer_v2``).

    Args:
        model: The model (its ``no_weight_decay()`` and, with ``layer_decay``, ``group_matcher()`` are used).
        recipe: The recipe.
        lr: The peak learning rate (default ``recipe.lr``; the trainer passes :meth:`Recipe.scaled_lr`).

    Raises:
        SpecError: The optimiser is not available in the installed timm, or layer decay on a model
            without ``group_matcher``.
    """
    from timm.optim import create_optimizer_v2, list_optimizers

    if recipe.optimizer not in list_optimizers():
        raise SpecError(f"recipe.optimizer: {recipe.optimizer!r} is not an optimiser of the installed timm "
                        f"(timm.optim.list_optimizers())")
    if recipe.layer_decay is not None and not hasattr(model, "group_matcher"):
        raise SpecError(f"recipe.layer_decay: {type(model).__name__} has no group_matcher(), so its layers are unknown; "
                        "set layer_decay to null")
    kwargs: dict[str, Any] = {}
    if recipe.betas is not None:
        kwargs["betas"] = tuple(recipe.betas)
    if recipe.opt_eps is not None:
        kwargs["eps"] = recipe.opt_eps
    return create_optimizer_v2(model, opt=recipe.optimizer, lr=recipe.lr if lr is None else lr,
                               weight_decay=recipe.weight_decay, momentum=recipe.momentum, filter_bias_and_bn=True,
                               layer_decay=recipe.layer_decay, **kwargs)


def schedule_steps(recipe: Recipe, steps_per_epoch: int) -> tuple[int, int]:
    """``(total, warmup)`` optimiser updates of a run: ``epochs`` and ``warmup_epochs`` in whole steps."""
    return steps_per_epoch * recipe.epochs, round(recipe.warmup_epochs * steps_per_epoch)


def create_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, *, steps_per_epoch: int) -> Any:
    """The recipe's schedule (``timm.scheduler.create_scheduler_v2``), to be stepped with
    ``scheduler.step_update(num_updates=step)`` after every optimiser update.

    The schedule is laid out in updates (timm's per-update mode with one "epoch" per update), so a
    fractional warm-up rounds to whole steps and a resumed run recomputes the same values: the learning
    rate after ``step`` updates is a function of ``step`` alone. The warm-up starts at
    ``lr * warmup_start``; the decay ends at ``lr * min_lr_ratio`` after ``epochs`` (``warmup_prefix``:
    the decay spans the steps after the warm-up; otherwise timm's default, the warm-up overlays it).
    """
    from timm.scheduler import create_scheduler_v2

    total, warmup = schedule_steps(recipe, steps_per_epoch)
    peak = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
    span = max(1, total - warmup) if recipe.warmup_prefix else max(1, total)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=recipe.sched, num_epochs=span, warmup_epochs=warmup, warmup_prefix=recipe.warmup_prefix,
        warmup_lr=peak * recipe.warmup_start, min_lr=peak * recipe.min_lr_ratio,
        decay_epochs=max(1, round(recipe.decay_epochs * steps_per_epoch)), decay_rate=recipe.decay_rate,
        step_on_epochs=False, updates_per_epoch=1)
    return scheduler


def create_mixup(recipe: Recipe, num_classes: int) -> Any:
    """``timm.data.Mixup`` for the recipe's Mixup/CutMix (with its label smoothing), or None when off."""
    if not recipe.mixes:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix, prob=recipe.mixup_prob,
                 switch_prob=recipe.mixup_switch_prob, mode=recipe.mixup_mode, label_smoothing=recipe.label_smoothing,
                 num_classes=num_classes)


def create_loss(recipe: Recipe, *, soft_targets: bool = False) -> nn.Module:
    """The training loss: soft targets (Mixup/CutMix or a teacher) -> timm's ``SoftTargetCrossEntropy``
    or ``BinaryCrossEntropy``; class indices -> cross-entropy with the recipe's label smoothing, or BCE."""
    from timm.loss import BinaryCrossEntropy, SoftTargetCrossEntropy

    if recipe.loss == "bce":
        return BinaryCrossEntropy(smoothing=recipe.label_smoothing, target_threshold=recipe.bce_target_thresh)
    if soft_targets or recipe.mixes:
        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)


def create_ema(model: nn.Module, recipe: Recipe) -> Any:
    """``timm.utils.ModelEmaV3`` of ``model`` (a copy on its device, float32), or None without EMA."""
    if not recipe.ema_decay:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=recipe.ema_decay, use_warmup=recipe.ema_warmup)


def create_transforms(recipe: Recipe, model: nn.Module, *, mean: Sequence[float], std: Sequence[float]) -> tuple[Any, Any]:
    """The per-image training and evaluation transforms (``timm.data.create_transform``).

    Training: random-resized crop to the model's input side, flips, the recipe's auto-augmentation,
    colour jitter and random erasing (``no_aug`` when the recipe does not augment). Evaluation: resize and
    centre crop by the model's pretrained config (``crop_pct``, interpolation, crop mode), the recipe's
    ``crop_pct`` taking precedence. Both normalise with ``mean`` and ``std`` (the dataset's statistics).

    Raises:
        SpecError: A policy string timm does not accept.
    """
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config({}, model=model)
    size = tuple(cfg["input_size"])
    try:
        train = create_transform(
            size, is_training=True, no_aug=not recipe.augment, scale=recipe.scale, ratio=recipe.ratio, hflip=recipe.hflip,
            vflip=recipe.vflip, color_jitter=recipe.color_jitter, auto_augment=recipe.auto_augment,
            interpolation=recipe.interpolation, mean=tuple(mean), std=tuple(std), re_prob=recipe.re_prob,
            re_mode=recipe.re_mode, re_count=recipe.re_count)
    except (AssertionError, KeyError, ValueError) as exc:
        raise SpecError(f"recipe.auto_augment: timm refused {recipe.auto_augment!r} ({exc or type(exc).__name__})") from None
    _pillow_safe_posterize(train)
    evaluate = create_transform(size, is_training=False, interpolation=cfg.get("interpolation", "bicubic"), mean=tuple(mean),
                                std=tuple(std), crop_pct=recipe.crop_pct or cfg.get("crop_pct"), crop_mode=cfg.get("crop_mode"))
    return train, evaluate


def _posterize(img: Any, bits_to_keep: int, **_: Any) -> Any:
    """timm's posterize op, answering 0 bits as Pillow before 13 did (a black image) instead of raising."""
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def _pillow_safe_posterize(transform: Any) -> None:
    """Swaps timm's posterize for :func:`_posterize` in a transform's auto-augment ops.

    timm's increasing RandAugment (``inc1``) posterizes to ``4 - int(4 * m / 10)`` bits, 0 at magnitude 10,
    which the magnitude noise (``mstd``) reaches for a few per cent of the ops; Pillow 13 refuses 0 bits
    with a ValueError that would stop a DeiT or A3 run in its first epoch.
    """
    from timm.data import auto_augment

    ops: list[Any] = []
    for t in getattr(transform, "transforms", ()):
        ops += list(getattr(t, "ops", ()))
        for sub in getattr(t, "policy", ()):
            ops += list(sub)
    for op in ops:
        if getattr(op, "aug_fn", None) is auto_augment.posterize:
            op.aug_fn = _posterize
