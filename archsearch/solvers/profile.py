"""A profile: a program's free constants fitted to a user's data by ``archsearch tune``, with their evidence.

``DIR/profile.json`` holds the space, the constants (:mod:`archsearch.solvers.constants`), the trained
evidence that chose them (the study's best value and how it was measured) and the provenance (the study,
the archsearch version, the time). ``archsearch solve --profile FILE`` solves with its constants; the
run's ``candidates.json`` records the profile, so ``show`` and the reports say which constants made a
design. A profile is an untrusted file: it is read with :func:`archsearch._jsonio.read_json` and every
field is checked, a bad one answered in one line naming it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from archsearch._jsonio import describe, expect, read_json
from archsearch.errors import ArchsearchError, SpecError

__all__ = ["FORMAT", "Profile", "read_profile", "write_profile"]

#: The ``format`` field of a profile file.
FORMAT = "archsearch-profile/1"


@dataclasses.dataclass(frozen=True)
class Profile:
    """Tuned constants of one space's program.

    Attributes:
        space: The space whose program the constants belong to.
        constants: ``solve`` keyword -> value (checked against the program's declared ranges).
        evidence: How the constants were judged (``objective``, ``value``, ``trials``, ``budgets``,
            ``dataset``, ``recipe``, ``epochs``, ...); free-form JSON.
        provenance: Where they came from (``study``, ``storage`` with any password masked, ``archsearch``
            version, ``created``); free-form JSON.
    """

    space: str
    constants: dict[str, Any]
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "space": self.space, "constants": dict(self.constants),
                "evidence": dict(self.evidence), "provenance": dict(self.provenance)}

    def check(self, space: Any | None = None, *, flag: str = "--profile") -> "Profile":
        """The profile with its constants checked against its space's program (or ``space``, which must be
        the profile's): an unknown constant or a value out of range is a one-line error."""
        from archsearch.solvers.constants import check_constants
        from archsearch.space import get_space

        if space is not None and space.name != self.space:
            raise SpecError(f"{flag}: the profile is for space {self.space!r}, not {space.name!r}; tune {space.name} "
                            f"(archsearch tune --space {space.name}) or solve --space {self.space}")
        sp = space if space is not None else get_space(self.space)
        constants = check_constants(sp, self.constants, where=lambda n: f"{flag}: constants.{n}")
        return dataclasses.replace(self, constants=constants)


def read_profile(path: str | Path, *, flag: str = "--profile") -> Profile:
    """Reads and checks a ``profile.json`` (or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "profile.json"
    data = read_json(p, what=flag)
    where = f"{flag} {p}"
    if data.get("format") != FORMAT:
        raise SpecError(f"{where}: format: expected {FORMAT!r} (a profile written by archsearch tune), got "
                        f"{describe(data.get('format'))}")
    space = expect(data.get("space"), str, f"{where}: space", "a space name")
    constants = expect(data.get("constants"), dict, f"{where}: constants", "an object of constant -> value")
    evidence = expect(data.get("evidence", {}), dict, f"{where}: evidence", "an object")
    provenance = expect(data.get("provenance", {}), dict, f"{where}: provenance", "an object")
    from archsearch.space import get_space

    try:
        sp = get_space(space)
    except ArchsearchError as exc:
        raise SpecError(f"{where}: space: {exc}") from None
    return Profile(space, dict(constants), dict(evidence), dict(provenance)).check(sp, flag=where)


def write_profile(path: str | Path, profile: Profile) -> Path:
    """Writes ``profile`` atomically as ``path`` (a directory gets ``profile.json``); returns the file."""
    import json

    from archsearch._files import atomic_write_text

    p = Path(path)
    if p.is_dir() or not p.suffix:
        p.mkdir(parents=True, exist_ok=True)
        p = p / "profile.json"
    atomic_write_text(p, json.dumps(profile.to_dict(), indent=2, sort_keys=False) + "\n")
    return p
