"""Writing the user's files: atomically, with temporaries beside the target that no failure leaves behind.

Standard library only, so that every part of the package may use it (like :mod:`archsearch.errors`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write_text", "new_directory"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder, renamed over ``path``
    when complete: a reader sees the old file or the new one, never half of one, and a failure
    (a full disk, Ctrl-C) removes the temporary file and leaves ``path`` as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make a report unreadable to others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def new_directory(path: str | Path) -> Iterator[Path]:
    """A directory to fill that appears at ``path`` whole or not at all: yields a temporary sibling
    folder, renamed to ``path`` when the block ends without an error, removed when it raises.
    ``path`` must not exist."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700, as mkdir would have made it
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
