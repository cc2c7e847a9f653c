"""Numbers for people (archsearch.results.formatting): SI prefixes, three significant digits, grouped integers, durations."""

from __future__ import annotations

import pytest

from archsearch.results import duration, grouped, human


@pytest.mark.parametrize("value, text", [
    (3633900.0, "3.63 M"),  # issue 19's hypervolume, printed 3.6339e+06 before
    (2.7887e+06, "2.79 M"), (23683.0, "23.7 k"), (17711, "17.7 k"), (5.1077e+07, "51.1 M"), (4.13e9, "4.13 G"),
    (2.5e13, "25 T"), (999_999, "1 M"), (999.9, "1 k"), (999.4, "999"), (661.2, "661"), (0.0521, "0.0521"), (0, "0"),
    (-2.5e9, "-2.5 G"), (1e18, "1e+18"), (None, "-"), (float("nan"), "-"), (float("inf"), "-"), ("x", "-"),
])
def test_human(value: object, text: str) -> None:
    assert human(value) == text


def test_human_with_a_unit_and_digits() -> None:
    assert human(0.0041, unit="s") == "4.1 ms" and human(2.5, unit="s") == "2.5 s" and human(1536, unit="B") == "1.54 kB"
    assert human(3633900.0, digits=5) == "3.6339 M" and human(3e-7, unit="s") == "300 ns"


def test_grouped() -> None:
    assert grouped(4071234567) == "4\u202f071\u202f234\u202f567" and grouped(4071234567, sep=",") == "4,071,234,567"
    assert grouped(512) == "512" and grouped(None) == "-" and grouped(25_557_032.0, sep=" ") == "25 557 032"


@pytest.mark.parametrize("seconds, text", [
    (0.008369, "8.37 ms"), (0.5, "500 ms"), (12.34, "12.3 s"), (59.96, "1 min 0 s"), (614.2, "10 min 14 s"),
    (3600, "1 h 00 min"), (7512, "2 h 05 min"), (None, "-"), (float("nan"), "-"),
])
def test_duration(seconds: object, text: str) -> None:
    assert duration(seconds) == text
