"""Budgets: hard limits on MACs, parameters, latency and peak activation memory.

The text grammar (one for every command that takes a budget)::

    macs=4.13G,params=25.55M,latency=3ms,memory=50M,flops=4.13G

Counts (``macs``, ``params``, ``memory``, ``flops``) take a decimal K/M/G/T suffix or a bare number;
``latency`` takes a number with ``us``, ``ms`` or ``s``. ``memory`` is peak activation memory
in bytes (float32, batch 1). ``flops`` is the DeepMAD reference code's count of a CNN backbone
(:func:`archsearch.cost.cnn.deepmad_flops`: conv MACs plus BatchNorm, ReLU and residual terms), the
unit of the DeepMAD paper's budgets; only the DeepMAD solver takes it.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
import math
import re
from typing import Any, Iterator

from archsearch.errors import BudgetError

__all__ = ["Budget", "parse_count", "parse_latency", "format_count", "BUDGET_KEYS", "MAX_COUNT", "MAX_LATENCY_MS"]

BUDGET_KEYS = ("macs", "params", "latency", "memory", "flops")
_COUNT_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_LATENCY_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?"


#: Largest count accepted in a budget (1e18 MACs is a million times the largest published vision model).
MAX_COUNT = 10**18
#: Largest latency accepted, in milliseconds (about eleven days).
MAX_LATENCY_MS = 1e9
_COUNT_RULE = "a positive whole count in [1, 1e18] with an optional K, M, G or T suffix (e.g. 4.13G, 200K, 5000000)"
_LATENCY_RULE = f"a positive time of at most 1e9 ms with a unit in {sorted(_LATENCY_UNIT_MS)} (e.g. 3ms)"


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_count(field: str, text: str) -> int:
    """Parses ``4.13G``, ``25.55M``, ``512K`` or ``1000000`` into an integer count, exactly.

    Raises:
        BudgetError: Not a number with a known suffix, not a whole count (``4.6``), or outside
            ``[1, MAX_COUNT]``.
    """
    m = re.fullmatch(rf"\s*({_NUMBER})\s*([A-Za-z]*)\s*", text)
    if m is None or m.group(2).upper() not in _COUNT_SUFFIX:
        raise BudgetError(f"budget field {field!r}: cannot read {_shown(text)}; expected {_COUNT_RULE}")
    # decimal arithmetic, precise enough for every literal the length check lets through: 4.13G is
    # 4130000000 exactly, and 4.6 is refused rather than silently read as 5
    with decimal.localcontext(decimal.Context(prec=200, Emax=10**6, Emin=-10**6)):
        try:
            value = decimal.Decimal(m.group(1)) * int(_COUNT_SUFFIX[m.group(2).upper()])
        except decimal.DecimalException:  # an exponent beyond 1e1000000
            value = decimal.Decimal(0)
        if len(m.group(1)) > 100 or not 1 <= value <= MAX_COUNT:
            raise BudgetError(f"budget field {field!r}: {_shown(text)} is out of range; expected {_COUNT_RULE}")
        if value != value.to_integral_value():
            raise BudgetError(f"budget field {field!r}: {_shown(text)} is {value.normalize():f}, not a whole count; "
                              f"expected {_COUNT_RULE}")
    return int(value)


def parse_latency(text: str) -> float:
    """Parses ``3ms``, ``250us`` or ``0.01s`` into milliseconds."""
    m = re.fullmatch(rf"\s*({_NUMBER})\s*([a-zA-Z]*)\s*", text)
    if m is None or m.group(2) not in _LATENCY_UNIT_MS:
        raise BudgetError(f"budget field 'latency': cannot read {_shown(text)}; expected {_LATENCY_RULE}")
    value = float(m.group(1)) * _LATENCY_UNIT_MS[m.group(2)]
    if not (math.isfinite(value) and 0 < value <= MAX_LATENCY_MS):
        raise BudgetError(f"budget field 'latency': {_shown(text)} is out of range; expected {_LATENCY_RULE}")
    return value


def format_count(value: float | int | None, unit: str = "") -> str:
    """Formats a count with a K/M/G suffix (``4130000000`` -> ``4.13G``)."""
    if value is None:
        return "-"
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}{unit}"
    return f"{value:.4g}{unit}"


@dataclasses.dataclass(frozen=True)
class Budget:
    """Hard limits; ``None`` means unconstrained.

    Attributes:
        macs: Multiply-accumulates of one forward pass at batch 1.
        params: Parameter count.
        latency_ms: Latency at batch 1 on the calibrated device, in milliseconds.
        memory: Peak activation memory in bytes (float32, batch 1).
        flops: The DeepMAD reference code's FLOPs of the backbone (CNN spaces of the DeepMAD solver).
    """

    macs: int | None = None
    params: int | None = None
    latency_ms: float | None = None
    memory: int | None = None
    flops: int | None = None

    def __post_init__(self) -> None:
        for name in ("macs", "params", "memory", "flops"):
            value = getattr(self, name)
            if value is None:
                continue
            whole = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value == int(value))
            if isinstance(value, bool) or not whole or not 1 <= value <= MAX_COUNT:
                raise BudgetError(f"budget field {name!r}: must be a positive whole count of at most 1e18, "
                                  f"got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.latency_ms is not None:
            if isinstance(self.latency_ms, bool) or not isinstance(self.latency_ms, (int, float)) or not (
                math.isfinite(self.latency_ms) and 0 < self.latency_ms <= MAX_LATENCY_MS
            ):
                raise BudgetError("budget field 'latency': must be a positive time of at most 1e9 ms, "
                                  f"got {self.latency_ms!r}")
            object.__setattr__(self, "latency_ms", float(self.latency_ms))

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """Parses the budget grammar; see the module docstring."""
        if not text or not text.strip():
            raise BudgetError(f"budget: empty; expected key=value pairs with keys {list(BUDGET_KEYS)}")
        values: dict[str, Any] = {}
        for item in text.split(","):
            if not item.strip():
                raise BudgetError(f"budget: empty field in {_shown(text)}; expected key=value pairs separated by single "
                                  f"commas, keys in {list(BUDGET_KEYS)}")
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            if not sep:
                raise BudgetError(f"budget: cannot read {item.strip()!r}; expected key=value with keys {list(BUDGET_KEYS)}")
            if key not in BUDGET_KEYS:
                raise BudgetError(f"budget: unknown key {key!r}; accepted keys are {list(BUDGET_KEYS)}")
            if key in values or (key == "latency" and "latency_ms" in values):
                raise BudgetError(f"budget: key {key!r} given twice")
            if key == "latency":
                values["latency_ms"] = parse_latency(raw)
            else:
                values[key] = parse_count(key, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> "Budget":
        return dataclasses.replace(self, **changes)

    def items(self) -> Iterator[tuple[str, float]]:
        """Yields the set limits as ``(key, value)`` with the grammar's keys (latency in ms)."""
        for key, attr in (("macs", "macs"), ("params", "params"), ("latency", "latency_ms"), ("memory", "memory"),
                          ("flops", "flops")):
            value = getattr(self, attr)
            if value is not None:
                yield key, value

    def is_empty(self) -> bool:
        return next(self.items(), None) is None

    def to_text(self) -> str:
        parts = []
        for key, value in self.items():
            parts.append(f"latency={value:g}ms" if key == "latency" else f"{key}={format_count(value)}")
        return ",".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["flops"] is None:  # files and keys written before the field existed stay unchanged
            del data["flops"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Budget":
        if not isinstance(data, dict):
            raise BudgetError(f"budget: expected an object with fields macs, params, latency_ms, memory, flops, "
                              f"got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise BudgetError(f"budget: unknown fields {sorted(unknown)}; accepted are macs, params, latency_ms, memory, flops")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Budget":
        return cls.from_dict(json.loads(text))
