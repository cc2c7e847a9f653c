"""The model registries: one builder per spec family, one module class per CNN block type."""

from __future__ import annotations

import warnings
from typing import Any, Callable, TypeVar

from archsearch.errors import UnknownNameError, did_you_mean

__all__ = [
    "register_builder", "get_builder", "list_builders", "register_block", "get_block", "list_blocks",
    "register_timm_model",
]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

_BUILDERS: dict[str, Callable[..., Any]] = {}
_BLOCKS: dict[str, type] = {}


def _same_origin(a: Any, b: Any) -> bool:
    """Whether two objects are one definition (a module reload re-registers, which is no conflict)."""
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def register_builder(family: str) -> Callable[[F], F]:
    """Function decorator registering the model builder of a spec family (raises on duplicates).

    Re-registering the same definition (a module reload) replaces it.

    A builder is called as ``builder(spec, **kwargs)`` and returns a ``torch.nn.Module`` with timm's
    standard methods.
    """

    def deco(fn: F) -> F:
        if family in _BUILDERS and not _same_origin(_BUILDERS[family], fn):
            raise ValueError(f"a builder for family {family!r} is already registered ({_BUILDERS[family].__qualname__})")
        _BUILDERS[family] = fn
        return fn

    return deco


def get_builder(family: str) -> Callable[..., Any]:
    if family not in _BUILDERS:
        raise UnknownNameError(f"no model builder for family {family!r}{did_you_mean(family, list_builders())}; known families: {list_builders()}")
    return _BUILDERS[family]


def list_builders() -> list[str]:
    return sorted(_BUILDERS)


def register_block(name: str) -> Callable[[C], C]:
    """Class decorator registering a CNN block module under its spec name (raises on duplicates).

    Re-registering the same definition (a module reload) replaces it.

    The class is constructed as
    ``cls(in_channels, out_channels, *, bottleneck, kernel, stride, se, act_layer)``.
    """

    def deco(cls: C) -> C:
        if name in _BLOCKS and not _same_origin(_BLOCKS[name], cls):
            raise ValueError(f"block {name!r} is already registered by {_BLOCKS[name].__qualname__}")
        cls.block_type = name  # type: ignore[attr-defined]
        _BLOCKS[name] = cls
        return cls

    return deco


def get_block(name: str) -> type:
    if name not in _BLOCKS:
        raise UnknownNameError(f"block {name!r} has no module{did_you_mean(name, list_blocks())}; registered blocks: {list_blocks()}")
    return _BLOCKS[name]


def list_blocks() -> list[str]:
    return sorted(_BLOCKS)


def register_timm_model(fn: F) -> F:
    """Registers a timm entry point under ``fn.__name__``, idempotently.

    Re-importing or reloading the defining module re-registers the same entry point silently (timm
    itself would warn); a name already taken by another module raises.
    """
    from timm.models import is_model, model_entrypoint, register_model

    name = fn.__name__
    if is_model(name):
        old = model_entrypoint(name)
        if not _same_origin(old, fn):
            raise ValueError(f"timm already has a model named {name!r}, registered by {old.__module__}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=f"Overwriting {name} in registry")
            return register_model(fn)
    return register_model(fn)
