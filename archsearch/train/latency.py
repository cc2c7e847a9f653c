"""Latency calibration: time a space's building blocks on this device and fit the predictor.

Covers the CNN (``deepmad-*``), ViT (``vit`` family: ``nvit``, ``revit*``), STViT (``stvit*``), MCi
(``mci``) and TinyViT (``tinyvit*``) spaces. Each unit (CNN: stem, block, head; ViT: patch embedding,
transformer block, head; STViT: the same plus the cross-attention layer) is built alone with the
modules of :mod:`archsearch.models` (MCi and TinyViT units are the submodules of built random models,
on the inputs a forward pass gives them), timed in
eval mode without gradients with ``torch.utils.benchmark.Timer`` (a statistic, by default the
median, of ``runs`` >= 30 single calls after warm-up, spread over interleaved rounds:
:mod:`archsearch.train.timing`, the method of :func:`archsearch.train.trainer.measure_latency`), and a
few whole random models of the space (within its budgets) are timed the same way, in the same rounds.
By default every type's coefficients are then fitted at once to both
(:func:`archsearch.cost.latency.fit_joint`), so the in-context cost that a unit timed alone misses
(caches, memory traffic between blocks) enters the coefficients; ``fit="blocks"`` fits each type to its units alone
(:func:`archsearch.cost.latency.fit_coefficients`) and keeps the median ratio of measured to predicted
whole-model latency as the model's ``scale``.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import random
import statistics
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from archsearch.cost.latency import (LATENCY_FAMILIES, LatencyModel, block_features, cross_features, fit_coefficients,
                                     fit_joint, head_features, latency_model_path, patch_embed_features, stem_features,
                                     vit_block_features, vit_head_features)
from archsearch.errors import SpecError
from archsearch.train.timing import check_statistic, forward_samples, summarise_ms

__all__ = ["CalibrationData", "FITS", "calibrate_space", "device_description", "fit_calibration", "measure_calibration",
           "random_cnn_design", "random_mci_spec", "random_stvit_spec", "random_tinyvit_spec", "random_vit_spec"]


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name


def _mult(rng: random.Random, lo: float, hi: float, m: int) -> int:
    """A log-uniform multiple of ``m`` in ``[lo, hi]``."""
    lo_m, hi_m = max(1, math.ceil(lo / m)), max(1, math.floor(hi / m))
    if hi_m <= lo_m:
        return lo_m * m
    return int(round(math.exp(rng.uniform(math.log(lo_m), math.log(hi_m + 0.999))) - 0.5)) * m or m


def random_cnn_design(space: Any, rng: random.Random, *, max_width: int | None = None) -> Any:
    """A random valid design of a DeepMAD space (widths log-uniform, capped at ``max_width``)."""
    from archsearch.solvers.deepmad.program import Design, DeepMADProgram
    from archsearch.space.budget import Budget

    prog = DeepMADProgram(space, Budget())
    m, sp = prog.m, space
    hi_w = min(sp.widths[1], max_width or sp.widths[1])
    c0 = _mult(rng, sp.stem_widths[0], sp.stem_widths[1], m)
    cs, bs, ks, ls, prev = [], [], [], [], c0
    for i in range(prog.n):
        c = _mult(rng, max(prev, sp.widths[0]), min(hi_w, sp.max_width_ratio * prev), m)
        c = max(c, prev)
        lo, hi = prog.b_range(c)
        cs.append(c)
        bs.append(_mult(rng, lo, hi, m))
        ks.append(rng.choice(sp.kernels))
        ls.append(rng.randint(sp.depths[0], sp.first_depth_max if i == 0 else sp.depths[1]))
        prev = c
    return prog, Design(c0, tuple(cs), tuple(bs), tuple(ks), tuple(ls))


def _design_within_budget(space: Any, rng: random.Random, max_width: int | None) -> Any:
    """A random design within the space's MACs and params budgets (100 tries, else the last drawn):
    the blocks worth timing are those the budgeted programs can choose."""
    from archsearch.solvers.deepmad.program import DeepMADProgram
    from archsearch.space.budget import Budget

    budget = space.budget
    prog = DeepMADProgram(space, Budget())
    for _ in range(100):
        _, d = random_cnn_design(space, rng, max_width=max_width)
        ev = prog.evaluate(d)
        if (budget.macs is None or ev.macs <= budget.macs) and (budget.params is None or ev.params <= budget.params):
            break
    return d


def _unit_samples(space: Any, resolution: int, samples: int, rng: random.Random, max_width: int | None) -> list[tuple[str, dict[str, Any]]]:
    """Unit configurations to time: every superblock position gets first and repeated blocks, drawn from
    random designs within the space's budgets."""
    from archsearch.solvers.deepmad.program import DeepMADProgram
    from archsearch.space.budget import Budget

    prog = DeepMADProgram(space, Budget(), resolution=resolution)
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(max(4, samples // 8)):
        c0 = _mult(rng, space.stem_widths[0], space.stem_widths[1], prog.m)
        out.append(("stem", dict(c_in=prog.cin0, c_out=c0, kernel=prog.ks, stride=space.stem_stride, r_in=resolution)))
    for j in range(samples):
        d = _design_within_budget(space, rng, max_width)
        i = j % prog.n
        prev = d.c0 if i == 0 else d.c[i - 1]
        first = rng.random() < 0.5
        cfg = dict(c_in=prev if first else d.c[i], c_out=d.c[i], bottleneck=d.b[i], kernel=d.k[i],
                   stride=prog.strides[i] if first else 1, r_in=prog.r_in[i] if first else prog.r_out[i], se=space.se)
        out.append((space.block, cfg))
    side = prog.r_out[-1]
    if space.num_classes:
        for _ in range(max(4, samples // 8)):
            c = _mult(rng, space.widths[0], min(space.widths[1], max_width or space.widths[1]), prog.m)
            out.append(("head", dict(channels=c, side=side, num_classes=space.num_classes)))
    return out


def _random_model_spec(space: Any, rng: random.Random, resolution: int, max_width: int | None) -> Any:
    """A random design of the space within its MACs and params budgets (100 tries), at ``resolution``."""
    from archsearch.solvers.deepmad.program import DeepMADProgram
    from archsearch.space.budget import Budget

    spec = DeepMADProgram(space, Budget()).to_spec(_design_within_budget(space, rng, max_width))
    return dataclasses.replace(spec, resolution=resolution)


def _cnn_unit_features(unit: str, cfg: dict[str, Any], channel_block: int = 1, kernel_exponent: float = 0.0) -> tuple[float, ...]:
    if unit == "stem":
        return stem_features(**cfg, channel_block=channel_block, kernel_exponent=kernel_exponent)
    if unit == "head":
        return head_features(**cfg)
    return block_features(unit, **cfg, channel_block=channel_block, kernel_exponent=kernel_exponent)


def _unit_module(unit: str, cfg: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...], tuple[float, ...]]:
    from timm.layers import ClassifierHead

    from archsearch.models._registry import get_block
    from archsearch.models.cnn import ConvNormAct

    if unit == "stem":
        mod: nn.Module = ConvNormAct(cfg["c_in"], cfg["c_out"], cfg["kernel"], stride=cfg["stride"])
        shape = (cfg["c_in"], cfg["r_in"], cfg["r_in"])
    elif unit == "head":
        mod = ClassifierHead(cfg["channels"], cfg["num_classes"], pool_type="avg")
        shape = (cfg["channels"], cfg["side"], cfg["side"])
    else:
        mod = get_block(unit)(cfg["c_in"], cfg["c_out"], bottleneck=cfg["bottleneck"], kernel=cfg["kernel"], stride=cfg["stride"],
                              se=cfg["se"])
        shape = (cfg["c_in"], cfg["r_in"], cfg["r_in"])
    return mod, shape, _cnn_unit_features(unit, cfg)


def _log_uniform_multiple(rng: random.Random, centre: float, lo: int, hi: int, m: int) -> int:
    """A multiple of ``m`` in ``[lo, hi]`` drawn log-uniformly within a factor 2 of ``centre``."""
    return min(max(_mult(rng, centre / 2, centre * 2, m), lo), hi)


def random_vit_spec(space: Any, rng: random.Random, *, resolution: int | None = None, max_embed: int | None = None) -> Any:
    """A random heterogeneous ViT of a ``vit``-family space, within its MACs budget (100 tries).

    EMB is log-uniform on the space's grid (capped at ``max_embed``); every block's heads, query/key and
    value widths and MLP width are drawn within a factor 2 of DeiT's proportions (EMB/64 heads of width
    64, MLP 4 EMB), so the timed blocks span the dims the programs choose from.
    """
    from archsearch.cost import macs
    from archsearch.space.vit import ViTBlockSpec, ViTSpec

    res = int(resolution or space.resolution)
    lo, hi = space.embed_dims
    hi = min(hi, max_embed or hi)
    m = space.embed_multiple
    spec = None
    for _ in range(100):
        d = _mult(rng, lo, max(lo, hi), m)
        blocks = tuple(ViTBlockSpec(max(1, round(d / 64 * rng.uniform(0.5, 2.0))), _log_uniform_multiple(rng, 64, 8, 256, 8),
                                    _log_uniform_multiple(rng, 64, 8, 256, 8), _log_uniform_multiple(rng, 4 * d, 16, 16 * d, 16))
                       for _ in range(space.depth))
        spec = ViTSpec(d, blocks, space.patch_size, res, getattr(space, "in_channels", 3), space.class_token, space.num_classes)
        if space.budget.macs is None or macs(spec, with_head=True) <= space.budget.macs:
            break
    return spec


class _PatchUnit(nn.Module):
    """Patch embedding, class token and position embedding: the ViT's first unit."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, tokens: int, class_token: bool) -> None:
        from archsearch.models.vit import PatchEmbed

        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed


class _ViTHeadUnit(nn.Module):
    """Final LayerNorm over every token, the class token (or token average) and the classifier."""

    def __init__(self, embed_dim: int, num_classes: int, class_token: bool) -> None:
        from archsearch.models.vit import LN_EPS

        super().__init__()
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.class_token = class_token
        self.head = nn.Linear(embed_dim, num_classes) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.head(x[:, 0] if self.class_token else x.mean(dim=1))


def _vit_unit_samples(space: Any, resolution: int, samples: int, rng: random.Random, max_width: int | None) -> list[tuple[str, dict[str, Any]]]:
    tokens = (resolution // space.patch_size) ** 2 + int(space.class_token)
    c_in = getattr(space, "in_channels", 3)
    out: list[tuple[str, dict[str, Any]]] = []
    lo, hi = space.embed_dims[0], min(space.embed_dims[1], max_width or space.embed_dims[1])
    for _ in range(max(4, samples // 8)):
        d = _mult(rng, lo, max(lo, hi), space.embed_multiple)
        out.append(("patch_embed", dict(in_channels=c_in, embed_dim=d, patch_size=space.patch_size, resolution=resolution,
                                        class_token=space.class_token)))
    for _ in range(samples):
        spec = random_vit_spec(space, rng, resolution=resolution, max_embed=max_width)
        b = spec.blocks[rng.randrange(len(spec.blocks))]
        out.append(("vit_block", dict(embed_dim=spec.embed_dim, heads=b.heads, qk_dim=b.qk_dim, v_dim=b.v_dim,
                                      mlp_dim=b.mlp_dim, tokens=tokens)))
    for _ in range(max(4, samples // 8)):
        d = _mult(rng, lo, max(lo, hi), space.embed_multiple)
        out.append(("vit_head", dict(embed_dim=d, tokens=tokens, num_classes=space.num_classes)))
    return out


def _vit_unit_module(unit: str, cfg: dict[str, Any], class_token: bool) -> tuple[nn.Module, tuple[int, ...], tuple[float, ...]]:
    from archsearch.models.vit import ViTBlock
    from archsearch.space.vit import ViTBlockSpec

    if unit == "patch_embed":
        tokens = (cfg["resolution"] // cfg["patch_size"]) ** 2 + int(cfg["class_token"])
        mod: nn.Module = _PatchUnit(cfg["in_channels"], cfg["embed_dim"], cfg["patch_size"], tokens, cfg["class_token"])
        return mod, (cfg["in_channels"], cfg["resolution"], cfg["resolution"]), patch_embed_features(**cfg)
    if unit == "vit_head":
        mod = _ViTHeadUnit(cfg["embed_dim"], cfg["num_classes"], class_token)
        return mod, (cfg["tokens"], cfg["embed_dim"]), vit_head_features(**cfg)
    mod = ViTBlock(cfg["embed_dim"], ViTBlockSpec(cfg["heads"], cfg["qk_dim"], cfg["v_dim"], cfg["mlp_dim"]))
    return mod, (cfg["tokens"], cfg["embed_dim"]), vit_block_features(**cfg)


UnitBuilder = Callable[[str, dict[str, Any]], tuple[nn.Module, tuple[int, ...], tuple[float, ...]]]


Timed = tuple[str, tuple[float, ...], list[tuple[nn.Module, torch.Tensor]]]  # unit type, features, modules with inputs


def _alone(units: list[tuple[str, dict[str, Any]]], build: UnitBuilder, *, batch: int, device: torch.device) -> list[Timed]:
    """Each unit configuration built alone, with a random input."""
    out: list[Timed] = []
    for unit, cfg in units:
        mod, shape, f = build(unit, cfg)
        out.append((unit, f, [(mod.to(device), torch.randn(batch, *shape, device=device))]))
    return out


@dataclasses.dataclass
class CalibrationData:
    """Raw timings of a calibration: units timed alone and whole random models.

    Attributes:
        units: Unit type -> (features, ms) of every timed unit.
        models: ``(features summed per unit type, ms)`` of every timed whole model.
        statistic: What each figure is of its timed calls (:data:`archsearch.train.timing.STATISTICS`).
        rounds: Interleaved passes the calls were spread over.
        unit_features, model_features, calls: The raw per-call times in seconds (per unit: one list per
            module it is made of), from which :meth:`summarised` recomputes the figures.
        extra_calls: Per-call times of the ``extra`` modules of :func:`measure_calibration` (benchmarks).
        channel_block, kernel_exponent: How the CNN features count MACs
            (:class:`archsearch.cost.latency.LatencyModel`).
        unit_configs, model_specs: CNN calibrations: what the units and whole models were built from, so
            :meth:`recounted` can count their features another way.
    """

    space: str
    device: str
    device_name: str
    torch_version: str
    threads: int
    batch: int
    resolution: int
    runs: int
    units: dict[str, tuple[list[tuple[float, ...]], list[float]]]
    models: list[tuple[dict[str, tuple[float, ...]], float]]
    statistic: str = "median"
    rounds: int = 1
    unit_features: list[tuple[str, tuple[float, ...]]] = dataclasses.field(default_factory=list, repr=False)
    model_features: list[dict[str, tuple[float, ...]]] = dataclasses.field(default_factory=list, repr=False)
    calls: tuple[list[list[list[float]]], list[list[float]]] = dataclasses.field(default_factory=lambda: ([], []), repr=False)
    extra_calls: list[list[float]] = dataclasses.field(default_factory=list, repr=False)
    channel_block: int = 1
    kernel_exponent: float = 0.0
    unit_configs: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list, repr=False)
    model_specs: list[Any] = dataclasses.field(default_factory=list, repr=False)

    def recounted(self, channel_block: int, kernel_exponent: float) -> "CalibrationData":
        """The same calls with the CNN features' MACs counted at ``channel_block`` and ``kernel_exponent``."""
        from archsearch.cost.latency import model_units, summed_features

        if (channel_block, kernel_exponent) == (self.channel_block, self.kernel_exponent):
            return self
        if not self.unit_configs or len(self.model_specs) != len(self.model_features):
            raise SpecError("channel_block, kernel_exponent: only a CNN calibration's features can be recounted")
        unit_features = [(unit, _cnn_unit_features(unit, cfg, channel_block, kernel_exponent)) for unit, cfg in self.unit_configs]
        model_features = [summed_features(list(model_units(spec, channel_block, kernel_exponent))) for spec in self.model_specs]
        return dataclasses.replace(self, unit_features=unit_features, model_features=model_features, channel_block=channel_block,
                                   kernel_exponent=kernel_exponent).summarised(self.statistic)

    def summarised(self, statistic: str) -> "CalibrationData":
        """The same calls kept as another statistic (:data:`archsearch.train.timing.STATISTICS`): a unit
        made of several modules gets the sum of their figures."""
        units: dict[str, tuple[list[tuple[float, ...]], list[float]]] = {}
        for (unit, f), parts in zip(self.unit_features, self.calls[0]):
            feats, times = units.setdefault(unit, ([], []))
            feats.append(f)
            times.append(max(sum(summarise_ms(t, statistic) for t in parts), 1e-6))
        models = [(f, max(summarise_ms(t, statistic), 1e-6)) for f, t in zip(self.model_features, self.calls[1])]
        return dataclasses.replace(self, units=units, models=models, statistic=statistic)


FITS = ("joint", "blocks")
CHANNEL_BLOCKS = (1, 8, 16, 32)  # channel blocks a CNN calibration chooses from
KERNEL_EXPONENTS = (-0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # and kernel exponents


def fit_calibration(data: CalibrationData, *, fit: str = "joint", channel_block: int | None = None,
                    kernel_exponent: float | None = None) -> LatencyModel:
    """The latency model of a calibration's timings.

    Args:
        data: Timings from :func:`measure_calibration`.
        fit: ``joint`` (default): every type's coefficients fitted at once to the unit and the
            whole-model timings (:func:`archsearch.cost.latency.fit_joint`), ``scale`` 1. ``blocks``:
            per-type fits to the unit timings alone, then ``scale`` = the median ratio of measured to
            predicted whole-model latency.
        channel_block, kernel_exponent: How the CNN MACs features are counted
            (:class:`archsearch.cost.latency.LatencyModel`). Default: for a CNN calibration, the pair
            of :data:`CHANNEL_BLOCKS` and :data:`KERNEL_EXPONENTS` (or the one given) whose fit has the
            smallest rms relative error over the whole models (over the units when none was timed;
            ties to the smaller block and the exponent nearest 0), with every pair's figure kept in
            ``residuals["counting"]`` under ``"block/exponent"``; for other families 1 and 0.

            Measured (``benchmarks/latency_accuracy.py`` on the AVX-512 CPU of the development
            machine, deepmad-r50 calibrated, 60 random r18/r34 designs; four runs' calls fitted both
            ways): the fit picks block 16, the fp32 vector width, and exponents 0 to 0.4; with the
            ``min`` statistic 93, 97, 88 and 93 % of the test designs are within +-10 %, against 88,
            88, 88 and 80 % with plain counting (block 1, exponent 0).
    """
    if fit not in FITS:
        raise SpecError(f"fit: expected one of {list(FITS)}, got {fit!r}")
    if channel_block is not None and channel_block < 1:
        raise SpecError(f"channel_block: expected an integer >= 1, got {channel_block}")
    if kernel_exponent is not None and not -2 <= kernel_exponent <= 2:
        raise SpecError(f"kernel_exponent: expected a number in [-2, 2], got {kernel_exponent}")
    if not data.unit_configs:
        return _fit_at(data.recounted(channel_block or 1, kernel_exponent or 0.0), fit)
    pairs = [(b, g) for b in ((channel_block,) if channel_block else CHANNEL_BLOCKS)
             for g in ((kernel_exponent,) if kernel_exponent is not None else KERNEL_EXPONENTS)]
    fits, errors = {}, {}
    for b, g in pairs:
        counted = data.recounted(b, g)
        fits[b, g] = _fit_at(counted, fit)
        errors[b, g] = _whole_model_rms(fits[b, g], counted)
    best = min(pairs, key=lambda p: (errors[p], p[0], abs(p[1])))
    model = fits[best]
    if len(pairs) == 1:
        return model
    return dataclasses.replace(model, residuals={**model.residuals, "counting": {f"{b}/{g:g}": e for (b, g), e in errors.items()}})


def _whole_model_rms(model: LatencyModel, data: CalibrationData) -> float:
    """rms relative error of a fitted model over the calibration's whole models (its units when none)."""
    if data.models:
        rel = [sum(model.unit_ms(u, f) for u, f in feats.items()) / t - 1.0 for feats, t in data.models]
    else:
        rel = [model.unit_ms(unit, f) / t - 1.0 for unit, (feats, times) in data.units.items() for f, t in zip(feats, times)]
    return math.sqrt(sum(r * r for r in rel) / len(rel)) if rel else 0.0


def _fit_at(data: CalibrationData, fit: str) -> LatencyModel:
    meta = (data.space, data.device, data.device_name, data.torch_version, data.threads, data.batch, data.resolution)
    if fit == "joint" and data.models:
        coefs, residuals = fit_joint(data.units, data.models)
        return LatencyModel(*meta, coefs, residuals, data.runs, 1.0, data.statistic, data.channel_block, data.kernel_exponent)
    coefs, residuals = {}, {}
    for unit, (feats, times) in data.units.items():
        coefs[unit], residuals[unit] = fit_coefficients(feats, times)
    model = LatencyModel(*meta, coefs, residuals, data.runs, 1.0, data.statistic, data.channel_block, data.kernel_exponent)
    ratios = [t / sum(model.unit_ms(u, f) for u, f in feats.items()) for feats, t in data.models]
    if ratios:
        scale = statistics.median(ratios)
        residuals["model"] = {"n": float(len(ratios)), "scale": scale, "max_rel": max(abs(r / scale - 1.0) for r in ratios)}
        model = dataclasses.replace(model, scale=scale, residuals=residuals)
    return model


def random_stvit_spec(space: Any, rng: random.Random, *, resolution: int | None = None) -> Any:
    """A random design of an STViT space within its MACs budget (the space's own design list)."""
    from archsearch.cost import macs
    from archsearch.solvers.stvit import stvit_designs

    designs = list(stvit_designs(space, resolution=resolution))
    fits = [d for d in designs if space.budget.macs is None or macs(d, with_head=space.budget_counts == "model") <= space.budget.macs]
    return rng.choice(fits or designs)


class _CrossUnit(nn.Module):
    """A cross-attention layer timed on fixed context tokens (its second input)."""

    def __init__(self, block: nn.Module, context: torch.Tensor) -> None:
        super().__init__()
        self.block = block
        self.register_buffer("context", context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, self.context)


def _stvit_unit_samples(space: Any, resolution: int, samples: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Units of random designs of the space: every layer kind at the token counts its designs use."""
    pools: dict[str, list[dict[str, Any]]] = {"patch_embed": [], "vit_block": [], "st_cross": [], "vit_head": []}
    for _ in range(max(4, samples // 4)):
        spec = random_stvit_spec(space, rng, resolution=resolution)
        d, m = spec.embed_dim, spec.mlp_dim
        pools["patch_embed"].append(dict(in_channels=spec.in_channels, embed_dim=d, patch_size=spec.patch_size,
                                         resolution=spec.resolution, class_token=spec.class_token))
        for tokens in (spec.image_tokens, spec.semantic_tokens):
            pools["vit_block"].append(dict(embed_dim=d, heads=spec.num_heads, qk_dim=spec.head_dim, v_dim=spec.head_dim,
                                           mlp_dim=m, tokens=tokens))
        pools["st_cross"].append(dict(embed_dim=d, mlp_dim=m, queries=spec.semantic_tokens, keys=spec.image_tokens,
                                      heads=spec.num_heads))
        if spec.recovery:
            pools["st_cross"].append(dict(embed_dim=d, mlp_dim=m, queries=spec.num_patches, keys=spec.semantic_tokens,
                                          heads=spec.num_heads))
        final = spec.image_tokens if spec.recovery else spec.semantic_tokens
        pools["vit_head"].append(dict(embed_dim=d, tokens=final, num_classes=spec.num_classes, class_token=spec.class_token))
    shares = {"patch_embed": max(4, samples // 8), "vit_block": samples // 2, "st_cross": samples // 2,
              "vit_head": max(4, samples // 8)}
    return [(unit, rng.choice(pools[unit])) for unit, count in shares.items() for _ in range(count)]


def _stvit_unit_module(unit: str, cfg: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...], tuple[float, ...]]:
    from archsearch.models.stvit import SelfAttentionBlock, SemanticBlock

    if unit in ("patch_embed", "vit_head"):
        cfg = dict(cfg)
        class_token = cfg["class_token"] if unit == "patch_embed" else cfg.pop("class_token")
        return _vit_unit_module(unit, cfg, class_token)
    d, m = cfg["embed_dim"], cfg["mlp_dim"]
    if unit == "vit_block":
        return SelfAttentionBlock(d, cfg["heads"], m), (cfg["tokens"], d), vit_block_features(**cfg)
    mod = _CrossUnit(SemanticBlock(d, cfg["heads"], m), torch.randn(1, cfg["keys"], d))
    return mod, (cfg["queries"], d), cross_features(embed_dim=d, mlp_dim=m, queries=cfg["queries"], keys=cfg["keys"])


def random_mci_spec(space: Any, rng: random.Random, *, resolution: int | None = None) -> Any:
    """A random design of an MCi space (an admissible width tuple, depths in the box) within its MACs budget."""
    from archsearch.cost import macs

    choices = space.dim_choices()
    spec = None
    for _ in range(100):
        dims = rng.choice(choices)
        depths = tuple(rng.randint(lo, hi) for lo, hi in space.depths)
        spec = space.make_spec(dims, depths, resolution=resolution)
        if space.budget.macs is None or macs(spec, with_head=True) <= space.budget.macs:
            break
    return spec


def _mci_modules(model: nn.Module, spec: Any) -> dict[tuple[str, int, int], list[nn.Module]]:
    """The submodules of a built MCi model behind each unit key of :func:`archsearch.cost.latency.mci_unit_keys`."""
    out: dict[tuple[str, int, int], list[nn.Module]] = {("mci_stem", -1, -1): [model.stem]}
    for i, stage in enumerate(model.stages):
        mods = [m for m in (stage.downsample, stage.pos_emb) if not isinstance(m, nn.Identity)]
        if mods:
            out[("mci_down", i, -1)] = mods
        kind = "mci_attention" if spec.token_mixers[i] == "attention" else "mci_repmixer"
        for j, block in enumerate(stage.blocks):
            out[(kind, i, j)] = [block]
    out[("mci_final", -1, -1)] = [model.final_conv, model.head]
    return out


def _tinyvit_modules(model: nn.Module, spec: Any) -> dict[tuple[str, int, int], list[nn.Module]]:
    """The submodules of a built TinyViT behind each unit key of :func:`archsearch.cost.latency.tinyvit_unit_keys`."""
    out: dict[tuple[str, int, int], list[nn.Module]] = {("tinyvit_stem", -1, -1): [model.patch_embed]}
    for i, stage in enumerate(model.stages):
        if i > 0:
            out[("tinyvit_merge", i, -1)] = [stage.downsample]
        kind = "tinyvit_mbconv" if i == 0 else "tinyvit_block"
        for j, block in enumerate(stage.blocks):
            out[(kind, i, j)] = [block]
    out[("tinyvit_head", -1, -1)] = [model.head]
    return out


def random_tinyvit_spec(space: Any, rng: random.Random, *, resolution: int | None = None) -> Any:
    """A random design of a TinyViT contraction space within its params and MACs budget (100 tries; the
    budget checked at the space's resolution, the spec returned at ``resolution``): every stage's
    depth and window drawn uniformly from the space's choices, its dim uniformly from its choices no
    smaller than the previous stage's dim (the space's non-decreasing rule)."""
    from archsearch.cost import macs, params

    n = space.seed.n_stages
    spec = None
    for _ in range(100):
        dims: list[int] = []
        for i in range(n):
            # (a seed whose dims decrease leaves none: its own dim, as the seed has it)
            allowed = [d for d in space.dim_choices(i) if not dims or d >= dims[-1]] or [space.dim_choices(i)[-1]]
            dims.append(rng.choice(allowed))
        depths = tuple(rng.choice(space.depth_choices(i)) for i in range(n))
        windows = tuple(rng.choice(space.window_choices(i)) for i in range(n))
        spec = space.make_spec(tuple(dims), depths, windows)  # the budget holds at the space's resolution
        b = space.budget
        if (b.macs is None or macs(spec, with_head=True) <= b.macs) and (b.params is None or params(spec, with_head=True) <= b.params):
            break
    return dataclasses.replace(spec, resolution=resolution or space.resolution)


def _units_in_models(draw: Callable[[], Any], modules: Callable[[nn.Module, Any], dict[tuple[str, int, int], list[nn.Module]]],
                     keys: Callable[[Any], list[tuple[str, int, int]]], units: Callable[[Any], Iterable[tuple[str, tuple[float, ...]]]],
                     rng: random.Random, count: int, res: int, batch: int, dev: torch.device) -> list[Timed]:
    """``count`` units inside random built models (MCi, TinyViT): every model gives the units that are
    no block (block index -1: stem, downsampling, head), a random block of each kind and a few more,
    each with the input a forward pass gave it (forward pre-hooks).

    Args:
        draw: A random spec of the space.
        modules: The submodules of a built model behind each unit key.
        keys: The unit keys of a spec in execution order; ``units``: their ``(type, features)``.
    """
    from archsearch.models import build_model

    out: list[Timed] = []
    while len(out) < count:
        spec = draw()
        model = build_model(spec).to(dev).eval()
        mods = modules(model, spec)
        feats = dict(zip(keys(spec), (f for _, f in units(spec))))
        if set(feats) != set(mods):  # pragma: no cover  (the cost model and the module disagree)
            raise SpecError(f"internal: the {spec.family} latency units do not match the built module")
        inputs: dict[tuple[tuple[str, int, int], int], torch.Tensor] = {}
        hooks = [m.register_forward_pre_hook(lambda _m, args, k=(key, i): inputs.__setitem__(k, args[0].detach()))
                 for key, ms in mods.items() for i, m in enumerate(ms)]
        with torch.no_grad():
            model(torch.randn(batch, spec.in_channels, res, res, device=dev))
        for h in hooks:
            h.remove()
        fixed = [k for k in feats if k[2] < 0]  # stem, downsampling, final: always
        blocks = [k for k in feats if k[2] >= 0]
        chosen = [rng.choice([k for k in blocks if k[0] == kind]) for kind in sorted({k[0] for k in blocks})]
        rest = [k for k in blocks if k not in chosen]
        chosen += rng.sample(rest, min(len(rest), max(0, count // 8 - len(chosen))))
        for key in fixed + chosen:
            out.append((key[0], feats[key], [(m, inputs[(key, i)]) for i, m in enumerate(mods[key])]))
    return out[:count]


def calibrate_space(space: Any, *, device: str = "cpu", batch: int = 1, threads: int | None = None, samples: int = 48,
                    runs: int = 30, warmup: int = 5, rounds: int = 3, statistic: str = "median", resolution: int | None = None,
                    max_width: int | None = None, models: int = 24, seed: int = 0, save: bool = True, fit: str = "joint",
                    progress: Callable[[int, int], None] | None = None) -> LatencyModel:
    """Times a space's units and whole random models (:func:`measure_calibration`), fits the per-type
    predictor (:func:`fit_calibration`) and saves it under :func:`archsearch.cost.latency.latency_model_path`
    (``save``). Arguments as :func:`measure_calibration`, plus ``fit``."""
    if fit not in FITS:
        raise SpecError(f"--fit: expected one of {list(FITS)}, got {fit!r}")
    data = measure_calibration(space, device=device, batch=batch, threads=threads, samples=samples, runs=runs,
                               warmup=warmup, rounds=rounds, statistic=statistic, resolution=resolution,
                               max_width=max_width, models=models, seed=seed, progress=progress)
    model = fit_calibration(data, fit=fit)
    if save:
        model.save(latency_model_path(space.name, device))
    return model


def measure_calibration(space: Any, *, device: str = "cpu", batch: int = 1, threads: int | None = None, samples: int = 48,
                        runs: int = 30, warmup: int = 5, rounds: int = 3, statistic: str = "median",
                        resolution: int | None = None, max_width: int | None = None, models: int = 24, seed: int = 0,
                        progress: Callable[[int, int], None] | None = None,
                        extra: Sequence[tuple[torch.nn.Module, torch.Tensor]] = ()) -> CalibrationData:
    """Times ``samples`` blocks (plus stems/patch embeddings and heads) and ``models`` whole random models of a space.

    Units and whole models are built first, then timed together in ``rounds`` interleaved passes
    (:func:`archsearch.train.timing.time_forwards`), so the unit and the whole-model timings that the
    joint fit combines see the same states of the machine.

    Args:
        space: A space of a family the predictor covers (:data:`archsearch.cost.latency.LATENCY_FAMILIES`).
        device: ``cpu`` or ``cuda``.
        batch: Batch size of the timed inputs.
        threads: ``torch.set_num_threads`` for the measurements (default: unchanged).
        samples: Blocks to time (stems and heads: an eighth as many each, at least 4; MCi and TinyViT:
            units in all, every timed model's stem, downsampling and head among them).
        runs: Timed calls per unit and model; the CLI always uses >= 30.
        warmup: Untimed calls first.
        rounds: Interleaved passes the calls are spread over.
        statistic: What is kept of each unit's and model's calls (:data:`archsearch.train.timing.STATISTICS`).
        resolution: Input resolution (default: the space's).
        max_width: Cap on sampled widths (CNN) or EMB (ViT) (tests).
        models: Whole random models of the space (within its MACs budget) to time.
        seed: Sampling seed.
        progress: Called with ``(done, total)`` as the timing goes.
        extra: More ``(module, input)`` pairs timed in the same interleaved rounds (a benchmark's test
            models, so that they and the calibration see the same states of the machine); their calls
            are returned in ``extra_calls``.
    """
    from archsearch.models import build_model
    from archsearch.cost.latency import model_units, summed_features

    family = getattr(space, "family", None)
    if family not in LATENCY_FAMILIES:
        raise SpecError(f"--space: latency calibration covers the {list(LATENCY_FAMILIES)} families (deepmad-*, nvit, revit*, stvit*, mci, tinyvit*), "
                        f"not {space.name!r} (family {family})")
    if device not in ("cpu", "cuda"):
        raise SpecError(f"--device: expected cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device: cuda was asked for but no CUDA device is available")
    if batch < 1 or runs < 1 or samples < 1 or models < 0 or rounds < 1:
        raise SpecError("--batch, runs, rounds and samples: expected integers >= 1 (models >= 0)")
    check_statistic(statistic, "--statistic")
    if threads is not None:
        if threads < 1:
            raise SpecError(f"--threads: expected an integer >= 1, got {threads}")
        torch.set_num_threads(threads)
    dev = torch.device(device)
    res = int(resolution or space.resolution)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    random_spec = {
        "stvit": lambda: random_stvit_spec(space, rng, resolution=res),
        "mci": lambda: random_mci_spec(space, rng, resolution=res),
        "tinyvit": lambda: random_tinyvit_spec(space, rng, resolution=res),
        "vit": lambda: random_vit_spec(space, rng, resolution=res, max_embed=max_width),
        "cnn": lambda: _random_model_spec(space, rng, res, max_width),
    }[family]
    units: list[Timed]
    configs: list[tuple[str, dict[str, Any]]] = []
    if family in ("mci", "tinyvit"):  # timed inside built models, on the inputs a forward pass gives them
        from archsearch.cost.latency import mci_unit_keys, mci_units, tinyvit_unit_keys, tinyvit_units

        modules, keys, units_of = {"mci": (_mci_modules, mci_unit_keys, mci_units),
                                   "tinyvit": (_tinyvit_modules, tinyvit_unit_keys, tinyvit_units)}[family]
        units = _units_in_models(random_spec, modules, keys, units_of, rng, samples, res, batch, dev)
    else:
        if family == "stvit":
            configs, build = _stvit_unit_samples(space, res, samples, rng), _stvit_unit_module
        elif family == "vit":
            configs = _vit_unit_samples(space, res, samples, rng, max_width)
            build = lambda unit, cfg: _vit_unit_module(unit, cfg, space.class_token)  # noqa: E731
        else:
            configs, build = _unit_samples(space, res, samples, rng, max_width), _unit_module
        units = _alone(configs, build, batch=batch, device=dev)
    wholes, specs = [], []
    for _ in range(models):
        spec = random_spec()
        # ViT-like specs carry in_channels, CNNs their stem's (deepmad-fmnist's grey images: 1)
        c_in = getattr(spec, "in_channels", None) or getattr(getattr(spec, "stem", None), "in_channels", 3)
        specs.append(spec)
        wholes.append((summed_features(list(model_units(spec))),
                       (build_model(spec).to(dev), torch.randn(batch, c_in, res, res, device=dev))))
    items = [item for _, _, parts in units for item in parts] + [item for _, item in wholes] + list(extra)
    samples = iter(forward_samples(items, runs=runs, warmup=warmup, rounds=rounds, progress=progress))
    calls = ([[next(samples) for _ in parts] for _, _, parts in units], [next(samples) for _ in wholes])
    data = CalibrationData(space.name, device, device_description(dev), torch.__version__, torch.get_num_threads(), batch, res,
                           runs, {}, [], statistic, rounds,
                           [(unit, f) for unit, f, _ in units], [feats for feats, _ in wholes], calls, list(samples))
    if family == "cnn":  # their features can be recounted at another channel block and kernel exponent
        data = dataclasses.replace(data, unit_configs=configs, model_specs=specs)
    return data.summarised(statistic)
