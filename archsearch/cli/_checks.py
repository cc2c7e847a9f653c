"""What a command will write and which storage it will open, checked before its work starts.

One table names every output path of every command; :func:`preflight` checks them all (and the
storage URL) in well under a second, before any solve, training or heavy import, so that a bad path
never costs the whole run and never ends in a traceback after it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from archsearch.errors import SpecError

__all__ = ["OUTPUTS", "check_output", "preflight", "same_run", "check_run_target"]

# command -> (attribute, flag, kind): "run" a run directory, "dir" a folder written in, "file" a file written
# whole, "source" a run the command adds its study and checkpoints to, "cache" a folder that may already hold
# what is needed (a dataset cache on a read-only mount is fine: only its kind is checked)
OUTPUTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "solve": (("out", "--out", "run"),),
    "baseline": (("out", "--out", "run"),),
    "sample": (("out", "--out", "run"),),
    "search": (("out", "--out", "run"), ("checkpoint_dir", "--checkpoint-dir", "dir"), ("data_dir", "--data-dir", "cache")),
    "worker": (("checkpoint_dir", "--checkpoint-dir", "dir"), ("data_dir", "--data-dir", "cache")),
    "tune": (("out", "--out", "dir"), ("data_dir", "--data-dir", "cache")),
    "validate": (("source", "source", "source"), ("data_dir", "--data-dir", "cache")),
    "teacher": (("out", "--out", "dir"), ("data_dir", "--data-dir", "cache")),
    "prune": (("out", "--out", "run"), ("data_dir", "--data-dir", "cache")),
    "pareto": (("out", "--out", "file"),),
    "report": (("out", "--out", "file"),),
}

_WHAT = {"run": "a run directory", "dir": "a directory", "file": "a file", "source": "a run directory",
         "cache": "a directory"}


def _probe(folder: Path, flag: str, value: str) -> None:
    """Creates and removes a temporary file in ``folder``: the one test of writability that also holds
    for root, read-only mounts and /proc."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".archsearch-probe-")
    except OSError as exc:
        raise SpecError(f"{flag}: cannot write in {folder} ({exc.strerror or exc}); give a writable path, got {value!r}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def check_output(flag: str, value: str, kind: str) -> None:
    """Checks an output path before any work: it is of the ``kind`` expected or does not exist yet, and
    the folder it is written in (or created under) is writable.

    Raises:
        SpecError: Naming ``flag``, the value and what is accepted.
    """
    if not value or "\x00" in value:
        raise SpecError(f"{flag}: expected a path of {_WHAT[kind]}, got {value!r}")
    path = Path(value)
    try:
        exists = path.exists()
        if kind == "source":
            if not exists:
                return  # the run's own reader says that there is no run
            path = path if path.is_dir() else path.parent
            kind = "dir"
        if exists:
            if kind in ("run", "dir", "cache"):
                if not path.is_dir():
                    raise SpecError(f"{flag}: {value} exists and is not a directory; give {_WHAT[kind]} (new or existing)")
                return None if kind == "cache" else _probe(path, flag, value)
            if path.is_dir():
                raise SpecError(f"{flag}: {value} is a directory; give the file to write, e.g. "
                                f"{path / ('report.html' if flag == '--out' and kind == 'file' else 'out')}")
            if not path.is_file():
                raise SpecError(f"{flag}: {value} is not a regular file (a device, pipe or socket); give a file path")
            return _probe(path.parent, flag, value)  # its temporary file goes beside it
        above = next((a for a in path.absolute().parents if a.exists()), Path("/"))
        if not above.is_dir():
            raise SpecError(f"{flag}: {above} is a file, not a folder to create {value} in")
        _probe(above, flag, value)
    except OSError as exc:  # a name too long, a loop of links, a permission on the way
        raise SpecError(f"{flag}: cannot use {value!r} ({exc.strerror or exc})") from None


def preflight(args: argparse.Namespace) -> None:
    """Every output path of the command (:data:`OUTPUTS`) and its storage URL (``--storage``, else
    ``ARCHSEARCH_STORAGE``), checked before the command's work; fills ``args.storage`` from the
    environment and notes ``args.storage_from_env``."""
    for attr, flag, kind in OUTPUTS.get(getattr(args, "command", ""), ()):
        value = getattr(args, attr, None)
        if value is not None:
            check_output(flag, str(value), kind)
    if getattr(args, "command", "") == "prune":  # a prune resumes its own run in --out, never replaces another
        check_run_target(args.out, overwrite=False, new={"space": "prune"}, flag=None)
    if hasattr(args, "storage"):
        from archsearch.study.storage import STORAGE_ENV, check_url, storage_url

        given = args.storage
        args.storage = storage_url(given)
        args.storage_from_env = given is None and args.storage is not None
        if args.storage is not None:
            check_url(args.storage, flag=STORAGE_ENV if args.storage_from_env else "--storage")
        elif getattr(args, "command", "") == "worker":
            raise SpecError(f"--storage: give the study's storage URL (e.g. postgresql+psycopg2://USER@HOST/DB, as "
                            f"`archsearch search` prints it) or set {STORAGE_ENV}")


def _specs(record: Any) -> list[Any] | None:
    cands = record.get("candidates") if isinstance(record, dict) else None
    return [c.get("spec") if isinstance(c, dict) else c for c in cands] if isinstance(cands, list) else None


def same_run(old: Any, new: dict[str, Any]) -> bool:
    """Whether a run directory's record ``old`` is the run ``new`` again: the same space, budget, kind and
    candidates (names and provenance may differ)."""
    import json

    new = json.loads(json.dumps(new))  # as it would read back: tuples as lists
    return (isinstance(old, dict) and all(old.get(k) == new.get(k) for k in ("space", "budget", "kind"))
            and _specs(old) == _specs(new))


def _describe(record: Any) -> str:
    if not isinstance(record, dict):
        return "a candidates.json this command did not write"
    from archsearch.space.budget import Budget

    try:
        budget = Budget.from_dict(record["budget"]).to_text()
    except Exception:  # any shape: this only describes what is there
        budget = "?"
    n = len(record["candidates"]) if isinstance(record.get("candidates"), list) else 0
    return f"the run {record.get('name', '?')!r}: {n} candidates of {record.get('space', '?')} at {budget}"


def _read_record(out: Path) -> Any:
    from archsearch._jsonio import read_json
    from archsearch.errors import ArchsearchError

    try:  # the one reader: a file nested 100 000 deep or of 5000-digit numbers is "not a run", not a traceback
        return read_json(out / "candidates.json", what="run", expect_object=False)
    except ArchsearchError:
        return None


def check_run_target(out: str | Path | None, *, overwrite: bool, new: dict[str, Any] | None = None,
                     flag: str | None = "--overwrite") -> None:
    """A run directory may receive a run when it holds none, the same run again, or ``--overwrite`` was given.

    Called twice: before the work with ``new`` holding what is known then (e.g. space, budget, kind: a run
    of other settings is refused before anything is solved), and after it with the whole record.

    Raises:
        SpecError: ``out`` holds another run and ``overwrite`` is false (``flag``: the option that would
            replace it, None for commands without one).
    """
    if out is None or overwrite:
        return
    path = Path(out)
    if not (path / "candidates.json").exists() and not (path / "pareto.csv").exists():
        return
    old = _read_record(path)
    keys = tuple(new) if new is not None and "candidates" not in new else None  # before the work: what is known
    if new is not None and isinstance(old, dict):
        if keys is not None and all(old.get(k) == new.get(k) for k in keys):
            return
        if keys is None and same_run(old, new):
            return
    raise SpecError(f"--out: {out} holds {_describe(old)}; give another --out" + (f", or {flag} to replace it" if flag else "")
                    + ("" if keys is not None or not isinstance(old, dict) else
                       " (this run found other candidates: a time-limited solve depends on the machine)"))
