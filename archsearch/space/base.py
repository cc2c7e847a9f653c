"""The spec base class, the family registry and the one loader that reads any family's JSON."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

from archsearch._jsonio import describe, expect, expect_number, parse_json, read_json
from archsearch.errors import ArchsearchError, SpecError, UnknownNameError, did_you_mean

__all__ = ["MAX_CLASSES", "ArchSpec", "register_family", "list_families", "get_family", "load_spec", "spec_from_dict", "check_int"]

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
        raise UnknownNameError(f"family {name!r} is not registered{did_you_mean(name, list_families())}; known families: {list_families()}")
    return _FAMILIES[name]


def check_int(owner: str, field: str, value: Any, lo: int, hi: int | None = None, multiple: int = 1) -> None:
    """Raises :class:`SpecError` unless ``value`` is an int in ``[lo, hi]`` and a multiple of ``multiple``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    ok = ok and value % multiple == 0
    if not ok:
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        mult = f", a multiple of {multiple}" if multiple > 1 else ""
        raise SpecError(f"{owner}.{field}: expected an integer in {rng}{mult}, got {value!r}")


#: Most classes of a classifier head (ImageNet-21k has 21,841): a head is built, so an absurd count is memory.
MAX_CLASSES = 100_000
#: Largest magnitude of an integer field (channels, depths, sizes): far above any real network, far below
#: the sizes whose arithmetic would run for minutes.
MAX_INT_FIELD = 10**9


def _scalar(tp: Any, value: Any, where: str) -> Any:
    """``value`` when it is a JSON value of the scalar type ``tp``, else a :class:`SpecError` saying what is accepted."""
    if tp is bool:
        return expect(value, bool, where, "true or false")
    if tp is int:
        expect(value, int, where, "an integer")
        if abs(value) > MAX_INT_FIELD:
            raise SpecError(f"{where}: expected an integer of magnitude at most {MAX_INT_FIELD:.0e}, got {describe(value)}")
        return value
    if tp is float:
        return expect_number(value, where)
    if tp is str:
        return expect(value, str, where, "a string")
    if typing.get_origin(tp) is typing.Literal:
        options = typing.get_args(tp)
        if isinstance(value, bool) or value not in options:
            raise SpecError(f"{where}: expected one of {list(options)}, got {describe(value)}")
        return value
    return value


def _from_value(tp: Any, value: Any, where: str) -> Any:
    """Converts JSON data to the annotated type (nested dataclasses, tuples, optionals), checking each
    value's JSON type so that a wrong one is a :class:`SpecError` naming the field."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _from_value(args[0], value, where) if len(args) == 1 else value
    if dataclasses.is_dataclass(tp):
        expect(value, dict, where, "a JSON object")
        return _dataclass_from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        expect(value, (list, tuple), where, "a list")
        item = args[0] if args else Any
        return tuple(_from_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    return _scalar(tp, value, where)


def _dataclass_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields) - {"family"}
    if unknown:
        raise SpecError(f"{where}: unknown fields {sorted(unknown)}; accepted: {sorted(fields)}")
    missing = sorted(k for k, f in fields.items() if k not in data and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise SpecError(f"{where}: missing fields {missing}; a {cls.__name__} needs {sorted(fields)}")
    kwargs = {k: _from_value(hints[k], v, f"{where}.{k}") for k, v in data.items() if k in fields}
    try:
        return cls(**kwargs)
    except ArchsearchError as exc:  # the class's own check: prefixed with where in the file it is
        raise SpecError(f"{where}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:  # a value the class's own checks did not foresee
        raise SpecError(f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


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
        expect(data, dict, f"{cls.family or 'spec'} spec", "a JSON object")
        family = data.get("family", cls.family)
        if cls.family and family != cls.family:
            raise SpecError(f"spec.family: expected {cls.family!r}, got {family!r}")
        return _dataclass_from_dict(cls, data, f"{cls.family} spec")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        return cls.from_dict(parse_json(text, source=f"{cls.family or 'spec'} JSON"))

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
        raise SpecError(f"spec: expected a JSON object with a 'family' field (one of {list_families()}), got {describe(data)}")
    family = data["family"]
    if not isinstance(family, str):
        raise SpecError(f"spec.family: expected a string, one of {list_families()}, got {describe(family)}")
    return get_family(family).from_dict(data)


def _candidate_spec(data: dict[str, Any], source: str) -> Any:
    """The spec of the first candidate of a solve result (``candidates.json``)."""
    cands = expect(data["candidates"], list, f"{source}: candidates", "a list of candidates")
    if not cands:
        raise SpecError(f"{source}: the file holds a solve result with no candidates")
    first = expect(cands[0], dict, f"{source}: candidates[0]", "an object with a 'spec' object")
    if "spec" not in first:
        raise SpecError(f"{source}: candidates[0] has no 'spec'; expected an object with a 'spec' object")
    return expect(first["spec"], dict, f"{source}: candidates[0].spec", "a spec object")


def load_spec(path_or_text: str | Path) -> ArchSpec:
    """Loads a spec from a JSON file path or a JSON string.

    A file holding a solve result (``candidates.json``) is accepted too: its first candidate is read.

    Raises:
        SpecError: The file or text is not a spec (or solve result) of a registered family; the message
            names the file and the field.
    """
    text = str(path_or_text)
    if text.lstrip().startswith("{"):
        source = "spec"
        data = parse_json(text, source=source)
    else:
        source = f"spec {text}"
        data = read_json(text, what="spec")
    if isinstance(data, dict) and "candidates" in data and "family" not in data:
        data = _candidate_spec(data, source)
    try:
        return spec_from_dict(data)
    except ArchsearchError as exc:
        if source == "spec":
            raise
        raise SpecError(f"{source}: {exc}") from None
