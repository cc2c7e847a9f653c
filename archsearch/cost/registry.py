"""One cost model per family, looked up by the spec's ``family``."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from archsearch.errors import UnknownNameError, did_you_mean
from archsearch.space.base import ArchSpec

__all__ = ["CostModel", "register_cost_model", "get_cost_model", "params", "macs", "activation_memory", "costs"]


class CostModel(NamedTuple):
    params: Callable[..., int]  # (spec, *, with_head) -> int
    macs: Callable[..., int]  # (spec, *, with_head) -> int
    activation_memory: Callable[[Any], int]


_MODELS: dict[str, CostModel] = {}


def register_cost_model(family: str, model: CostModel) -> None:
    if family in _MODELS:
        raise ValueError(f"a cost model for family {family!r} is already registered")
    _MODELS[family] = model


def get_cost_model(family: str) -> CostModel:
    if family not in _MODELS:
        raise UnknownNameError(f"no cost model for family {family!r}{did_you_mean(family, _MODELS)}; known: {sorted(_MODELS)}")
    return _MODELS[family]


def params(spec: ArchSpec, *, with_head: bool = False) -> int:
    """Exact parameter count (backbone, or the whole model with ``with_head``)."""
    return get_cost_model(spec.family).params(spec, with_head=with_head)


def macs(spec: ArchSpec, *, with_head: bool = False) -> int:
    """Exact MACs at batch 1 (backbone, or the whole model with ``with_head``)."""
    return get_cost_model(spec.family).macs(spec, with_head=with_head)


def activation_memory(spec: ArchSpec) -> int:
    """Peak activation memory in bytes (float32, batch 1)."""
    return get_cost_model(spec.family).activation_memory(spec)


def costs(spec: ArchSpec) -> dict[str, int]:
    """The keys ``archsearch show`` reports: backbone and whole-model params and MACs, memory."""
    model = get_cost_model(spec.family)
    return {
        "params": model.params(spec, with_head=False),
        "macs": model.macs(spec, with_head=False),
        "params_with_head": model.params(spec, with_head=True),
        "macs_with_head": model.macs(spec, with_head=True),
        "activation_memory": model.activation_memory(spec),
    }
