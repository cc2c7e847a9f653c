"""The spec base class, the family registry and the one loader that reads any family's JSON."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

from archsearch.errors import SpecError, UnknownNameError

__all__ = ["ArchSpec", "register_family", "list_families", "get_family", "load_spec", "spec_from_dict", "check_int"]

_FAMILIES: dict[str, type["ArchSpec"]] = {}
S = TypeVar("S", bound=type)


def register_family(name: str) -> Callable[[S], S]:
    """Class decorator registering a spec class under its family name (raises on duplicates)."""

    def deco(cls: S) -> S:
        if name in _FAMILIES:
            raise ValueError(f"family {name!r} is already registered by {_FAMILIES[name].__qualname__}")
        cls.family = name  # type: ignore[attr-defined]
        _FAMILIES[name] = cls  # type: ignore[assignment]
        return cls

    return deco


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def get_family(name: str) -> type["ArchSpec"]:
    if name not in _FAMILIES:
        raise UnknownNameError(f"family {name!r} is not registered; known families: {list_families()}")
    return _FAMILIES[name]


def check_int(owner: str, field: str, value: Any, lo: int, hi: int | None = None, multiple: int = 1) -> None:
    """Raises :class:`SpecError` unless ``value`` is an int in ``[lo, hi]`` and a multiple of ``multiple``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    ok = ok and value % multiple == 0
    if not ok:
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        mult = f", a multiple of {multiple}" if multiple > 1 else ""
        raise SpecError(f"{owner}.{field}: expected an integer in {rng}{mult}, got {value!r}")


def _from_value(tp: Any, value: Any, where: str) -> Any:
    """Converts JSON data to the annotated type (nested dataclasses, tuples, optionals)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _from_value(args[0], value, where) if len(args) == 1 else value
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return _dataclass_from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return tuple(_from_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def _dataclass_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields) - {"family"}
    if unknown:
        raise SpecError(f"{where}: unknown fields {sorted(unknown)}; accepted: {sorted(fields)}")
    kwargs = {k: _from_value(hints[k], v, f"{where}.{k}") for k, v in data.items() if k in fields}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required fields
        raise SpecError(f"{where}: {exc}") from None


class ArchSpec:
    """Base of all architecture specs: frozen dataclasses that round-trip through JSON.

    Subclasses are registered with :func:`register_family`; their JSON carries a ``family`` field so
    :func:`load_spec` reads any family.
    """

    family: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {"family": self.family, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchSpec":
        family = data.get("family", cls.family)
        if cls.family and family != cls.family:
            raise SpecError(f"spec.family: expected {cls.family!r}, got {family!r}")
        return _dataclass_from_dict(cls, data, f"{cls.family} spec")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> "ArchSpec":
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def layout(self) -> tuple[str, list[str], list[tuple[Any, ...]]]:
        """A title, column names and rows describing the architecture (``archsearch show`` and
        ``solve`` print it). The default lists the scalar fields; families override it with their
        stage or block tables."""
        rows = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if isinstance(getattr(self, f.name), (int, float, str, bool))]
        return self.family, ["field", "value"], rows


def spec_from_dict(data: dict[str, Any]) -> ArchSpec:
    """Reads a spec of any registered family from its dict (dispatching on ``family``)."""
    if not isinstance(data, dict) or "family" not in data:
        raise SpecError(f"spec: expected a JSON object with a 'family' field (one of {list_families()})")
    return get_family(data["family"]).from_dict(data)


def load_spec(path_or_text: str | Path) -> ArchSpec:
    """Loads a spec from a JSON file path or a JSON string.

    A file holding a solve result (``candidates.json``) is accepted too: its first candidate is read.
    """
    text = str(path_or_text)
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise SpecError(f"spec: file not found: {text}")
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec: not valid JSON ({exc})") from None
    if isinstance(data, dict) and "candidates" in data and "family" not in data:
        if not data["candidates"]:
            raise SpecError("spec: the file holds a solve result with no candidates")
        data = data["candidates"][0]["spec"]
    return spec_from_dict(data)
