"""Reading the user's JSON files: one reader for every loader, answering any file that is not what it
claims (not UTF-8, empty, binary, huge, nested too deep, a 5000-digit number, the wrong shape) with one
line naming the file and what is accepted, never a traceback.

Standard library only, so that every part of the package may use it (like :mod:`archsearch.errors`).
"""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path
from typing import Any

from archsearch.errors import ArchsearchError, SpecError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "describe", "expect", "expect_number", "parse_json", "read_json"]

#: Largest JSON file read (a run of 1000 candidates is well under 10 MiB).
MAX_BYTES = 64 * 2**20
#: Deepest nesting of objects and arrays accepted (archsearch's own files nest fewer than 10 levels).
MAX_DEPTH = 64
#: Most digits of an integer literal (Python refuses to read more than 4300; no field needs more than 20).
MAX_INT_DIGITS = 100


class _Refused(ValueError):
    """A literal the reader refuses (raised inside ``json.loads``)."""


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {digits} digits; accepted: at most {MAX_INT_DIGITS} digits")
    return int(text)


def describe(value: Any) -> str:
    """A short description of a JSON value for messages: ``a list``, ``the string 'x'``, ``the number 3``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 24 else text[:20] + '...'}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk would itself overflow)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def parse_json(text: str, *, source: str, error: type[ArchsearchError] = SpecError) -> Any:
    """Parses JSON text, refusing what no archsearch file holds.

    Args:
        text: The JSON text.
        source: What the text is, for messages (``spec runs/a/candidates.json``, ``--model-kwargs``).
        error: The error class raised.

    Raises:
        ArchsearchError: (``error``) Not JSON, an integer of more than :data:`MAX_INT_DIGITS` digits, or
            nesting deeper than :data:`MAX_DEPTH`.
    """
    if not text.strip():
        raise error(f"{source}: empty; expected JSON text")
    try:
        data = json.loads(text, parse_int=_parse_int)
    except _Refused as exc:
        raise error(f"{source}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise error(f"{source}: JSON nested too deep; accepted: at most {MAX_DEPTH} levels of objects and lists") from None
    except ValueError as exc:  # e.g. a number the parser cannot convert
        raise error(f"{source}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if _depth(data) > MAX_DEPTH:
        raise error(f"{source}: JSON nested too deep; accepted: at most {MAX_DEPTH} levels of objects and lists")
    return data


def read_json(path: str | Path, *, what: str, expect_object: bool = True, max_bytes: int = MAX_BYTES,
              error: type[ArchsearchError] = SpecError) -> Any:
    """Reads a JSON file that a user handed to a command.

    Args:
        path: The file.
        what: What the file should be, first word of every message (``spec``, ``run``, ``latency file``).
        expect_object: Refuse a file whose top level is not a JSON object.
        max_bytes: Largest size accepted.
        error: The error class raised.

    Raises:
        ArchsearchError: (``error``) Missing, not a regular file, unreadable, larger than ``max_bytes``,
            not UTF-8, empty, not JSON (see :func:`parse_json`), or not an object when one is expected.
    """
    p = Path(path)
    try:
        info = p.stat()
    except FileNotFoundError:
        raise error(f"{what}: file not found: {path}") from None
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise error(f"{what} {path}: is {kind}; expected a JSON file")
    if info.st_size > max_bytes:
        raise error(f"{what} {path}: {info.st_size} bytes; accepted: JSON files of at most {max_bytes // 2**20} MiB")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise error(f"{what} {path}: larger than {max_bytes // 2**20} MiB; accepted: JSON files of at most that")
    if not raw.strip():
        raise error(f"{what} {path}: empty file; expected a JSON {'object' if expect_object else 'document'}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                    f"expected a JSON file") from None
    if "\x00" in text:
        raise error(f"{what} {path}: binary data (NUL bytes); expected a JSON file")
    data = parse_json(text, source=f"{what} {path}", error=error)
    if expect_object and not isinstance(data, dict):
        raise error(f"{what} {path}: expected a JSON object at the top level, got {describe(data)}")
    return data


def expect(value: Any, kind: type | tuple[type, ...], where: str, accepted: str, *, optional: bool = False,
           error: type[ArchsearchError] = SpecError) -> Any:
    """``value`` when it is of ``kind`` (``bool`` is never an ``int``; None passes when ``optional``), else
    ``error`` naming ``where`` (the file and field), what is accepted and what was found."""
    if value is None and optional:
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return value
    raise error(f"{where}: expected {accepted}, got {describe(value)}")


def expect_number(value: Any, where: str, *, optional: bool = False, error: type[ArchsearchError] = SpecError) -> Any:
    """``value`` when it is a finite JSON number (or None when ``optional``), else ``error``."""
    expect(value, (int, float), where, "a number" + (" or null" if optional else ""), optional=optional, error=error)
    if value is not None and not math.isfinite(value):
        raise error(f"{where}: expected a finite number, got {value!r}")
    return value

