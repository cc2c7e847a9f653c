"""Where calibrations live: one JSON file per space and device under the latency cache.

``latency_cache_dir() / <device> / <space>.json``, the cache being ``$ARCHSEARCH_CACHE/latency`` or
``~/.cache/archsearch/latency`` (``$XDG_CACHE_HOME`` honoured); ``archsearch calibrate`` writes
them, the solvers and ``archsearch prune`` read them.
"""

from __future__ import annotations

import os
from pathlib import Path

from archsearch.cost.latency.model import LatencyModel
from archsearch.errors import SpecError

__all__ = ["find_latency_model", "latency_cache_dir", "latency_model_path", "load_latency_model", "require_latency_model"]


def latency_cache_dir() -> Path:
    """``$ARCHSEARCH_CACHE/latency`` or ``~/.cache/archsearch/latency`` (``$XDG_CACHE_HOME`` honoured)."""
    root = os.environ.get("ARCHSEARCH_CACHE")
    if root:
        return Path(root) / "latency"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "archsearch" / "latency"


def latency_model_path(space: str, device: str = "cpu") -> Path:
    return latency_cache_dir() / device / f"{space}.json"


def load_latency_model(space: str, device: str = "cpu") -> LatencyModel:
    return LatencyModel.load(latency_model_path(space, device))


def find_latency_model(space: str) -> LatencyModel | None:
    """The space's calibration for ``$ARCHSEARCH_LATENCY_DEVICE`` (default: cpu, else cuda), or None."""
    wanted = os.environ.get("ARCHSEARCH_LATENCY_DEVICE")
    for device in ([wanted] if wanted else ["cpu", "cuda"]):
        path = latency_model_path(space, device)
        if path.is_file():
            return LatencyModel.load(path)
    return None


def require_latency_model(space: str) -> LatencyModel:
    """The space's calibration (see :func:`find_latency_model`); a one-line :class:`SpecError` naming
    the command that makes it when there is none."""
    model = find_latency_model(space)
    if model is None:
        raise SpecError(f"budget.latency: space {space} has no latency calibration on this machine; "
                        f"run `archsearch calibrate --space {space}` first")
    return model
