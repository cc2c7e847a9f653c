"""Latency calibration: time a CNN space's building blocks on this device and fit the predictor.

Each unit (stem, block, head) is built alone with the modules of :mod:`archsearch.build.cnn`, timed in
eval mode without gradients with ``torch.utils.benchmark.Timer`` (median of ``runs`` >= 30 single
calls after warm-up, the method of :func:`archsearch.train.trainer.measure_latency`), and the
per-type coefficients are fitted by :func:`archsearch.cost.latency.fit_coefficients`. Then a few
whole random models of the space (within its MACs budget) are timed the same way, and the median ratio
of measured to summed-block latency is kept as the model's in-context ``scale``.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import random
import statistics
from typing import Any, Callable

import torch
from torch import nn

from archsearch.cost.latency import (LatencyModel, block_features, fit_coefficients, head_features, latency_model_path,
                                     stem_features)
from archsearch.errors import SpecError

__all__ = ["median_ms", "calibrate_space", "device_description", "random_cnn_design"]


def median_ms(module: nn.Module, x: torch.Tensor, *, runs: int = 30, warmup: int = 5) -> float:
    """Median forward time of ``module(x)`` in milliseconds (eval mode, no grad) over ``runs`` timed calls."""
    from torch.utils import benchmark

    module.eval()

    def forward() -> None:
        with torch.no_grad():
            module(x)

    for _ in range(warmup):
        forward()
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    timer = benchmark.Timer(stmt="forward()", globals={"forward": forward}, num_threads=torch.get_num_threads())
    return 1000.0 * statistics.median(timer.timeit(1).median for _ in range(runs))


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
    from archsearch.solvers.deepmad_program import Design, DeepMADProgram
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


def _unit_samples(space: Any, resolution: int, samples: int, rng: random.Random, max_width: int | None) -> list[tuple[str, dict[str, Any]]]:
    """Unit configurations to time: every superblock position gets first and repeated blocks."""
    from archsearch.solvers.deepmad_program import DeepMADProgram
    from archsearch.space.budget import Budget

    prog = DeepMADProgram(space, Budget(), resolution=resolution)
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(max(4, samples // 8)):
        c0 = _mult(rng, space.stem_widths[0], space.stem_widths[1], prog.m)
        out.append(("stem", dict(c_in=prog.cin0, c_out=c0, kernel=prog.ks, stride=space.stem_stride, r_in=resolution)))
    for j in range(samples):
        _, d = random_cnn_design(space, rng, max_width=max_width)
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
    """A random design of the space within its MACs budget (100 tries), at ``resolution``."""
    from archsearch.cost import macs

    for _ in range(100):
        prog, d = random_cnn_design(space, rng, max_width=max_width)
        spec = prog.to_spec(d)
        if space.budget.macs is None or macs(spec) <= space.budget.macs:
            break
    return dataclasses.replace(spec, resolution=resolution)


def _unit_module(unit: str, cfg: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...], tuple[float, ...]]:
    from timm.layers import ClassifierHead

    from archsearch.build._registry import get_block
    from archsearch.build.cnn import ConvNormAct

    if unit == "stem":
        mod: nn.Module = ConvNormAct(cfg["c_in"], cfg["c_out"], cfg["kernel"], stride=cfg["stride"])
        return mod, (cfg["c_in"], cfg["r_in"], cfg["r_in"]), stem_features(**cfg)
    if unit == "head":
        mod = ClassifierHead(cfg["channels"], cfg["num_classes"], pool_type="avg")
        return mod, (cfg["channels"], cfg["side"], cfg["side"]), head_features(**cfg)
    mod = get_block(unit)(cfg["c_in"], cfg["c_out"], bottleneck=cfg["bottleneck"], kernel=cfg["kernel"], stride=cfg["stride"],
                          se=cfg["se"])
    return mod, (cfg["c_in"], cfg["r_in"], cfg["r_in"]), block_features(unit, **cfg)


def calibrate_space(space: Any, *, device: str = "cpu", batch: int = 1, threads: int | None = None, samples: int = 48,
                    runs: int = 30, warmup: int = 5, resolution: int | None = None, max_width: int | None = None,
                    models: int = 6, seed: int = 0, save: bool = True,
                    progress: Callable[[int, int], None] | None = None) -> LatencyModel:
    """Times ``samples`` blocks (plus stems and heads) of a CNN space and fits the per-type predictor.

    Args:
        space: A DeepMAD (``cnn`` family) space.
        device: ``cpu`` or ``cuda``.
        batch: Batch size of the timed inputs.
        threads: ``torch.set_num_threads`` for the measurements (default: unchanged).
        samples: Blocks to time (stems and heads: an eighth as many each, at least 4).
        runs: Timed calls per unit (the median is kept); the CLI always uses >= 30.
        warmup: Untimed calls first.
        resolution: Input resolution (default: the space's).
        max_width: Cap on sampled widths (tests).
        models: Whole random models timed for the in-context scale (0: scale 1).
        seed: Sampling seed.
        save: Write the result to :func:`archsearch.cost.latency.latency_model_path`.
        progress: Called with ``(done, total)`` after each unit.
    """
    if getattr(space, "family", None) != "cnn":
        raise SpecError(f"--space: latency calibration covers the CNN (deepmad-*) spaces, not {space.name!r} "
                        f"(family {getattr(space, 'family', '?')})")
    if device not in ("cpu", "cuda"):
        raise SpecError(f"--device: expected cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device: cuda was asked for but no CUDA device is available")
    if batch < 1 or runs < 1 or samples < 1:
        raise SpecError("--batch, runs and samples: expected integers >= 1")
    if threads is not None:
        if threads < 1:
            raise SpecError(f"--threads: expected an integer >= 1, got {threads}")
        torch.set_num_threads(threads)
    dev = torch.device(device)
    res = int(resolution or space.resolution)
    rng = random.Random(seed)
    units = _unit_samples(space, res, samples, rng, max_width)
    feats: dict[str, list[tuple[float, ...]]] = {}
    times: dict[str, list[float]] = {}
    torch.manual_seed(seed)
    for n_done, (unit, cfg) in enumerate(units, 1):
        mod, shape, f = _unit_module(unit, cfg)
        mod = mod.to(dev)
        x = torch.randn(batch, *shape, device=dev)
        ms = median_ms(mod, x, runs=runs, warmup=warmup)
        feats.setdefault(unit, []).append(f)
        times.setdefault(unit, []).append(max(ms, 1e-6))
        if progress is not None:
            progress(n_done, len(units) + models)
    coefs, residuals = {}, {}
    for unit in feats:
        coefs[unit], residuals[unit] = fit_coefficients(feats[unit], times[unit])
    model = LatencyModel(space.name, device, device_description(dev), torch.__version__, torch.get_num_threads(), batch, res,
                         coefs, residuals, runs)
    ratios = []
    for j in range(models):
        from archsearch.build import build_model
        from archsearch.cost.latency import predict_latency

        spec = _random_model_spec(space, rng, res, max_width)
        net = build_model(spec).to(dev)
        ratios.append(median_ms(net, torch.randn(batch, 3, res, res, device=dev), runs=runs, warmup=warmup)
                      / predict_latency(spec, model))
        if progress is not None:
            progress(len(units) + j + 1, len(units) + models)
    if ratios:
        scale = statistics.median(ratios)
        residuals["model"] = {"n": float(len(ratios)), "scale": scale,
                              "max_rel": max(abs(r / scale - 1.0) for r in ratios)}
        model = dataclasses.replace(model, scale=scale, residuals=residuals)
    if save:
        model.save(latency_model_path(space.name, device))
    return model
