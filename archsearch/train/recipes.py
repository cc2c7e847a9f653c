"""Training recipes: named, frozen, validated hyper-parameter sets, registered with :func:`register_recipe`.

A recipe is declarative: every field names a setting of one of timm's factories, and
:mod:`archsearch.train.factories` maps them onto ``timm.optim.create_optimizer_v2``,
``timm.scheduler.create_scheduler_v2``, ``timm.data.create_transform``, ``timm.data.Mixup``, timm's
losses and ``timm.utils.ModelEmaV3``. This module only holds the values and their rules, and imports
neither torch nor timm, so the CLI checks ``--recipe`` in milliseconds.

Two input pipelines:

* ``pipeline="batch"``: the dataset's light augmentation (a random crop of the padded image and a
  horizontal flip) drawn for the whole batch on the training device
  (:class:`~archsearch.train.datasets.BatchTransform`). Kept by hand because timm has no batched
  equivalent: for in-memory 8-32 px datasets on a CPU it is many times faster than decoding every image
  through PIL transforms, and its crops replay from per-image seeds, which the teacher cache needs.
* ``pipeline="timm"``: ``timm.data.create_transform`` per image in loader workers (random-resized crop,
  flips, RandAugment / AutoAugment / AugMix, colour jitter, random erasing); evaluation resizes and
  centre-crops with the model's pretrained config (``crop_pct``, interpolation). What ImageNet recipes use.

Mixup/CutMix, label smoothing, BCE, EMA, layer decay and gradient clipping apply to both.

The registered recipes: ``quick``, ``standard`` and ``fmnist`` (CPU-sized, batch pipeline), ``deit``
(DeiT's ImageNet recipe for the ViT families), ``resnet-a3`` (ResNet strikes back's A3 procedure for
CNNs) and ``tinyvit-distill`` (TinyViT's distillation against a teacher cache).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

from archsearch.errors import SpecError, UnknownNameError, did_you_mean

__all__ = ["OPTIMIZERS", "PIPELINES", "SCHEDULES", "Recipe", "get_recipe", "list_recipes", "register_recipe"]

#: Optimiser names accepted (timm's ``create_optimizer_v2`` names; ``sgd`` is Nesterov SGD, ``momentum``
#: classical momentum SGD). timm has more: add a name here once a recipe needs it.
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "nadamw", "radam", "lamb", "lambc", "lars", "lion", "adan", "adopt",
              "laprop", "madgrad", "rmsproptf", "adafactor", "adafactorbv")
#: Learning-rate schedules (timm's ``create_scheduler_v2`` names), stepped after every optimiser update.
SCHEDULES = ("cosine", "step", "poly", "constant")
PIPELINES = ("batch", "timm")
_AUTO_AUGMENT = ("rand", "augmix", "original", "originalr", "v0", "v0r", "3a")
# Fields of the first recipe format (before timm): a recipe's dict leaves out the newer fields at their
# defaults, so the candidate keys of runs validated with the built-in CPU recipes stay the same.
_V1_FIELDS = ("name", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs", "warmup_start",
              "min_lr_ratio", "momentum", "label_smoothing", "augment", "description")
# Settings only the timm pipeline applies (the batch pipeline does the dataset's crop and flip).
_TIMM_PIPELINE_FIELDS = ("scale", "ratio", "hflip", "vflip", "color_jitter", "auto_augment", "interpolation", "re_prob",
                         "re_mode", "re_count", "crop_pct")


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """How a candidate is trained: one value per setting of timm's training components.

    Attributes:
        name: Registry name.
        epochs: Passes over the training split.
        batch_size: Images per step and process (the global batch is ``batch_size`` x processes).
        optimizer: A name of :data:`OPTIMIZERS` (``timm.optim.create_optimizer_v2``'s ``opt``).
        lr: Peak learning rate (at ``lr_base_size`` images per global batch when that is set).
        lr_base_size: Global batch the ``lr`` is given for; the trainer scales ``lr`` to its own global
            batch (DeiT's ``lr = 5e-4 * batch / 512``). 0: ``lr`` is used as it is.
        lr_base_scale: How ``lr`` follows the batch: ``linear``, ``sqrt`` (timm's rule for adaptive
            optimisers such as LAMB) or ``auto`` (``sqrt`` for adam/lamb-style optimisers, as timm's train.py).
        weight_decay: Weight decay; never applied to norms, biases and the model's ``no_weight_decay()``
            names (timm's ``filter_bias_and_bn``).
        momentum: Momentum of the SGD-style optimisers.
        betas: Adam-style betas (None: the optimiser's default).
        opt_eps: Adam-style epsilon (None: the optimiser's default).
        layer_decay: Layer-wise learning-rate decay over the model's ``group_matcher`` layers (None: off).
        clip_grad: Gradient clipping threshold (None: off), in ``clip_mode`` (``norm``, ``value``, ``agc``).
        sched: A name of :data:`SCHEDULES` (``timm.scheduler.create_scheduler_v2``), stepped per update.
        warmup_epochs: Linear warm-up from ``lr * warmup_start`` to ``lr``, in epochs (may be fractional;
            rounded to whole steps).
        warmup_start: Fraction of ``lr`` the warm-up starts from (timm's ``warmup_lr`` / ``lr``).
        min_lr_ratio: Floor of the decay as a fraction of ``lr`` (timm's ``min_lr`` / ``lr``).
        warmup_prefix: True: the decay starts after the warm-up (the schedule spans ``epochs`` in all);
            False: timm's default, the warm-up overlays the start of a decay that spans ``epochs``.
        decay_epochs: Interval of the ``step`` schedule, in epochs.
        decay_rate: Factor of the ``step`` schedule; the power of ``poly``.
        label_smoothing: Label smoothing (with Mixup/CutMix applied by ``timm.data.Mixup``).
        loss: ``ce`` (cross-entropy; timm's ``SoftTargetCrossEntropy`` with Mixup/CutMix) or ``bce``
            (timm's ``BinaryCrossEntropy``, ResNet strikes back).
        bce_target_thresh: Binarise BCE targets at this value (None: soft targets).
        augment: Augment training images at all (False: the batch pipeline neither crops nor flips,
            the timm pipeline resizes and centre-crops).
        pipeline: ``batch`` or ``timm`` (see the module docstring).
        scale, ratio: Random-resized-crop area and aspect ranges (None: timm's (0.08, 1) and (3/4, 4/3)).
        hflip, vflip: Flip probabilities.
        color_jitter: Colour-jitter strength (timm switches it off under RandAugment/AutoAugment).
        auto_augment: timm's policy string: ``rand-m9-mstd0.5-inc1`` (RandAugment), ``rand-n1-m10-mstd101``
            (one op at a uniformly drawn magnitude: TrivialAugment), ``augmix-...``, ``original``, ``v0``, ``3a``.
        interpolation: Resampling of the training crops (``bilinear``, ``bicubic``, ``random``).
        re_prob, re_mode, re_count: Random erasing probability, fill (``pixel``, ``const``, ``rand``), count.
        crop_pct: Evaluation centre-crop fraction (None: the model's pretrained config).
        mixup, cutmix: Mixup and CutMix alphas (0: off).
        mixup_prob, mixup_switch_prob, mixup_mode: Probability of mixing a batch, of CutMix when both
            are on, and timm's ``batch``/``pair``/``elem`` mode.
        aug_repeats: Repeated augmentation (timm's ``RepeatAugSampler``): each image this many times per
            epoch on different processes (0: off).
        ema_decay: Decay of timm's ``ModelEmaV3`` kept beside the model and evaluated too (0: no EMA).
        ema_warmup: Ramp the EMA decay up over the first steps (timm's ``use_warmup``).
        drop_path_rate: Stochastic depth of the built model (families that have it).
        distill: Train against a teacher cache's soft labels (``validate --distill``); the cache replays
            the batch pipeline's crops and flips, so Mixup/CutMix and the timm pipeline are refused.
        description: One line for listings.
    """

    name: str
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0
    warmup_start: float = 0.1
    min_lr_ratio: float = 0.0
    momentum: float = 0.9
    label_smoothing: float = 0.0
    augment: bool = True
    description: str = ""
    lr_base_size: int = 0
    lr_base_scale: Literal["linear", "sqrt", "auto"] = "linear"
    betas: tuple[float, float] | None = None
    opt_eps: float | None = None
    layer_decay: float | None = None
    clip_grad: float | None = None
    clip_mode: Literal["norm", "value", "agc"] = "norm"
    sched: str = "cosine"
    warmup_prefix: bool = True
    decay_epochs: float = 30.0
    decay_rate: float = 0.1
    loss: Literal["ce", "bce"] = "ce"
    bce_target_thresh: float | None = None
    pipeline: Literal["batch", "timm"] = "batch"
    scale: tuple[float, float] | None = None
    ratio: tuple[float, float] | None = None
    hflip: float = 0.5
    vflip: float = 0.0
    color_jitter: float = 0.4
    auto_augment: str | None = None
    interpolation: Literal["bilinear", "bicubic", "random"] = "random"
    re_prob: float = 0.0
    re_mode: Literal["pixel", "const", "rand"] = "pixel"
    re_count: int = 1
    crop_pct: float | None = None
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    aug_repeats: int = 0
    ema_decay: float = 0.0
    ema_warmup: bool = False
    drop_path_rate: float = 0.0
    distill: bool = False

    def __post_init__(self) -> None:
        for field in ("betas", "scale", "ratio"):  # JSON gives lists
            object.__setattr__(self, field, _tuple(getattr(self, field)))

        def num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        def pair(v: Any, lo: float, hi: float) -> bool:
            return v is None or (isinstance(v, tuple) and len(v) == 2 and all(num(x) and lo <= x <= hi for x in v)
                                 and v[0] <= v[1])

        checks = [
            ("name", isinstance(self.name, str) and bool(self.name), "a non-empty string"),
            ("epochs", isinstance(self.epochs, int) and 1 <= self.epochs <= 10_000, "an integer in [1, 10000]"),
            ("batch_size", isinstance(self.batch_size, int) and 1 <= self.batch_size <= 65_536, "an integer in [1, 65536]"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {list(OPTIMIZERS)}"),
            ("lr", num(self.lr) and 0 < self.lr <= 10, "a number in (0, 10]"),
            ("weight_decay", num(self.weight_decay) and 0 <= self.weight_decay < 1, "a number in [0, 1)"),
            ("warmup_epochs", num(self.warmup_epochs) and 0 <= self.warmup_epochs <= self.epochs,
             f"a number in [0, epochs={self.epochs}]"),
            ("warmup_start", num(self.warmup_start) and 0 <= self.warmup_start <= 1, "a number in [0, 1]"),
            ("min_lr_ratio", num(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "a number in [0, 1]"),
            ("momentum", num(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1)"),
            ("label_smoothing", num(self.label_smoothing) and 0 <= self.label_smoothing < 1, "a number in [0, 1)"),
            ("augment", isinstance(self.augment, bool), "true or false"),
            ("lr_base_size", isinstance(self.lr_base_size, int) and 0 <= self.lr_base_size <= 1_048_576,
             "an integer in [0, 1048576] (0: no scaling)"),
            ("lr_base_scale", self.lr_base_scale in ("linear", "sqrt", "auto"), "'linear', 'sqrt' or 'auto'"),
            ("betas", pair(self.betas, 0, 0.99999999), "null or two numbers in [0, 1), ascending (e.g. [0.9, 0.999])"),
            ("opt_eps", self.opt_eps is None or (num(self.opt_eps) and 0 < self.opt_eps < 1), "null or a number in (0, 1)"),
            ("layer_decay", self.layer_decay is None or (num(self.layer_decay) and 0 < self.layer_decay <= 1),
             "null or a number in (0, 1]"),
            ("clip_grad", self.clip_grad is None or (num(self.clip_grad) and self.clip_grad > 0), "null or a number > 0"),
            ("clip_mode", self.clip_mode in ("norm", "value", "agc"), "'norm', 'value' or 'agc'"),
            ("sched", self.sched in SCHEDULES, f"one of {list(SCHEDULES)}"),
            ("warmup_prefix", isinstance(self.warmup_prefix, bool), "true or false"),
            ("decay_epochs", num(self.decay_epochs) and self.decay_epochs > 0, "a number > 0"),
            ("decay_rate", num(self.decay_rate) and 0 < self.decay_rate <= 10, "a number in (0, 10]"),
            ("loss", self.loss in ("ce", "bce"), "'ce' or 'bce'"),
            ("bce_target_thresh",
             self.bce_target_thresh is None or (num(self.bce_target_thresh) and 0 < self.bce_target_thresh < 1),
             "null or a number in (0, 1)"),
            ("pipeline", self.pipeline in PIPELINES, f"one of {list(PIPELINES)}"),
            ("scale", pair(self.scale, 0.0001, 1), "null or two numbers in (0, 1], ascending (e.g. [0.08, 1.0])"),
            ("ratio", pair(self.ratio, 0.01, 100), "null or two aspect ratios in [0.01, 100], ascending (e.g. [0.75, 1.333])"),
            ("hflip", num(self.hflip) and 0 <= self.hflip <= 1, "a probability in [0, 1]"),
            ("vflip", num(self.vflip) and 0 <= self.vflip <= 1, "a probability in [0, 1]"),
            ("color_jitter", num(self.color_jitter) and 0 <= self.color_jitter <= 1, "a number in [0, 1]"),
            ("auto_augment", self.auto_augment is None or (isinstance(self.auto_augment, str)
                                                           and self.auto_augment.split("-")[0] in _AUTO_AUGMENT),
             f"null or a timm policy string starting with one of {list(_AUTO_AUGMENT)} (e.g. 'rand-m9-mstd0.5-inc1')"),
            ("interpolation", self.interpolation in ("bilinear", "bicubic", "random"), "'bilinear', 'bicubic' or 'random'"),
            ("re_prob", num(self.re_prob) and 0 <= self.re_prob <= 1, "a probability in [0, 1]"),
            ("re_mode", self.re_mode in ("pixel", "const", "rand"), "'pixel', 'const' or 'rand'"),
            ("re_count", isinstance(self.re_count, int) and 1 <= self.re_count <= 16, "an integer in [1, 16]"),
            ("crop_pct", self.crop_pct is None or (num(self.crop_pct) and 0.1 <= self.crop_pct <= 1),
             "null or a number in [0.1, 1]"),
            ("mixup", num(self.mixup) and 0 <= self.mixup <= 10, "an alpha in [0, 10] (0: off)"),
            ("cutmix", num(self.cutmix) and 0 <= self.cutmix <= 10, "an alpha in [0, 10] (0: off)"),
            ("mixup_prob", num(self.mixup_prob) and 0 <= self.mixup_prob <= 1, "a probability in [0, 1]"),
            ("mixup_switch_prob", num(self.mixup_switch_prob) and 0 <= self.mixup_switch_prob <= 1, "a probability in [0, 1]"),
            ("mixup_mode", self.mixup_mode in ("batch", "pair", "elem"), "'batch', 'pair' or 'elem'"),
            ("aug_repeats", isinstance(self.aug_repeats, int) and (self.aug_repeats == 0 or 2 <= self.aug_repeats <= 16),
             "0 (off) or an integer in [2, 16]"),
            ("ema_decay", num(self.ema_decay) and 0 <= self.ema_decay < 1, "a number in [0, 1) (0: no EMA)"),
            ("ema_warmup", isinstance(self.ema_warmup, bool), "true or false"),
            ("drop_path_rate", num(self.drop_path_rate) and 0 <= self.drop_path_rate < 1, "a number in [0, 1)"),
            ("distill", isinstance(self.distill, bool), "true or false"),
        ]
        for field, ok, accepted in checks:
            if not ok:
                raise SpecError(f"recipe.{field}: expected {accepted}, got {getattr(self, field)!r}")
        if self.optimizer == "sgd" and self.momentum == 0:
            raise SpecError("recipe.momentum: expected a number in (0, 1) for optimizer 'sgd' (Nesterov needs momentum), "
                            "got 0; use optimizer 'momentum' for plain SGD")
        if self.pipeline == "batch":
            defaults = {f.name: f.default for f in dataclasses.fields(Recipe)}
            for field in _TIMM_PIPELINE_FIELDS:
                if getattr(self, field) != defaults[field]:
                    raise SpecError(f"recipe.{field}: set to {getattr(self, field)!r}, but only the timm pipeline applies it "
                                    f"(the batch pipeline does the dataset's crop and flip); set pipeline 'timm' or leave "
                                    f"{field} at {defaults[field]!r}")
        if self.distill:
            for field, value in (("pipeline", "batch"), ("mixup", 0.0), ("cutmix", 0.0), ("aug_repeats", 0), ("loss", "ce")):
                if getattr(self, field) != value:
                    raise SpecError(f"recipe.{field}: expected {value!r} with distill (a teacher cache replays the batch "
                                    f"pipeline's crops and flips and holds soft labels of unmixed images), "
                                    f"got {getattr(self, field)!r}")

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (Mixup or CutMix on)."""
        return self.mixup_prob > 0 and (self.mixup > 0 or self.cutmix > 0)

    def scaled_lr(self, global_batch: int) -> float:
        """The peak learning rate for ``global_batch`` images per step (``lr`` when ``lr_base_size`` is 0)."""
        if not self.lr_base_size:
            return self.lr
        rule = self.lr_base_scale
        if rule == "auto":  # timm's train.py: square-root scaling for adaptive optimisers
            rule = "sqrt" if any(k in self.optimizer for k in ("ada", "lamb", "adam")) else "linear"
        ratio = global_batch / self.lr_base_size
        return self.lr * (ratio ** 0.5 if rule == "sqrt" else ratio)

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values; fields added after the first format are left out at their
        defaults (so an unchanged CPU recipe keeps its candidate keys). ``Recipe(**d)`` rebuilds it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _V1_FIELDS or value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def for_epochs(self, epochs: int) -> "Recipe":
        """The recipe over ``epochs`` epochs, its warm-up (and a step schedule's interval) keeping their share of the run."""
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise SpecError(f"--epochs: expected an integer >= 1, got {epochs!r}")
        share = epochs / self.epochs
        changes: dict[str, Any] = {"epochs": epochs, "warmup_epochs": self.warmup_epochs * share}
        if self.sched == "step":
            changes["decay_epochs"] = self.decay_epochs * share
        return self.replace(**changes)


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


@register_recipe
def deit() -> Recipe:
    """DeiT's ImageNet recipe for ViTs (Touvron et al., "Training data-efficient image transformers &
    distillation through attention", ICML 2021, Table 9, and its ``main.py`` defaults).

    300 epochs; AdamW, lr 5e-4 per 512 images scaled linearly with the global batch, weight decay 0.05,
    eps 1e-8; cosine decay over the 300 epochs with 5 warm-up epochs from 1e-6 to a floor of 1e-5 (here
    as fractions of the scaled lr); label smoothing 0.1; RandAugment ``rand-m9-mstd0.5-inc1``, bicubic
    random-resized crops, random erasing 0.25 (pixel); Mixup 0.8 and CutMix 1.0 (switch 0.5); repeated
    augmentation x3; stochastic depth 0.1; EMA 0.99996. DeiT used 1024 images per step (here 128 per
    process: eight processes); it stepped the schedule per epoch, this one per update.
    """
    return Recipe(name="deit", epochs=300, batch_size=128, optimizer="adamw", lr=5e-4, lr_base_size=512,
                  lr_base_scale="linear", weight_decay=0.05, opt_eps=1e-8, sched="cosine", warmup_epochs=5,
                  warmup_start=1e-6 / 5e-4, min_lr_ratio=1e-5 / 5e-4, warmup_prefix=False, label_smoothing=0.1,
                  pipeline="timm", auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic", color_jitter=0.3,
                  re_prob=0.25, re_mode="pixel", mixup=0.8, cutmix=1.0, aug_repeats=3, ema_decay=0.99996,
                  drop_path_rate=0.1,
                  description="DeiT's ImageNet recipe (ICML 2021) for the ViT families: AdamW, RandAugment, Mixup/CutMix, "
                              "300 epochs")


@register_recipe
def resnet_a3() -> Recipe:
    """ResNet strikes back's A3 procedure for CNNs (Wightman, Touvron & Jégou, "ResNet strikes back: An
    improved training procedure in timm", 2021, Table 1).

    100 epochs; LAMB, lr 8e-3 at 2048 images per step (scaled here by the square root of the global
    batch's share, timm's rule for LAMB), weight decay 0.02; cosine with 5 warm-up epochs; binary
    cross-entropy with targets thresholded at 0.2 (timm's ``--bce-target-thresh`` in the paper's commands),
    no label smoothing; RandAugment ``rand-m6-mstd0.5-inc1``, random-resized crops and flips; Mixup 0.1 and
    CutMix 1.0 (switch 0.5); no EMA, no stochastic depth; test crop ratio 0.95. A3 trains at 160 px and
    tests at 224: here both at the spec's resolution (solve the space at 160 px to follow A3's training).
    """
    return Recipe(name="resnet-a3", epochs=100, batch_size=256, optimizer="lamb", lr=8e-3, lr_base_size=2048,
                  lr_base_scale="sqrt", weight_decay=0.02, sched="cosine", warmup_epochs=5, warmup_start=1e-4 / 8e-3,
                  min_lr_ratio=0.0, warmup_prefix=False, label_smoothing=0.0, loss="bce", bce_target_thresh=0.2,
                  pipeline="timm", auto_augment="rand-m6-mstd0.5-inc1", interpolation="bicubic", crop_pct=0.95,
                  mixup=0.1, cutmix=1.0,
                  description="ResNet strikes back's A3 (2021) for CNNs: LAMB, BCE, RandAugment, Mixup/CutMix, 100 epochs")


@register_recipe
def tinyvit_distill() -> Recipe:
    """TinyViT's pretraining distillation (Wu et al., "TinyViT: Fast Pretraining Distillation for Small
    Vision Transformers", ECCV 2022, section 4; ``configs/22k_distill`` of the official code).

    90 epochs against the teacher's stored soft labels; AdamW, lr 2.5e-4 per 512 images scaled
    linearly, weight decay 0.01, gradient norm clipped at 5; cosine per step with 5 warm-up epochs from
    5e-7 to a floor of 5e-6 (both scaled with the lr, as there); Mixup and CutMix off, as in TinyViT's
    distillation configs. Needs ``validate --distill CACHE`` (:class:`~archsearch.train.TeacherCache`),
    which replays the batch pipeline's crops and flips: TinyViT's cache also replays RandAugment,
    which this one does not.
    """
    return Recipe(name="tinyvit-distill", epochs=90, batch_size=128, optimizer="adamw", lr=2.5e-4, lr_base_size=512,
                  lr_base_scale="linear", weight_decay=0.01, opt_eps=1e-8, betas=(0.9, 0.999), clip_grad=5.0,
                  sched="cosine", warmup_epochs=5, warmup_start=5e-7 / 2.5e-4, min_lr_ratio=5e-6 / 2.5e-4,
                  warmup_prefix=False, label_smoothing=0.0, distill=True,
                  description="TinyViT's distillation (ECCV 2022) against a teacher cache: AdamW, clip 5, 90 epochs")
