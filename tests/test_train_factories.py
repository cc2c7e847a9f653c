"""Recipes mapped onto timm's factories: optimiser param groups, schedule values, Mixup/CutMix targets,
losses, EMA updates and the per-image transforms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _train_helpers import tiny_spec
from archsearch.errors import SpecError
from archsearch.models import build_model
from archsearch.space.vit import ViTBlockSpec, ViTSpec
from archsearch.train import get_recipe
from archsearch.train.factories import (create_ema, create_loss, create_mixup, create_optimizer, create_scheduler,
                                        create_transforms, schedule_steps)

QUICK = get_recipe("quick")


def _vit(depth: int = 2) -> nn.Module:
    torch.manual_seed(0)
    spec = ViTSpec(24, tuple(ViTBlockSpec(4, 6, 4, 40) for _ in range(depth)), patch_size=4, resolution=16,
                   in_channels=3, num_classes=10, name="tiny-vit")
    return build_model(spec, num_classes=10)


def _groups_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict]:
    by_id = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def test_weight_decay_spares_norms_biases_and_the_models_no_weight_decay_names() -> None:
    model = _vit()
    opt = create_optimizer(model, QUICK.replace(weight_decay=0.05))
    assert isinstance(opt, torch.optim.AdamW)
    groups = _groups_by_name(model, opt)
    for name, param in model.named_parameters():
        spared = param.ndim <= 1 or name.endswith(".bias") or name in ("pos_embed", "cls_token")
        assert groups[name]["weight_decay"] == (0.0 if spared else 0.05), name
    assert groups["blocks.0.attn.qkv.weight"]["weight_decay"] == 0.05 and groups["pos_embed"]["weight_decay"] == 0.0
    assert all(g["lr"] == QUICK.lr for g in opt.param_groups)


@pytest.mark.parametrize("name,cls,checks", [
    ("sgd", "SGD", {"nesterov": True, "momentum": 0.9}),
    ("momentum", "SGD", {"nesterov": False, "momentum": 0.9}),
    ("lamb", "Lamb", {}),
    ("lion", "Lion", {}),
    ("adamw", "AdamW", {"betas": (0.8, 0.99), "eps": 1e-6}),
])
def test_optimizer_names_map_onto_timm(name: str, cls: str, checks: dict) -> None:
    recipe = QUICK.replace(optimizer=name, betas=(0.8, 0.99), opt_eps=1e-6) if name == "adamw" else QUICK.replace(optimizer=name)
    opt = create_optimizer(build_model(tiny_spec(), num_classes=10), recipe, lr=0.02)
    assert type(opt).__name__ == cls
    for key, value in checks.items():
        assert tuple(opt.defaults[key]) == value if isinstance(value, tuple) else opt.defaults[key] == value
    assert all(g["lr"] == 0.02 for g in opt.param_groups)


def test_layer_decay_scales_the_lr_by_depth_and_the_schedule_applies_it() -> None:
    model = _vit(depth=3)
    recipe = QUICK.replace(layer_decay=0.5, weight_decay=0.05, warmup_epochs=0)
    opt = create_optimizer(model, recipe)
    groups = _groups_by_name(model, opt)
    scale = {name: g["lr_scale"] for name, g in groups.items()}
    assert scale["head.weight"] == 1.0
    assert scale["patch_embed.proj.weight"] == pytest.approx(0.5 ** 4)  # stem, 3 blocks, then the head
    assert [scale[f"blocks.{i}.attn.qkv.weight"] for i in range(3)] == pytest.approx([0.5 ** 3, 0.5 ** 2, 0.5])
    assert groups["blocks.0.norm1.weight"]["weight_decay"] == 0.0 and groups["blocks.0.attn.qkv.weight"]["weight_decay"] == 0.05
    sched = create_scheduler(opt, recipe, steps_per_epoch=10)
    sched.step_update(num_updates=0)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(recipe.lr * g["lr_scale"])
    with pytest.raises(SpecError, match="recipe.layer_decay: .*group_matcher"):
        create_optimizer(nn.Sequential(nn.Linear(2, 2)), recipe)


def _lrs(recipe, steps_per_epoch: int, steps: list[int]) -> list[float]:  # type: ignore[no-untyped-def]
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    sched = create_scheduler(opt, recipe, steps_per_epoch=steps_per_epoch)
    out = []
    for s in steps:
        sched.step_update(num_updates=s)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_cosine_with_a_warmup_prefix_matches_the_closed_form() -> None:
    # quick: 8 epochs of 10 steps, 1 warm-up epoch from 0.1 lr, then half a cosine to 0 over the 70 steps left
    lr = QUICK.lr
    assert schedule_steps(QUICK, 10) == (80, 10)
    got = _lrs(QUICK, 10, [0, 5, 10, 45, 80, 100])
    want = [0.1 * lr, 0.55 * lr, lr, lr * 0.5 * (1 + math.cos(math.pi * 35 / 70)), 0.0, 0.0]
    assert got == pytest.approx(want, abs=1e-12)
    decay = _lrs(QUICK, 10, list(range(10, 81)))
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_timm_default_warmup_overlays_the_cosine_and_keeps_the_floor() -> None:
    recipe = get_recipe("deit").replace(epochs=10, warmup_epochs=2)
    lr, floor, start = recipe.lr, recipe.lr * recipe.min_lr_ratio, recipe.lr * recipe.warmup_start
    got = _lrs(recipe, 5, [0, 5, 10, 30, 50])
    cos = [floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * t / 50)) for t in (10, 30)]
    assert got == pytest.approx([start, start + 5 * (lr - start) / 10, *cos, floor], rel=1e-9)


def test_step_schedule_and_fractional_warmups_round_to_steps() -> None:
    recipe = QUICK.replace(sched="step", decay_epochs=2, decay_rate=0.5, warmup_epochs=0.25)
    assert schedule_steps(recipe, 10) == (80, 2)  # round(2.5) = 2
    # the warm-up is a prefix (quick's warmup_prefix): the halvings come every 20 steps after it
    got = _lrs(recipe, 10, [2, 21, 22, 41, 42])
    assert got == pytest.approx([QUICK.lr, QUICK.lr, QUICK.lr / 2, QUICK.lr / 2, QUICK.lr / 4])
    overlay = _lrs(recipe.replace(warmup_prefix=False), 10, [19, 20, 40])  # timm's default: counted from step 0
    assert overlay == pytest.approx([QUICK.lr, QUICK.lr / 2, QUICK.lr / 4])


def test_for_epochs_keeps_the_warmup_share() -> None:
    short = QUICK.for_epochs(4)
    assert short.epochs == 4 and short.warmup_epochs == 0.5 and short.to_dict()["warmup_epochs"] == 0.5
    assert QUICK.replace(sched="step", decay_epochs=4).for_epochs(4).decay_epochs == 2
    with pytest.raises(SpecError, match="--epochs: expected an integer >= 1"):
        QUICK.for_epochs(0)


def test_learning_rates_scale_with_the_global_batch() -> None:
    deit, a3 = get_recipe("deit"), get_recipe("resnet-a3")
    assert deit.scaled_lr(1024) == pytest.approx(1e-3)  # DeiT: 5e-4 x 1024 / 512
    assert a3.scaled_lr(512) == pytest.approx(8e-3 * 0.5)  # LAMB: square root of 512 / 2048
    assert QUICK.scaled_lr(4096) == QUICK.lr  # no base size: as given
    assert QUICK.replace(lr_base_size=128, lr_base_scale="auto").scaled_lr(512) == pytest.approx(QUICK.lr * 2)  # adamw: sqrt


def _constant_images(n: int, side: int = 8) -> torch.Tensor:
    """Image i is filled with the value i, so a mixed pixel says which images it came from."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, side, side).clone()


def test_mixup_targets_are_the_lambda_blend_of_smoothed_labels() -> None:
    import numpy as np

    np.random.seed(0)
    n, classes, smoothing = 8, 10, 0.1
    mix = create_mixup(QUICK.replace(mixup=1.0, label_smoothing=smoothing), classes)
    x, y = _constant_images(n), torch.arange(n) % classes
    mixed, target = mix(x, y)
    # pixel of image 0 = lam * 0 + (1 - lam) * (n - 1)
    lam = 1 - float(mixed[0, 0, 0, 0]) / (n - 1)
    assert mixed[:, 0, 0, 0] == pytest.approx(torch.tensor([lam * i + (1 - lam) * (n - 1 - i) for i in range(n)]))
    off, on = smoothing / classes, 1 - smoothing + smoothing / classes
    smooth = torch.full((n, classes), off).scatter_(1, y[:, None], on)
    assert target == pytest.approx(lam * smooth + (1 - lam) * smooth.flip(0))
    assert target.sum(1) == pytest.approx(torch.ones(n))


def test_cutmix_targets_follow_the_pasted_area() -> None:
    import numpy as np

    np.random.seed(3)
    n, classes = 6, 10
    mix = create_mixup(QUICK.replace(cutmix=1.0, label_smoothing=0.0), classes)
    assert create_mixup(QUICK, classes) is None  # nothing to mix
    x, y = _constant_images(n, side=16), torch.arange(n)
    mixed, target = mix(x, y)
    for i in range(n):
        pasted = float((mixed[i, 0] == n - 1 - i).float().mean())  # the area cut from the flipped batch
        assert set(mixed[i, 0].unique().tolist()) <= {float(i), float(n - 1 - i)}
        assert target[i, y[i]] == pytest.approx(1 - pasted) and target[i, y.flip(0)[i]] == pytest.approx(pasted)


def test_losses_follow_the_targets() -> None:
    from timm.loss import BinaryCrossEntropy, SoftTargetCrossEntropy

    assert isinstance(create_loss(QUICK), nn.CrossEntropyLoss)
    assert create_loss(QUICK.replace(label_smoothing=0.1)).label_smoothing == 0.1
    assert isinstance(create_loss(QUICK.replace(mixup=0.8)), SoftTargetCrossEntropy)
    assert isinstance(create_loss(QUICK, soft_targets=True), SoftTargetCrossEntropy)
    bce = create_loss(get_recipe("resnet-a3"))
    assert isinstance(bce, BinaryCrossEntropy) and bce.target_threshold == 0.2
    logits, labels = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    smooth = create_loss(QUICK.replace(label_smoothing=0.2))(logits, labels)
    from timm.loss import LabelSmoothingCrossEntropy

    assert float(smooth) == pytest.approx(float(LabelSmoothingCrossEntropy(0.2)(logits, labels)), rel=1e-6)


def test_ema_updates_by_its_decay_from_the_first_step() -> None:
    model = nn.Linear(3, 2)
    assert create_ema(model, QUICK) is None
    ema = create_ema(model, QUICK.replace(ema_decay=0.9))
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=1)  # timm: the first update copies
    assert torch.equal(ema.module.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model, step=2)
    assert torch.allclose(ema.module.weight.detach(), torch.full((2, 3), 0.9 * 1.0 + 0.1 * 3.0))
    warm = create_ema(model, QUICK.replace(ema_decay=0.999, ema_warmup=True))
    assert 0 < warm.get_decay(10) < warm.get_decay(1000) <= 0.999


def test_transforms_come_from_timm_and_the_models_pretrained_config() -> None:
    from PIL import Image

    model = build_model(tiny_spec(resolution=32), num_classes=10)
    deit = get_recipe("deit")
    train_tf, eval_tf = create_transforms(deit, model, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    text = repr(train_tf)
    for part in ("RandomResizedCropAndInterpolation", "RandomHorizontalFlip", "RandAugment", "RandomErasing"):
        assert part in text, part
    img = Image.new("RGB", (50, 40), (128, 128, 128))
    assert train_tf(img).shape == (3, 32, 32)
    out = eval_tf(img)
    assert out.shape == (3, 32, 32) and torch.allclose(out, torch.full_like(out, (128 / 255 - 0.5) / 0.25), atol=1e-6)
    assert "Resize(size=36" in repr(eval_tf)  # 32 / crop_pct 0.875 (the pretrained config's)
    _, a3_eval = create_transforms(get_recipe("resnet-a3"), model, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert "Resize(size=33" in repr(a3_eval)  # 32 / 0.95, the recipe's crop_pct
    with pytest.raises(SpecError, match="recipe.auto_augment: timm refused 'rand-q9'"):
        create_transforms(deit.replace(auto_augment="rand-q9"), model, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_posterize_to_zero_bits_does_not_stop_training() -> None:
    # timm's increasing RandAugment posterizes to 0 bits at magnitude 10, which Pillow 13 refuses
    from PIL import Image
    from timm.data import auto_augment

    model = build_model(tiny_spec(resolution=32), num_classes=10)
    train_tf, _ = create_transforms(get_recipe("deit").replace(auto_augment="rand-m10-n1-p1.0-inc1"), model,
                                    mean=(0.5,) * 3, std=(0.25,) * 3)
    ops = [op for t in train_tf.transforms for op in getattr(t, "ops", ()) if op.name == "PosterizeIncreasing"]
    assert len(ops) == 1 and ops[0].aug_fn is not auto_augment.posterize
    img = Image.new("RGB", (40, 40), (200, 100, 50))
    import PIL

    if int(PIL.__version__.split(".")[0]) >= 13:
        with pytest.raises(ValueError):  # the op as timm builds it
            auto_augment.AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)(img)
    assert ops[0](img).getextrema() == ((0, 0),) * 3  # 0 bits: black, as Pillow < 13 answered
    assert train_tf(img).shape == (3, 32, 32)
