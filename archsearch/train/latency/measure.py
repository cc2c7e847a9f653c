"""Timing a calibration: units and whole random models of a space, timed together on this device.

Units (:mod:`.units`) and a few whole random models of the space (within its budgets) are built
first, then timed in eval mode without gradients with ``torch.utils.benchmark.Timer`` in
``rounds`` interleaved passes (:func:`archsearch.train.timing.forward_samples`: ``runs`` single
calls each after warm-up, >= 30 from the CLI; the method of :func:`archsearch.train.trainer.measure_latency`),
so the unit and the whole-model timings that the joint fit combines see the same states of the
machine. :class:`CalibrationData` keeps every call; its figures are a statistic of them (by
default the median; ``p25``, ``min``), a unit made of several modules getting the sum of theirs.
"""

from __future__ import annotations

import dataclasses
import platform
import random
from typing import Any, Callable, Sequence

import torch

from archsearch.cost.latency import LATENCY_FAMILIES
from archsearch.errors import SpecError
from archsearch.train.latency.random_designs import (_random_model_spec, random_mci_spec, random_stvit_spec,
                                                     random_tinyvit_spec, random_vit_spec)
from archsearch.train.latency.units import (Timed, _alone, _cnn_unit_features, _mci_modules, _stvit_unit_module,
                                            _stvit_unit_samples, _tinyvit_modules, _unit_module, _unit_samples,
                                            _units_in_models, _vit_unit_module, _vit_unit_samples)
from archsearch.train.timing import check_statistic, forward_samples, summarise_ms

__all__ = ["CalibrationData", "device_description", "measure_calibration"]


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

