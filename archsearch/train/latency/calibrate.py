"""``archsearch calibrate``: a space's units and whole random models timed on this device, the
latency model fitted to them and saved where the solvers find it
(:func:`archsearch.cost.latency.latency_model_path`).
"""

from __future__ import annotations

from typing import Any, Callable

from archsearch.cost.latency import LatencyModel, latency_model_path
from archsearch.errors import SpecError
from archsearch.train.latency.fit import FITS, fit_calibration
from archsearch.train.latency.measure import measure_calibration

__all__ = ["calibrate_space"]


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
