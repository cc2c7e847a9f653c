"""Tables that fit (issue 19): names are never cut ("…") however narrow the terminal; off a terminal a table
takes the width it needs, so a log keeps every row on one line."""

from __future__ import annotations

import re

import pytest

from archsearch.cli._output import print_table

NAMES = ["deepmad-cifar-macs20M-params500K-baseline-uniform", "tinyvit-contraction-params5M-macs1.3G"]


def _table() -> None:
    print_table("runs", ["run", "objective", "score", "macs", "params", "description"],
                [(n, "top1-vs-macs-and-params", "1234.5678", "20.00M", "500.0K", "a long free text " * 6) for n in NAMES])


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_off_a_terminal_every_row_is_one_line_with_whole_names(capsys: pytest.CaptureFixture[str]) -> None:
    _table()
    out = _plain(capsys.readouterr().out)
    assert "…" not in out
    for name in NAMES:
        (line,) = [ln for ln in out.splitlines() if name in ln]
        assert "top1-vs-macs-and-params" in line and "a long free text" in line


@pytest.mark.parametrize("width", [60, 80, 120])
def test_on_a_narrow_terminal_names_stay_whole_and_the_rest_wraps(width: int, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import rich.console

    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(rich.console.Console, "is_terminal", property(lambda self: True))
    _table()
    out = _plain(capsys.readouterr().out)
    assert "…" not in out
    for name in NAMES + ["top1-vs-macs-and-params"]:
        assert name in out  # on one line, not folded
