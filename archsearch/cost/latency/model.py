"""The calibrated latency model: per-unit-type coefficients of one space on one device.

:class:`LatencyModel` holds the coefficients in :data:`~archsearch.cost.latency.units.FEATURES`
order (ms per unit of feature), how the CNN MACs features are counted (``channel_block``,
``kernel_exponent``) and a ``scale``; :func:`predict_latency` is

    t(spec) = scale * sum over the units u of the spec of  a_type(u) . f_u

in milliseconds, at the calibration's batch size. It round-trips through JSON (validated on load:
a bad file raises a one-line :class:`~archsearch.errors.SpecError`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from archsearch.cost.latency.units import FEATURES, STATISTICS, UNIT_TYPES, model_units
from archsearch.errors import SpecError

__all__ = ["LatencyModel", "predict_latency"]

_SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class LatencyModel:
    """Fitted per-unit-type coefficients of one space on one device.

    Attributes:
        space: The space calibrated.
        device: ``cpu`` or ``cuda``.
        device_name: Description of the device (CPU model or GPU name).
        torch_version: torch of the measurements.
        threads: Intra-op threads used.
        batch: Batch size of the measurements.
        resolution: Input resolution of the measurements.
        coefs: Unit type -> coefficients in :data:`FEATURES` order (ms per unit of feature).
        residuals: Unit type -> fit figures (``n``, ``rms_rel``, ``max_rel``).
        runs: Timed runs per measurement.
        scale: Factor on the summed unit predictions: 1 for the joint fit (its in-context correction is
            inside the coefficients); for ``fit="blocks"`` the median of measured / summed-block latency
            over whole random models (blocks timed alone run with warm caches; in a network they do not).
        statistic: What each timing kept of its calls (:data:`STATISTICS`): the predictions are of that
            statistic of a forward's time.
        channel_block: CNN conv channels are rounded up to a multiple of it in the MACs features (1:
            none). Convolution kernels compute whole blocks of channels (oneDNN's fp32 kernels on AVX-512
            keep 16 per vector register), so a 24-channel conv costs as much as a 32-channel one; the
            calibration picks the block that fits its whole models best
            (:func:`archsearch.train.latency.fit_calibration`).
        kernel_exponent: A CNN kxk or depthwise MAC counts ``(k^2 / 9)^-kernel_exponent`` in the MACs
            features (0: all alike). A larger kernel reuses each loaded input for more MACs, so its MACs
            run faster; a power of ``k^2`` keeps the prediction a posynomial in the kernel. Picked by
            the calibration with the channel block.
    """

    space: str
    device: str
    device_name: str
    torch_version: str
    threads: int
    batch: int
    resolution: int
    coefs: dict[str, tuple[float, ...]]
    residuals: dict[str, dict[str, float]]
    runs: int = 30
    scale: float = 1.0
    statistic: str = "median"
    channel_block: int = 1
    kernel_exponent: float = 0.0

    def unit_ms(self, unit: str, features: Sequence[float]) -> float:
        try:
            coef = self.coefs[unit]
        except KeyError:
            raise SpecError(f"latency: the calibration of space {self.space!r} has no {unit!r} units; "
                            f"run `archsearch calibrate --space {self.space}` again") from None
        return self.scale * sum(a * f for a, f in zip(coef, features))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["coefs"] = {k: list(v) for k, v in self.coefs.items()}
        return {"schema": _SCHEMA, "features": list(FEATURES), **d}

    @classmethod
    def from_dict(cls, obj: Any) -> "LatencyModel":
        """Validated load (plain JSON values only; bad files raise :class:`SpecError`)."""
        if not isinstance(obj, dict) or obj.get("schema") != _SCHEMA or obj.get("features") != list(FEATURES):
            raise SpecError("latency file: not an archsearch latency calibration of this version")
        try:
            coefs = {}
            for unit, vals in obj["coefs"].items():
                if unit not in UNIT_TYPES or len(vals) != len(FEATURES):
                    raise ValueError(unit)
                vec = tuple(float(v) for v in vals)
                if not all(math.isfinite(v) and v >= 0 for v in vec):
                    raise ValueError(unit)
                coefs[unit] = vec
            if not (0 < float(obj.get("scale", 1.0)) < 100):
                raise ValueError("scale")
            residuals = {str(u): {str(k): float(v) for k, v in r.items()} for u, r in obj["residuals"].items()}
            statistic = str(obj.get("statistic", "median"))
            if statistic not in STATISTICS:
                raise ValueError("statistic")
            channel_block = obj.get("channel_block", 1)  # files written before it was fitted: 1
            if not isinstance(channel_block, int) or isinstance(channel_block, bool) or not 1 <= channel_block <= 256:
                raise ValueError("channel_block")
            kernel_exponent = obj.get("kernel_exponent", 0.0)
            if isinstance(kernel_exponent, bool) or not isinstance(kernel_exponent, (int, float)) or not -2 <= kernel_exponent <= 2:
                raise ValueError("kernel_exponent")
            return cls(str(obj["space"]), str(obj["device"]), str(obj["device_name"]), str(obj["torch_version"]),
                       int(obj["threads"]), int(obj["batch"]), int(obj["resolution"]), coefs, residuals, int(obj.get("runs", 30)),
                       float(obj.get("scale", 1.0)), statistic, channel_block, float(kernel_exponent))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"latency file: malformed field ({exc})") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "LatencyModel":
        from archsearch._jsonio import read_json

        obj = read_json(path, what="latency file")
        try:
            return cls.from_dict(obj)
        except SpecError as exc:
            raise SpecError(f"latency file {path}: {str(exc).removeprefix('latency file: ')}") from None


def predict_latency(spec: Any, model: LatencyModel) -> float:
    """Predicted whole-model latency in milliseconds at the calibration's batch size
    (``scale`` times the sum of the unit predictions)."""
    return sum(model.unit_ms(unit, feats) for unit, feats in model_units(spec, model.channel_block, model.kernel_exponent))
