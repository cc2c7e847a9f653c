"""The command line's arguments, checked before any work and any heavy import.

* :class:`Parser`: argparse with one-line errors (``archsearch solve: error: ...; see archsearch solve
  --help``) and the closest choice suggested for a mistyped one.
* :data:`NUMBERS`: the accepted range of every numeric option, one table for all subcommands, so that
  0, negative, NaN, infinite and absurdly large values get the same message: the flag, the range, the
  value received.
* :func:`check_names`: registered names (space, dataset, recipe, ...) looked up in torch-free registries
  (milliseconds), so that a typo costs no torch import.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from typing import Any, NamedTuple, NoReturn

from archsearch.errors import SpecError

__all__ = ["NUMBERS", "PATHS", "Number", "Parser", "check_names", "check_numbers", "check_paths"]

SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's seed range


def _num(value: float) -> str:
    """``1e6`` for a large power of ten, the exact integer otherwise (``4294967295``), else ``%g``."""
    if value == int(value):
        text = str(int(value))
        return f"1e{len(text) - 1}" if len(text) > 6 and text.rstrip("0") == "1" else text
    return f"{value:g}"


class Number(NamedTuple):
    """The accepted range of a numeric option: ``lo`` <= value <= ``hi`` (strict where ``*_open``)."""

    flag: str
    integer: bool
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def rule(self) -> str:
        if self.integer:
            return f"an integer >= {_num(self.lo)} and <= {_num(self.hi)}"
        low = f"> {_num(self.lo)}" if self.lo_open else f">= {_num(self.lo)}"
        high = f"< {_num(self.hi)}" if self.hi_open else f"<= {_num(self.hi)}"
        return f"a finite number {low} and {high}"

    def accepts(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below


# argparse destination -> range; an option of the same name means the same in every subcommand
NUMBERS: dict[str, Number] = {n.flag.lstrip("-").replace("-", "_"): n for n in (
    Number("--top-k", True, 1, 10**6),
    Number("--max-nodes", True, 1, 10**9),
    Number("--time-limit", False, 0, 1e7, lo_open=True),
    Number("--gap-tol", False, 0, 1, hi_open=True),
    Number("--rho", False, 0, 100, lo_open=True),
    Number("--resolution", True, 8, 4096),
    Number("--seed", True, 0, SEED_MAX),
    Number("-n", True, 1, 10**5),
    Number("--batch", True, 1, 2**16),
    Number("--threads", True, 1, 4096),
    Number("--samples", True, 1, 10**6),
    Number("--runs", True, 1, 10**6),
    Number("--rounds", True, 1, 10**4),
    Number("--models", True, 1, 10**5),
    Number("--eval-every", True, 1, 10**6),
    Number("--epochs", True, 1, 10**6),
    Number("--max-batches", True, 1, 10**9),
    Number("--topk", True, 1, 10**5),
    Number("--batch-size", True, 1, 2**20),
    Number("--trials", True, 1, 10**5),
    Number("--sweep-points", True, 0, 4),
    Number("--heartbeat", True, 1, 86400),
    Number("--grace-period", True, 1, 10**6),
    Number("--poll", False, 0, 86400, lo_open=True),
    Number("--max-trials", True, 1, 10**9),
    Number("--every", True, 1, 10**9),
    Number("--steps", True, 1, 10**6),
    Number("--eta", False, 0, 1e6),
    Number("--prune-lr", False, 0, 10, lo_open=True),
    Number("--prune-batch-size", True, 1, 2**20),
)}


def check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option given (or defaulted) within its range of :data:`NUMBERS`.

    Raises:
        SpecError: The first option out of range, naming the flag, the range and the value.
    """
    for dest, number in NUMBERS.items():
        value = getattr(args, dest, None)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not number.accepts(value):
            shown = repr(value) if len(repr(value)) <= 30 else repr(value)[:27] + "..."
            raise SpecError(f"{number.flag}: expected {number.rule()}, got {shown}")


# argparse destination -> what the path is called in messages
PATHS = {"source": "run", "run": "run", "runs": "run", "spec": "spec", "out": "--out", "data_dir": "--data-dir",
         "checkpoint_dir": "--checkpoint-dir", "distill": "--distill", "checkpoint": "--checkpoint", "model": "--model",
         "profile": "--profile"}


def check_paths(args: argparse.Namespace) -> None:
    """Every path argument one the operating system can look up: no NUL byte, no name longer than 255
    bytes, at most 4095 bytes in all (else ``os.stat`` itself raises, far from the argument's name).

    Raises:
        SpecError: The first path that is not, naming the argument.
    """
    for dest, what in PATHS.items():
        values = getattr(args, dest, None)
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str):
                continue
            shown = repr(value if len(value) <= 40 else value[:37] + "...")
            raw = os.fsencode(value)
            if b"\x00" in raw:
                raise SpecError(f"{what} {shown}: a path with a NUL byte; expected a file or directory path")
            if len(raw) > 4095 or any(len(part) > 255 for part in raw.split(b"/")):
                raise SpecError(f"{what} {shown}: path too long; expected names of at most 255 bytes, 4095 in all")


def check_names(args: argparse.Namespace) -> None:
    """The registered names a command was given, looked up before any heavy import (torch, timm, optuna):
    ``--space``, ``--latency-space``, ``--dataset``, ``--recipe``, ``--budget``, and the form of ``--device``.

    Raises:
        UnknownNameError: A name that is not registered (the message suggests the closest ones).
        ArchsearchError: A malformed budget or an ``imagefolder:`` dataset without a folder.
    """
    from archsearch.space import get_space

    device = getattr(args, "device", None)
    if isinstance(device, str) and not re.fullmatch(r"auto|cpu|cuda(:[0-9]{1,3})?", device):
        raise SpecError(f"--device: expected auto, cpu, cuda or cuda:N, got {device[:40]!r}")
    if isinstance(device, str) and device.startswith("cuda") and not _may_have_cuda():
        raise SpecError(f"--device {device}: no CUDA device is available (no NVIDIA driver on this machine); "
                        "use --device cpu or auto")

    for dest in ("space", "latency_space"):
        name = getattr(args, dest, None)
        if isinstance(name, str):
            get_space(name)
    if isinstance(getattr(args, "budget", None), str):
        from archsearch.space import Budget

        Budget.parse(args.budget)
    if isinstance(getattr(args, "dataset", None), str):
        from archsearch.train.datasets import check_dataset

        check_dataset(args.dataset)
    if isinstance(getattr(args, "recipe", None), str):
        from archsearch.train.recipes import get_recipe

        get_recipe(args.recipe)
    model = getattr(args, "model", None)
    if isinstance(model, str) and model.startswith("timm:"):  # last: it may have to import timm once
        check_timm_name(model[5:], source=model)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and a suggestion for a mistyped choice or subcommand."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        sys.stderr.write(f"{self.prog}: error: {text}; see `{self.prog} --help`\n")
        sys.exit(2)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{hint}; choose from {', '.join(choices)}")
        super()._check_value(action, value)


def _may_have_cuda() -> bool:
    """Whether a CUDA device may exist, told without importing torch: on Linux the NVIDIA driver shows in
    ``/proc/driver/nvidia`` or as ``/dev/nvidia*`` (WSL2: ``/dev/dxg``); macOS has no CUDA; elsewhere torch
    decides later."""
    import glob

    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia*")) or os.path.exists("/dev/dxg")
    return True


def timm_model_names() -> list[str] | None:
    """The installed timm's registered model names without importing it (which imports torch: ~5 s) when a
    list for this timm version has been saved (``$XDG_CACHE_HOME/archsearch`` or ``~/.cache/archsearch``);
    otherwise timm is imported once and the list saved. ``None`` when timm is not installed."""
    from importlib import metadata
    from pathlib import Path

    try:
        version = metadata.version("timm")
    except metadata.PackageNotFoundError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "archsearch"
    path = root / f"timm-{re.sub(r'[^0-9A-Za-z.+-]', '_', version)}-models.json"
    if path.is_file():
        from archsearch._jsonio import read_json
        from archsearch.errors import ArchsearchError

        try:
            data = read_json(path, what="timm model list", expect_object=False)
            if isinstance(data, list) and data and all(isinstance(x, str) for x in data):
                return data
        except ArchsearchError:  # a damaged list is made again
            pass
    import timm

    names = list(timm.list_models())
    try:
        import json

        from archsearch._files import atomic_write_text

        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(names))
    except OSError:  # a read-only home: the next check imports timm again
        pass
    return names


def check_timm_name(name: str, *, source: str) -> None:
    """Refuses an unknown timm model name in one line, with the closest ones, before torch is imported."""
    names = timm_model_names()
    if names is not None and name not in names:
        from archsearch.errors import did_you_mean

        raise SpecError(f"--model {source}: not a timm model{did_you_mean(name, names)} (see timm.list_models())")
