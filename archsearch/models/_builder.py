"""Spec coercion and :func:`build_model`, which dispatches on the spec's family."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Union

from archsearch.models._registry import get_builder
from archsearch.errors import SpecError
from archsearch.space.base import ArchSpec, list_families, load_spec, spec_from_dict

__all__ = ["SpecLike", "as_spec", "build_model", "entry_spec", "with_overrides"]

SpecLike = Union[ArchSpec, dict, str, Path]


def as_spec(spec: SpecLike, *, family: str | None = None) -> ArchSpec:
    """Reads a spec given as a spec object, its dict, JSON text or the path of a JSON file.

    Args:
        spec: The spec in any of the accepted forms.
        family: When given, the family the spec must belong to.

    Raises:
        SpecError: The value is of another type or family, or is not a valid spec.
    """
    if isinstance(spec, ArchSpec):
        out = spec
    elif isinstance(spec, dict):
        out = spec_from_dict({"family": family, **spec} if family and "family" not in spec else spec)
    elif isinstance(spec, (str, Path)):
        out = load_spec(spec)
    else:
        raise SpecError(
            f"spec: expected a spec object, a dict, JSON text or a JSON file path, got {type(spec).__name__}"
        )
    if family is not None and out.family != family:
        raise SpecError(f"spec.family: expected {family!r}, got {out.family!r} (families: {list_families()})")
    return out


def build_model(spec: SpecLike, **kwargs: Any) -> Any:
    """Builds the torch module of a spec with its family's registered builder.

    Args:
        spec: A spec object, its dict, JSON text or a JSON file path.
        **kwargs: Passed to the builder (for CNNs: timm's ``num_classes``, ``in_chans``,
            ``global_pool``, ``drop_rate`` ...).

    Returns:
        A ``torch.nn.Module`` with timm's standard methods; to build without allocating weights,
        call it under ``with torch.device("meta"):``.
    """
    spec = as_spec(spec)
    return get_builder(spec.family)(spec, **kwargs)


def with_overrides(spec: Any, num_classes: int | None, in_chans: int | None) -> Any:
    """The spec with timm's ``num_classes`` / ``in_chans`` arguments applied (validated by the spec).

    For specs with top-level ``num_classes`` and ``in_channels`` fields (every family but the CNN, whose
    input channels belong to its stem).
    """
    changes: dict[str, Any] = {}
    if num_classes is not None and num_classes != spec.num_classes:
        changes["num_classes"] = num_classes
    if in_chans is not None and in_chans != spec.in_channels:
        changes["in_channels"] = in_chans
    return dataclasses.replace(spec, **changes) if changes else spec


def entry_spec(entry: str, family: str, pretrained: bool, spec: SpecLike | None, kwargs: dict[str, Any], *,
               weights_hint: str = "load a checkpoint with checkpoint_path=") -> ArchSpec:
    """The checks every timm entry point of the package makes before it builds; returns the spec.

    Searched architectures have no published weights and their ``pretrained_cfg`` is derived from
    the spec, so ``pretrained=True`` and ``pretrained_cfg=`` are refused; timm's ``cache_dir`` is
    dropped (nothing is downloaded). ``kwargs`` is edited in place.

    Args:
        entry: The entry point's name (``archsearch_cnn``), for messages.
        family: The spec family it builds.
        pretrained: timm's ``pretrained`` argument.
        spec: The ``spec=`` argument in any form :func:`as_spec` reads.
        kwargs: The entry point's other keyword arguments.
        weights_hint: How to load weights instead, for the ``pretrained=True`` message.
    """
    if spec is None:
        raise SpecError(f"{entry}: expected spec= (a {family} spec, its dict, JSON text or a JSON file path), got none")
    if pretrained:
        raise SpecError(f"{entry}: pretrained=True is not available (no published weights); "
                        f"pass pretrained=False and {weights_hint}")
    if kwargs.pop("pretrained_cfg", None) is not None:
        raise SpecError(f"{entry}: the pretrained_cfg is derived from the spec; use pretrained_cfg_overlay= to change fields")
    kwargs.pop("cache_dir", None)
    return as_spec(spec, family=family)
