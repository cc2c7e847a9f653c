"""Hostile input to every command (issue 17, part A): files that are not what they claim, numbers out of
range, malformed budgets, unknown names. Every case must end with exit code 0, 1 or 2 (1 only for a
verification difference), no traceback, one line of error, and every file that was there before
byte-identical afterwards.

The CLI is called in-process through ``main(argv)``; a few real subprocesses check the console entry
and the CPU time of a usage error (no torch import before the arguments are checked).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch._jsonio import MAX_BYTES, MAX_DEPTH
from archsearch.cli.main import build_parser, main
from archsearch.errors import BudgetError
from archsearch.space import Budget

# ---------------------------------------------------------------------------------------------- harness


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


SUBCOMMANDS = sorted(_subparsers())


def _snapshot(*roots: Path) -> dict[Path, bytes]:
    files = {}
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                files[path] = path.read_bytes()
    return files


class Outcome:
    def __init__(self, rc: int, out: str, err: str) -> None:
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"Outcome(rc={self.rc}, err={self.err!r})"


def call(capsys: pytest.CaptureFixture[str], argv: list[str], *, keep: tuple[Path, ...], writes: tuple[Path, ...] = ()) -> Outcome:
    """Runs ``main(argv)`` and asserts the issue's contract: exit 0/1/2, no traceback, one error line on
    exit 2, every file under ``keep`` byte-identical afterwards except ``writes``."""
    capsys.readouterr()
    before = _snapshot(*keep)
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    result = Outcome(rc, out, err)
    assert rc in (0, 1, 2), (argv, result)
    assert "Traceback" not in err, (argv, result)
    if rc == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "error" in lines[0], (argv, result)
    after = _snapshot(*keep)
    for path, data in before.items():
        if path not in writes:
            assert after.get(path) == data, (argv, f"{path} changed or vanished")
    return result


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *, keep: tuple[Path, ...], needle: str | None = None) -> Outcome:
    result = call(capsys, argv, keep=keep)
    assert result.rc == 2, (argv, result)
    if needle is not None:
        assert needle in result.err, (argv, needle, result)
    return result


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> argparse.Namespace:
    """A workspace: a real run (a baseline, which takes well under a second), its best spec as a file,
    and a cache folder with a saved latency calibration (the files hostile commands must leave alone)."""
    root = tmp_path_factory.mktemp("hostile")
    run = root / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["baseline", "--space", "deepmad-cifar", "--budget", "macs=5M,params=100K", "--out", str(run),
                     "--format", "json"]) == 0
    record = json.loads((run / "candidates.json").read_text())
    spec = root / "spec.json"
    spec.write_text(json.dumps(record["candidates"][0]["spec"]))
    return argparse.Namespace(root=root, run=run, record=record, spec=spec, spec_dict=record["candidates"][0]["spec"])


@pytest.fixture
def keep(ws: argparse.Namespace) -> tuple[Path, ...]:
    """The workspace and the test's latency cache (conftest points ARCHSEARCH_CACHE at a fresh folder)."""
    cache = Path(os.environ["ARCHSEARCH_CACHE"])
    saved = cache / "latency" / "cpu" / "deepmad-cifar.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text('{"a user\'s calibration": true}')
    return ws.run, ws.spec, cache


# ------------------------------------------------------------------------------------ hostile files

_DEEP = 5 * MAX_DEPTH


def _hostile_documents(spec: dict[str, Any]) -> dict[str, bytes]:
    """File contents that are not a spec or a run: encodings, sizes, nesting, numbers, wrong shapes."""
    stage0 = spec["stages"][0]

    def with_spec(**changes: Any) -> bytes:
        return json.dumps({**spec, **changes}).encode()

    def with_stage(**changes: Any) -> bytes:
        return json.dumps({**spec, "stages": [{**stage0, **changes}, *spec["stages"][1:]]}).encode()

    def run(cands: Any, **extra: Any) -> bytes:
        return json.dumps({"status": "feasible", "space": "deepmad-cifar", "candidates": cands, **extra}).encode()

    good = {"spec": spec, "score": 1.0, "macs": 1000, "params": 100}
    return {
        "not-utf8": b"\xff\xfe{\x00}\x00",
        "latin-1": '{"family": "cnn", "name": "caf\xe9"}'.encode("latin-1"),
        "empty": b"",
        "whitespace": b" \n\t \n",
        "binary": bytes(range(256)) * 8,
        "nul-in-json": b'{"family": "cnn"\x00}',
        "truncated": json.dumps(spec).encode()[:-7],
        "deep-list": b"[" * 100_000 + b"]" * 100_000,
        "deep-object": b'{"a": ' * 5000 + b"1" + b"}" * 5000,
        "deep-field": json.dumps({**spec, "name": 1}).encode()[:-1] + b', "x": ' + b"[" * _DEEP + b"]" * _DEEP + b"}",
        "5000-digit-int": b'{"family": "cnn", "resolution": ' + b"9" * 5000 + b"}",
        "5000-digit-int-in-run": b'{"candidates": [{"spec": {}, "score": ' + b"9" * 5000 + b"}]}",
        "top-list": b"[]",
        "top-string": b'"cnn"',
        "top-number": b"3",
        "top-null": b"null",
        "family-list": b'{"family": ["cnn"]}',
        "family-int": b'{"family": 3}',
        "family-unknown": b'{"family": "cnnn"}',
        "family-missing": json.dumps({k: v for k, v in spec.items() if k != "family"}).encode(),
        "stem-string": with_spec(stem="x"),
        "stages-object": with_spec(stages={}),
        "stages-ints": with_spec(stages=[1, 2]),
        "stages-empty": with_spec(stages=[]),
        "resolution-string": with_spec(resolution="32"),
        "resolution-float": with_spec(resolution=32.5),
        "resolution-bool": with_spec(resolution=True),
        "resolution-null": with_spec(resolution=None),
        "resolution-huge": with_spec(resolution=10**30),
        "resolution-1e400": json.dumps({**spec, "resolution": 1}).encode().replace(b'"resolution": 1', b'"resolution": 1e400'),
        "resolution-nan": json.dumps({**spec, "resolution": 1}).encode().replace(b'"resolution": 1', b'"resolution": NaN'),
        "name-number": with_spec(name=5),
        "unknown-field": with_spec(colour="blue"),
        "missing-field": json.dumps({k: v for k, v in spec.items() if k != "stem"}).encode(),
        "kernel-string": with_stage(kernel="3"),
        "kernel-float": with_stage(kernel=3.5),
        "kernel-negative": with_stage(kernel=-3),
        "kernel-huge": with_stage(kernel=10**12),
        "depth-zero": with_stage(depth=0),
        "channels-huge": with_stage(out_channels=10**9, bottleneck=10**9),
        "block-unknown": with_stage(block="k1xk1"),
        "block-list": with_stage(block=["k1kxk1"]),
        "se-string": with_stage(se="yes"),
        "candidates-string": run("x"),
        "candidates-object": run({"spec": spec}),
        "candidates-empty": run([]),
        "candidate-empty": run([{}]),
        "candidate-number": run([1]),
        "candidate-spec-string": run([{"spec": "x", "score": 1.0}]),
        "candidate-spec-empty": run([{"spec": {}, "score": 1.0}]),
        "candidate-spec-bad": run([{**good, "spec": {**spec, "stem": 3}}]),
        "candidate-score-string": run([{**good, "score": "high"}]),
        "candidate-score-list": run([{**good, "score": [1]}]),
        "candidate-score-nan": run([good]).replace(b'"score": 1.0', b'"score": NaN'),
        "candidate-macs-string": run([{**good, "macs": "1M"}]),
        "candidate-extra-list": run([{**good, "extra": [1]}]),
        "run-provenance-string": run([good], provenance="x"),
        "run-budget-list": run([good], budget=[1]),
        "run-front-ints": run([good], front=[1]),
        "run-space-number": run([good], space=5),
        "run-name-list": run([good], name=["x"]),
        "run-status-number": run([good], status=3),
        "run-proposals-string": run([good], proposals="x"),
    }


def _documents() -> list[str]:
    from archsearch.space import CNNSpec, StageSpec, StemSpec

    spec = CNNSpec(stem=StemSpec(out_channels=8, kernel=3, stride=2),
                   stages=(StageSpec("k1kxk1", in_channels=8, out_channels=16, bottleneck=8, kernel=3, stride=2, depth=1),),
                   resolution=32, num_classes=10, name="s")
    return sorted(_hostile_documents(spec.to_dict()))


DOCUMENTS = _documents()

# runs whose first spec is intact (the damage is elsewhere in the record)
_SPEC_INTACT = ("run-", "candidate-score-", "candidate-macs-", "candidate-extra-")


def _write(folder: Path, name: str, data: bytes, *, as_run: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if as_run:
        (folder / "candidates.json").write_bytes(data)
        return folder
    path = folder / f"{name}.json"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_hostile_file_is_one_line_and_exit_2_for_every_command_that_reads_it(
        name: str, ws: argparse.Namespace, keep: tuple[Path, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _hostile_documents(json.loads(ws.spec.read_text()))[name]
    files = tmp_path / "files"
    spec_file = _write(files, name, data, as_run=False)
    run_dir = _write(files / "run", name, data, as_run=True)
    out = tmp_path / "out"
    keep = (*keep, files)
    for argv in (["show", spec_file], ["show", spec_file, "--space", "deepmad-cifar", "--format", "json"],
                 ["pareto", run_dir], ["pareto", run_dir / "candidates.json", "--format", "csv"],
                 ["results", run_dir], ["report", run_dir, "-o", out / "r.html"],
                 ["validate", run_dir, "--max-batches", "1", "--epochs", "1", "--no-latency"],
                 ["pareto", ws.run, run_dir],
                 # a command that writes a run, pointed at a folder holding this file: refused, the file kept
                 ["baseline", "--space", "deepmad-cifar", "--out", run_dir],
                 ["solve", "--space", "deepmad-cifar", "--budget", "macs=5M,params=100K", "--max-nodes", "1", "--out", run_dir]):
        result = call(capsys, argv, keep=keep)
        if argv[0] == "show" and name.startswith(_SPEC_INTACT):
            assert result.rc in (0, 2), (argv, result)  # `show` reads the first candidate's spec and nothing else
            continue
        if argv[1] == ws.run and name == "candidates-empty":
            assert result.rc == 0, (argv, result)  # merging a run with none is merging the other
            continue
        assert result.rc == 2, (argv, result)
        assert str(spec_file if argv[0] == "show" else run_dir) in result.err, (argv, result)
        assert argv[0] not in ("baseline", "solve") or "--overwrite" in result.err, (argv, result)
    assert not out.exists()


def test_the_issues_examples_name_the_file_the_field_and_what_is_accepted(
        ws: argparse.Namespace, keep: tuple[Path, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        b'{"family": ["cnn"]}': ["family", "expected a string", "cnn"],
        b'{"candidates": [{}]}': ["candidates[0]", "'spec'"],
        b'{"candidates": "x"}': ["candidates", "list", "'x'"],
        b"\xff\xfe": ["not UTF-8"],
        b"[" * 100_000: ["nested too deep", str(MAX_DEPTH)],
        b'{"family": "cnn", "resolution": ' + b"1" * 5000 + b"}": ["5000 digits", "at most"],
    }
    for i, (data, needles) in enumerate(cases.items()):
        path = tmp_path / f"case{i}.json"
        path.write_bytes(data)
        result = refused(capsys, ["show", path], keep=(*keep, tmp_path))
        for needle in [str(path), *needles]:
            assert needle in result.err, (data[:40], needle, result)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path, keep: tuple[Path, ...], capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:  # sparse: no 64 MiB written
        fh.truncate(MAX_BYTES + 1)
    run = tmp_path / "run"
    run.mkdir()
    os.link(big, run / "candidates.json")
    stat = big.stat()
    for argv in (["show", big], ["pareto", run], ["results", run], ["validate", run]):
        result = refused(capsys, argv, keep=keep, needle="MiB")
        assert "bytes" in result.err or "larger" in result.err
    assert big.stat().st_size == stat.st_size and big.stat().st_mtime_ns == stat.st_mtime_ns


def test_a_directory_or_a_device_where_a_file_is_expected(tmp_path: Path, keep: tuple[Path, ...],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.json").mkdir()
    refused(capsys, ["show", tmp_path / "d.json"], keep=keep, needle="directory")
    refused(capsys, ["show", "/dev/null"], keep=keep, needle="/dev/null")
    refused(capsys, ["show", "/no/such/file.json"], keep=keep, needle="not found")


# a valid spec mutated at random: every JSON value in every field, fields dropped and added
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**40), 10**40) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@st.composite
def _mutated_specs(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(spec))
    for _ in range(draw(st.integers(1, 3))):
        stages = data.get("stages") if isinstance(data.get("stages"), list) else []
        inner = [d for d in (data.get("stem"), *stages) if isinstance(d, dict)]
        target = draw(st.sampled_from(inner)) if inner and draw(st.booleans()) else data  # a stage, the stem or the top
        key = draw(st.sampled_from(sorted(target)) | st.text(max_size=6) if target else st.text(max_size=6))
        action = draw(st.sampled_from(["set", "set", "drop"]))
        if action == "drop":
            target.pop(key, None)
        else:
            target[key] = draw(_json_values)
    return data


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_specs_and_runs(data: st.DataObject, ws: argparse.Namespace, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``show`` of a mutated spec and ``pareto`` of a run holding it: exit 0 or 2, never a traceback."""
    spec = data.draw(_mutated_specs(ws.spec_dict))
    text = json.dumps(spec)  # NaN and Infinity included, as Python writes them
    folder = tmp_path / f"m{abs(hash(text))}"
    path = _write(folder, "spec", text.encode(), as_run=False)
    run = _write(folder / "run", "run", json.dumps({**ws.record, "candidates": [{**ws.record["candidates"][0], "spec": spec}]}).encode(),
                 as_run=True)
    for argv in (["show", path, "--format", "json"], ["pareto", run, "--format", "json"]):
        result = call(capsys, argv, keep=(folder,))
        assert result.rc in (0, 2), (argv, result)
        if result.rc == 0:
            json.loads(result.out)


# ----------------------------------------------------------------------------------------- numbers

# the least each command needs to get past argparse (never enough to start real work)
def _minimal(ws: argparse.Namespace, tmp_path: Path) -> dict[str, list[Any]]:
    return {
        "solve": [], "baseline": [], "sample": [], "spaces": [], "calibrate": ["--space", "deepmad-cifar"],
        "pareto": [ws.run], "show": [ws.spec, "--space", "deepmad-cifar"], "validate": [ws.run], "results": [ws.run],
        "teacher": ["--model", "timm:resnet18", "--out", tmp_path / "cache"], "search": ["--space", "deepmad-cifar"],
        "worker": ["--study", "s", "--storage", f"sqlite:///{tmp_path / 'study.db'}"],
        "prune": ["--model", "timm:vit_tiny_patch16_224", "--budget", "macs=1M", "--out", tmp_path / "prune"],
        "report": [ws.run, "-o", tmp_path / "r.html"],
        "tune": ["--space", "deepmad-cifar", "--budget", "macs=5M", "--out", tmp_path / "tune"],
    }


# an argument checked after every number, that no command accepts: a number that passes meets it
_SURE_FAIL = {"solve": ["--space", "no-such-space"], "baseline": ["--space", "no-such-space"],
              "sample": ["--space", "no-such-space"], "calibrate": ["--space", "no-such-space"],
              "search": ["--space", "no-such-space"], "show": ["--space", "no-such-space"],
              "validate": ["--dataset", "no-such-data"], "teacher": ["--dataset", "no-such-data"],
              "prune": ["--dataset", "no-such-data"], "worker": ["--device", "no-such-device"],
              "tune": ["--space", "no-such-space"]}


def _numeric_options() -> list[tuple[str, str, bool]]:
    """(command, flag, integer) of every int or float option of every subcommand, from the parser itself."""
    found = []
    for command, sub in sorted(_subparsers().items()):
        for action in sub._actions:
            if action.type in (int, float) and action.option_strings:
                found.append((command, max(action.option_strings, key=len), action.type is int))
    return found


NUMERIC = _numeric_options()
ZERO_ALLOWED = {"--seed", "--sweep-points", "--eta", "--gap-tol"}
BAD_NUMBERS = ["0", "-1", "-0.5", "nan", "inf", "-inf", "1e400", "9" * 30, "1e30", "abc", "", "1,5", "0x10"]


def test_every_numeric_option_is_covered() -> None:
    assert len(NUMERIC) >= 40 and {c for c, _, _ in NUMERIC} >= {"solve", "validate", "calibrate", "search", "worker", "prune", "teacher"}
    assert all(command in _SURE_FAIL for command, _, _ in NUMERIC), "a new command with numbers needs a sure-fail argument"


@pytest.mark.parametrize("command,flag,integer", NUMERIC, ids=[f"{c}{f}" for c, f, _ in NUMERIC])
def test_bad_numbers_are_refused_naming_the_option(command: str, flag: str, integer: bool, ws: argparse.Namespace,
                                                   keep: tuple[Path, ...], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = [command, *_minimal(ws, tmp_path)[command]]
    for value in BAD_NUMBERS:
        if value == "0" and flag in ZERO_ALLOWED:
            continue
        result = refused(capsys, [*base, f"{flag}={value}", *_SURE_FAIL[command]], keep=keep)
        assert flag in result.err, (flag, value, result)
        if value not in ("abc", "", "1,5", "0x10") and not (integer and value in ("-0.5", "nan", "inf", "-inf", "1e400", "1e30")):
            assert "expected" in result.err and " and <" in result.err, (flag, value, result)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_numbers(data: st.DataObject, ws: argparse.Namespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Any text for any numeric option: either the option is named in the one-line error, or the
    argument checked after it is; never a traceback, never work started."""
    command, flag, integer = data.draw(st.sampled_from(NUMERIC))
    value = data.draw(st.one_of(st.integers(-(10**25), 10**25).map(str), st.floats().map(repr),
                                st.text(max_size=12), st.sampled_from(BAD_NUMBERS)))
    base = [command, *_minimal(ws, tmp_path)[command]]
    result = call(capsys, [*base, f"{flag}={value}", *_SURE_FAIL[command]], keep=(ws.run, ws.spec))
    assert result.rc == 2, result
    try:
        number = float(value.strip()) if not integer else int(value.strip())
    except ValueError:
        number = None
    surely_bad = number is None or not math.isfinite(number) or number < 0 or abs(number) > 1e18 or (
        number == 0 and flag not in ZERO_ALLOWED)
    if surely_bad:
        assert flag in result.err, (value, result)
    else:
        assert flag in result.err or "no-such" in result.err, (value, result)


# ----------------------------------------------------------------------------------------- budgets

BAD_BUDGETS = {
    "macs=1e30": "out of range", "macs=5M,,params=200K": "empty field", "macs=5M,": "empty field",
    "macs=4.6": "not a whole count", "macs=1.5": "not a whole count", "params=2.0000001K": "not a whole count",
    "macs=": "cannot read", "macs=0": "out of range", "macs=-1": "cannot read", "macs=nan": "cannot read",
    "macs=inf": "cannot read", "latency=0ms": "out of range", "latency=1e400ms": "out of range", "latency=3": "cannot read",
    "gflops=1G": "unknown key", "macs=1G,macs=2G": "twice", ",": "empty field", "macs=1G;params=2M": "cannot read",
    "macs=" + "9" * 5000: "out of range", "macs=1e999999999": "out of range", "macs=1e-999999999": "out of range",
    "\x00": "cannot read", "macs=1G\x00": "cannot read", "mäcs=1G": "unknown key", "": "empty",
}
BUDGET_COMMANDS = {"solve": ["--space", "deepmad-cifar"], "baseline": ["--space", "deepmad-cifar"],
                   "sample": ["--space", "deepmad-cifar"], "search": ["--space", "deepmad-cifar"],
                   "prune": ["--model", "timm:vit_tiny_patch16_224", "--out", "{tmp}/prune"]}


@pytest.mark.parametrize("command", sorted(BUDGET_COMMANDS))
def test_malformed_budgets_are_refused_before_any_work(command: str, keep: tuple[Path, ...], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    base = [command, *(str(a).format(tmp=tmp_path) for a in BUDGET_COMMANDS[command])]
    for text, needle in BAD_BUDGETS.items():
        result = refused(capsys, [*base, f"--budget={text}"], keep=keep, needle="budget")
        assert needle in result.err, (text, result)
    assert not (tmp_path / "prune").exists()


def test_a_fractional_count_is_never_rounded_in_the_echo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = refused(capsys, ["solve", "--space", "deepmad-cifar", "--budget", "macs=4.6"], keep=(tmp_path,))
    assert "'4.6'" in result.err and "macs=5" not in result.err
    assert Budget.parse("macs=4.13G,params=25.55M") == Budget(macs=4_130_000_000, params=25_550_000)
    assert Budget.parse("macs=1e18").macs == 10**18


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("macsparmlenytofi=,.:;0123456789eEKMGTus -+\x00é")), max_size=30))
def test_fuzz_budget_text(text: str) -> None:
    """Budget.parse either refuses with a BudgetError or returns whole counts in [1, 1e18] that are the
    decimal value written (no rounding)."""
    try:
        budget = Budget.parse(text)
    except BudgetError as exc:
        assert "budget" in str(exc) and "\n" not in str(exc)
        return
    for key in ("macs", "params", "memory", "flops"):
        value = getattr(budget, key)
        assert value is None or (type(value) is int and 1 <= value <= 10**18)
    assert budget.latency_ms is None or 0 < budget.latency_ms <= 1e9


# ------------------------------------------------------------------------------------ unknown names

UNKNOWN_NAMES = [
    (["solve", "--space", "deepmad-r5"], "deepmad-r50"),
    (["baseline", "--space", "tinyvi"], "tinyvit"),
    (["calibrate", "--space", "deepmad_cifar"], "deepmad-cifar"),
    (["search", "--space", "deepmad-cifar", "--recipe", "quik"], "quick"),
    (["validate", "{run}", "--dataset", "cifar"], "cifar10"),
    (["validate", "{run}", "--dataset", "digit"], "digits"),
    (["validate", "{run}", "--recipe", "standart"], "standard"),
    (["prune", "--model", "timm:x", "--budget", "macs=1M", "--out", "{tmp}/p", "--dataset", "fashion-mnst"], "fashion-mnist"),
    (["solve", "--format", "tabel"], "table"),
    (["slove"], "solve"),
    (["validate", "{run}", "--amp", "bf61"], "bf16"),
    (["show", "{spec}", "--space", "deepmad-cifa"], "deepmad-cifar"),
    (["prune", "--model", "timm:x", "--budget", "macs=1M", "--out", "{tmp}/p", "--latency-space", "nvt"], "nvit"),
]


@pytest.mark.parametrize("argv,suggestion", UNKNOWN_NAMES, ids=[" ".join(a[:2]) + " " + s for a, s in UNKNOWN_NAMES])
def test_unknown_names_suggest_the_closest(argv: list[str], suggestion: str, ws: argparse.Namespace, keep: tuple[Path, ...],
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(run=ws.run, spec=ws.spec, tmp=tmp_path) for a in argv]
    result = refused(capsys, argv, keep=keep)
    assert f"did you mean '{suggestion}'" in result.err, result


def test_a_spec_with_an_unknown_family_suggests_the_closest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.json").write_text('{"family": "tinyvitt"}')
    assert "did you mean 'tinyvit'" in refused(capsys, ["show", tmp_path / "s.json"], keep=(tmp_path,)).err


def test_an_unknown_block_names_its_stage_and_the_closest_block(ws: argparse.Namespace, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = json.loads(ws.spec.read_text())
    spec["stages"][1]["block"] = "k1dk1"
    (tmp_path / "s.json").write_text(json.dumps(spec))
    result = refused(capsys, ["show", tmp_path / "s.json"], keep=(tmp_path,))
    assert "stages[1]" in result.err and "did you mean 'k1dwk1'" in result.err, result


# -------------------------------------------------------------------------- every command, every file

def test_every_subcommand_answers_hostile_arguments(ws: argparse.Namespace, keep: tuple[Path, ...], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Each subcommand with an unknown option, a missing value and a hostile positional: one line, exit 2."""
    minimal = _minimal(ws, tmp_path)
    assert set(minimal) == set(SUBCOMMANDS)
    for command in SUBCOMMANDS:
        refused(capsys, [command, *minimal[command], "--no-such-option"], keep=keep, needle="--no-such-option")
        refused(capsys, [command, *minimal[command], "--format"], keep=keep)
        refused(capsys, [command, *minimal[command], "--format", "yaml"], keep=keep, needle="yaml")
    for command in ("pareto", "results", "validate", "report", "show"):
        for bad in ("/no/such/run", "\x7f", "x" * 300, str(ws.root / "run" / "pareto.csv")):
            refused(capsys, [command, bad], keep=keep)
    for command in ("pareto", "report"):  # a file that is no run is skipped with a note: not before an error
        refused(capsys, [command, ws.run / "pareto.csv", "/no/such/run", "-o" if command == "report" else "--format",
                         tmp_path / "r.html" if command == "report" else "json"], keep=keep, needle="/no/such/run")


# ------------------------------------------------------------------------------------- subprocesses

def _child_cpu(argv: list[str], **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "archsearch", *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.mark.parametrize("argv", [
    ["validate", "{run}", "--dataset", "mnist"],
    ["validate", "{run}", "--seed", "-1"],
    ["validate", "{run}", "--recipe", "nope"],
    ["validate", "/no/such/run"],
    ["search", "--space", "deepmad-cifar", "--dataset", "cifar"],
    ["teacher", "--model", "timm:resnet18", "--out", "{tmp}/t", "--epochs", "0"],
    ["prune", "--model", "timm:x", "--budget", "macs=5M,,params=1K", "--out", "{tmp}/p"],
    ["calibrate", "--space", "deepmad-cifar", "--models", "0"],
    ["prune", "--model", "timm:vit_tiny_patch16_224", "--groups", "emb=0", "--budget", "params=3M", "--out", "{tmp}/p"],
], ids=["dataset", "seed", "recipe", "no-run", "search-dataset", "teacher-epochs", "prune-budget", "calibrate-models",
        "prune-groups"])
def test_a_usage_error_costs_under_a_second_of_cpu(argv: list[str], ws: argparse.Namespace, tmp_path: Path) -> None:
    argv = [a.format(run=ws.run, tmp=tmp_path) for a in argv]
    proc, cpu = _child_cpu(argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert cpu < 1.0, (argv, f"{cpu:.2f} s of CPU for a usage error")


def test_an_unknown_timm_model_costs_under_a_second_once_the_list_is_saved(tmp_path: Path) -> None:
    argv = ["teacher", "--model", "timm:deit_tiny_patch16_22", "--dataset", "digits", "--out", str(tmp_path / "t")]
    first, _ = _child_cpu(argv, XDG_CACHE_HOME=str(tmp_path))  # imports timm once, saves its model list
    proc, cpu = _child_cpu(argv, XDG_CACHE_HOME=str(tmp_path))
    assert first.returncode == proc.returncode == 2 and "did you mean 'deit_tiny_patch16_224'" in proc.stderr
    assert cpu < 1.0, f"{cpu:.2f} s of CPU for an unknown timm model"


def test_hostile_files_in_a_real_process(ws: argparse.Namespace, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_bytes(b"\xff" * 10)
    (tmp_path / "deep.json").write_bytes(b"[" * 200_000)
    for name in ("bad.json", "deep.json"):
        proc, _ = _child_cpu(["show", str(tmp_path / name)])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.startswith("error: spec "), proc.stderr


# ------------------------------------------------------------------------------------ the slow set

@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_specs_and_runs_at_length(data: st.DataObject, ws: argparse.Namespace, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec = data.draw(_mutated_specs(ws.spec_dict))
    text = json.dumps(spec)
    folder = tmp_path / f"m{abs(hash(text))}"
    path = _write(folder, "spec", text.encode(), as_run=False)
    run = _write(folder / "run", "run", json.dumps({**ws.record, "candidates": [{**ws.record["candidates"][0], "spec": spec}]}).encode(),
                 as_run=True)
    for argv in (["show", path, "--verify"], ["pareto", run], ["report", run, "-o", folder / "r.html"]):
        result = call(capsys, argv, keep=(folder,), writes=(folder / "r.html",))
        assert result.rc in (0, 1, 2), (argv, result)


# one document of each kind of damage (each case here loads torch, a dataset and models: seconds)
HEAVY_DOCUMENTS = ["not-utf8", "empty", "binary", "nul-in-json", "truncated", "deep-list", "deep-field", "5000-digit-int",
                   "top-list", "family-list", "stages-object", "resolution-nan", "kernel-string", "missing-field"]


@pytest.mark.slow
@pytest.mark.parametrize("name", HEAVY_DOCUMENTS)
def test_hostile_files_for_the_heavy_readers(name: str, ws: argparse.Namespace, keep: tuple[Path, ...], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Readers behind a torch import: a teacher's spec, a teacher cache header (--distill), a latency calibration."""
    data = _hostile_documents(json.loads(ws.spec.read_text()))[name]
    files = tmp_path / "files"
    spec_file = _write(files, name, data, as_run=False)
    cache = files / "cache"
    cache.mkdir()
    (cache / "header.json").write_bytes(data)
    keep = (*keep, files)
    refused(capsys, ["teacher", "--model", spec_file, "--random-weights", "--out", tmp_path / "t", "--epochs", "1"], keep=keep)
    refused(capsys, ["validate", ws.run, "--distill", cache, "--max-batches", "1", "--epochs", "1", "--no-latency",
                     "--storage", f"sqlite:///{tmp_path / 'study.db'}"], keep=keep)
    from archsearch.cost.latency import latency_model_path

    saved = latency_model_path("deepmad-cifar", "cpu")
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_bytes(data)
    refused(capsys, ["solve", "--space", "deepmad-cifar", "--budget", "macs=5M,latency=3ms", "--max-nodes", "1"],
            keep=(*keep, saved.parent), needle="latency")


@pytest.mark.slow
def test_calibrate_a_grey_image_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by hand while fuzzing: whole models of a 1-channel space (deepmad-fmnist) were timed on 3-channel
    inputs, a RuntimeError after the blocks' timings."""
    cache = Path(os.environ["ARCHSEARCH_CACHE"])
    result = call(capsys, ["calibrate", "--space", "deepmad-fmnist", "--samples", "1", "--models", "1", "--rounds", "1",
                           "--threads", "1", "--format", "json"], keep=(tmp_path,))
    assert result.rc == 0, result
    assert json.loads(result.out)["space"] == "deepmad-fmnist" and (cache / "latency" / "cpu" / "deepmad-fmnist.json").is_file()


def test_cuda_without_a_driver_is_refused_before_torch(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``--device cuda`` on a machine with no NVIDIA driver: one line, exit 2, told without importing torch."""
    from archsearch.cli import _args
    from archsearch.cli.main import main

    monkeypatch.setattr(_args, "_may_have_cuda", lambda: False)
    assert main(["calibrate", "--space", "deepmad-cifar", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda: no CUDA device is available" in err
    monkeypatch.setattr(_args, "_may_have_cuda", lambda: True)  # a driver: torch decides later, not this check
    ns = type("A", (), {"device": "cuda:0"})()
    _args.check_names(ns)


def test_an_unknown_timm_model_is_refused_from_the_saved_list_without_importing_timm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The first check saves the installed timm's model list; later checks read it and never import timm
    (which imports torch); a damaged list is made again."""
    import sys

    from archsearch.cli import _args
    from archsearch.cli.main import main
    from archsearch.errors import SpecError

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    names = _args.timm_model_names()
    saved = list((tmp_path / "archsearch").glob("timm-*-models.json"))
    assert names and "deit_tiny_patch16_224" in names and len(saved) == 1
    monkeypatch.setitem(sys.modules, "timm", None)  # importing timm now fails: the list must do
    _args.check_timm_name("deit_tiny_patch16_224", source="timm:deit_tiny_patch16_224")
    with pytest.raises(SpecError, match="timm:deit_tiny_patch16_22: not a timm model.*did you mean 'deit_tiny_patch16_224'"):
        _args.check_timm_name("deit_tiny_patch16_22", source="timm:deit_tiny_patch16_22")
    assert main(["teacher", "--model", "timm:nope_net", "--dataset", "digits", "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    saved[0].write_bytes(b"\xff\xfe")  # damaged: made again from timm
    monkeypatch.delitem(sys.modules, "timm")
    assert _args.timm_model_names() == names
