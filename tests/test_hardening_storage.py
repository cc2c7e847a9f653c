"""Hostile input to every command, part B (issue 17): output paths, study databases, storage URLs, runs that
must not be lost, passwords that must not be shown or stored.

Every case calls the CLI's ``main(argv)`` in-process and asserts: an exit code in {0, 1, 2} (2 for bad
input), no traceback, a one-line message naming what was wrong, and every file that existed before
byte-identical afterwards unless writing it is the command's job. The ``slow`` part SIGKILLs ``validate``
and ``worker`` at random points and checks that no finished trial is lost or duplicated.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from archsearch.cli.main import main
from archsearch.study.storage import STORAGE_ENV, check_url, mask_command, mask_text, mask_url

SECRET = "S3cr3t-pw"
RUN_NAME = "hardening-run"
SPACE = "deepmad-cifar"


# -- helpers -------------------------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(code: int, out: str, err: str, *, expect: int | None = 2, needle: str | None = None) -> None:
    """Exit code in {0, 1, 2}, no traceback, no password; a failure is one line starting ``error:``."""
    assert code in (0, 1, 2), (code, err)
    if expect is not None:
        assert code == expect, err
    assert "Traceback" not in err and "Traceback" not in out, err
    assert SECRET not in out and SECRET not in err, err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    if needle is not None:
        assert needle in err, err


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file below ``roots``: its sha256 (a link or special file: its kind)."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if path.is_symlink() or not path.exists():
                continue
            mode = path.stat().st_mode
            if stat.S_ISREG(mode):
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif not stat.S_ISDIR(mode):
                found[str(path)] = f"special {stat.S_IFMT(mode)}"
    return found


def _tiny_run(root: Path) -> Path:
    """A real run directory (``archsearch baseline --out``), seconds-free."""
    out = root / "run"
    assert main(["baseline", "--space", SPACE, "--budget", "macs=5M", "--name", RUN_NAME, "--out", str(out),
                 "--format", "json"]) == 0
    return out


def _valid_study(path: Path, candidate: str) -> None:
    """An Optuna study database with one completed validation trial of ``candidate`` (no training: the
    metrics are given)."""
    from archsearch.study import ValidationStudy

    study = ValidationStudy(name=RUN_NAME, storage=f"sqlite:///{path}")
    attrs = {"name": candidate, "family": "cnn", "dataset": "digits", "recipe": "quick", "seed": 0, "macs": 1000,
             "params": 100, "score": 1.0, "epochs": 1, "design": "d0", "kind": "designed"}
    trial = study.start("k0", attrs)
    study.finish(trial, {"top1": 0.5, "top5": 0.9, "test_loss": 1.0, "latency_ms": None, "train_time_s": 1.0,
                         "images_per_s": 10.0, "peak_memory_bytes": None, "epochs": 1, "device": "cpu", "amp": "off"})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template")
    run = _tiny_run(root)
    _valid_study(root / "valid.db", json.loads((run / "candidates.json").read_text())["candidates"][0]["spec"]["name"])
    return root


@pytest.fixture
def run_dir(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    shutil.copytree(template / "run", tmp_path / "run")
    (tmp_path / "file").write_text("a user's file\n")
    (tmp_path / "dir").mkdir()
    capsys.readouterr()
    return tmp_path / "run"


# -- 1. output paths: checked before any work, one line naming the option ---------------------------------
BAD_DIRS = {"file": "file", "dev-null": "/dev/null", "proc": "/proc/archsearch-nope/out", "under-a-file": "file/sub"}
BAD_FILES = {"dir": "dir", "dev-null": "/dev/null", "proc": "/proc/archsearch-nope.out", "under-a-file": "file/sub.out"}

# (command line with {P} for the path, flag named in the error); all would solve, train or download first
DIR_COMMANDS = {
    "solve": (["solve", "--space", SPACE, "--budget", "macs=5M", "--out", "{P}"], "--out"),
    "baseline": (["baseline", "--space", SPACE, "--budget", "macs=5M", "--out", "{P}"], "--out"),
    "sample": (["sample", "--space", SPACE, "--budget", "macs=5M", "-n", "2", "--out", "{P}"], "--out"),
    "search": (["search", "--space", SPACE, "--budget", "macs=5M", "--out", "{P}", "--device", "cpu"], "--out"),
    "search-ckpt": (["search", "--space", SPACE, "--budget", "macs=5M", "--checkpoint-dir", "{P}"], "--checkpoint-dir"),
    "worker-ckpt": (["worker", "--study", "s", "--storage", "sqlite:///run/study.db", "--checkpoint-dir", "{P}"],
                    "--checkpoint-dir"),
    "validate-data": (["validate", "run", "--data-dir", "{P}", "--device", "cpu"], "--data-dir"),
    "teacher": (["teacher", "--model", "timm:resnet18", "--random-weights", "--out", "{P}"], "--out"),
    "prune": (["prune", "--model", "timm:vit_tiny_patch16_224", "--budget", "macs=1G", "--out", "{P}"], "--out"),
}
FILE_COMMANDS = {
    "pareto": (["pareto", "run", "--out", "{P}"], "--out"),
    "report": (["report", "run", "-o", "{P}"], "--out"),
}
PATH_CASES = [(f"{c}/{p}", argv, flag, path) for c, (argv, flag) in DIR_COMMANDS.items() for p, path in BAD_DIRS.items()] + \
             [(f"{c}/{p}", argv, flag, path) for c, (argv, flag) in FILE_COMMANDS.items() for p, path in BAD_FILES.items()]


@pytest.mark.parametrize("case, argv, flag, path", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_a_bad_output_path_is_one_line_before_any_work(case: str, argv: list[str], flag: str, path: str, run_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(run_dir.parent, Path("/dev/null"))
    code, out, err = run(capsys, [a.replace("{P}", path) for a in argv])
    assert_clean(code, out, err, needle=flag)
    assert snapshot(run_dir.parent, Path("/dev/null")) == before  # nothing written, nothing left behind


def test_report_leaves_no_temporary_file_when_writing_fails(run_dir: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the check (here the rename) removes the temporary file and keeps the old report."""
    Path("out").mkdir()
    Path("out/report.html").write_text("<html>the report of yesterday</html>")
    before = snapshot(run_dir.parent)

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    assert_clean(*run(capsys, ["report", "run", "-o", "out/report.html"]), needle="out/report.html: No space left on device")
    assert snapshot(run_dir.parent) == before and sorted(p.name for p in (run_dir.parent / "out").iterdir()) == ["report.html"]


# -- 2. study databases: damaged, empty, foreign, missing; read-only commands never write ---------------
def _damaged(path: Path, kind: str, valid: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 40)
    elif kind == "header-only":
        path.write_bytes(b"SQLite format 3\x00" + b"\x07" * 200)
    elif kind == "foreign":
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
            con.execute("INSERT INTO invoices VALUES (1, 99.5)")
        con.close()
    elif kind == "corrupt":  # a real study with every page after the first overwritten
        data = bytearray(valid.read_bytes())
        data[4096:] = b"\xa5" * (len(data) - 4096)
        path.write_bytes(bytes(data))


DB_KINDS = ("empty", "garbage", "header-only", "foreign", "corrupt")
READERS = {
    "results": ["results", "run"],
    "pareto": ["pareto", "run", "--format", "json"],
    "report": ["report", "run", "-o", "r.html"],
}
WRITERS = {
    "validate": ["validate", "run", "--device", "cpu", "--epochs", "1", "--max-batches", "1", "--no-latency"],
    "worker": ["worker", "--study", RUN_NAME, "--storage", "sqlite:///run/study.db", "--device", "cpu", "--no-wait"],
}
DB_CASES = [(f"{c}/{k}", argv, k) for c, argv in {**READERS, **WRITERS}.items() for k in DB_KINDS
            if not (c == "validate" and k == "empty")]  # validate's job is to fill an empty database


@pytest.mark.parametrize("case, argv, kind", DB_CASES, ids=[c[0] for c in DB_CASES])
def test_an_unusable_study_database_is_one_line_and_stays_byte_identical(case: str, argv: list[str], kind: str, run_dir: Path,
                                                                       template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _damaged(run_dir / "study.db", kind, template / "valid.db")
    before = snapshot(run_dir.parent)
    code, out, err = run(capsys, argv)
    assert_clean(code, out, err, needle="study.db")
    assert "no validated candidates" not in err  # a damaged database is never passed off as "not validated"
    assert snapshot(run_dir.parent) == before


@pytest.mark.parametrize("command", list(READERS))
def test_read_only_commands_leave_a_valid_study_byte_identical_and_create_none(command: str, run_dir: Path, template: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, READERS[command])  # no study.db: nothing validated, none created
    assert_clean(code, out, err, expect=2 if command == "results" else 0)
    assert not (run_dir / "study.db").exists()
    shutil.copy(template / "valid.db", run_dir / "study.db")
    before = snapshot(run_dir)
    code, out, err = run(capsys, READERS[command])
    assert_clean(code, out, err, expect=0)
    assert snapshot(run_dir) == before
    if command == "results":
        assert "50.00" in out  # the trial's top-1
    if command == "pareto":
        assert json.loads(out)[0]["seeds"] == 1 and json.loads(out)[0]["top1"] == 0.5


# -- 3. storage URLs -------------------------------------------------------------------------------------
URLS = {
    "unknown-scheme": ("bogus://x", "unknown database 'bogus'"),
    "not-a-url": ("just some words", "not a storage URL"),
    "empty": ("", "not a storage URL"),
    "unknown-driver": (f"postgresql+nodriver://u:{SECRET}@h/db", "unknown postgresql driver"),
    "missing-sqlite-dir": ("sqlite:///no/such/dir/x.db", "x.db"),
    "refused": (f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:1/db", "cannot connect"),
    "bad-port": (f"postgresql+psycopg2://u:{SECRET}@h:notaport/db", "not a valid URL"),
    "port-range": (f"postgresql+psycopg2://u:{SECRET}@h:99999/db", "not a valid URL"),
    "bad-ipv6": (f"postgresql+psycopg2://u:{SECRET}@[::1:5432/db", "not a valid URL"),
    "upper-case": ("SQLITE:///x.db", "accepted: sqlite:///PATH"),
    "memory": ("sqlite://", None),
}
if importlib.util.find_spec("pg8000") is None:
    URLS["driver-missing"] = (f"postgresql+pg8000://u:{SECRET}@h/db", "pip install pg8000")
STORAGE_COMMANDS = {
    "results": ["results", "run"],
    "pareto": ["pareto", "run"],
    "report": ["report", "run", "-o", "r.html"],
    "validate": ["validate", "run", "--device", "cpu", "--epochs", "1", "--max-batches", "1", "--no-latency"],
    "worker": ["worker", "--study", "s", "--device", "cpu", "--no-wait"],
    "search": ["search", "--space", SPACE, "--budget", "macs=5M", "--out", "s", "--device", "cpu", "--trials", "1"],
}
URL_CASES = [(f"{c}/{u}", argv, url, needle) for c, argv in STORAGE_COMMANDS.items() for u, (url, needle) in URLS.items()
             # a read-only command with a missing SQLite file has nothing to read; validate and search create it,
             # and worker says the same "no database"
             if not (u in ("missing-sqlite-dir", "memory") and c in ("validate", "search"))]


@pytest.mark.parametrize("case, argv, url, needle", URL_CASES, ids=[c[0] for c in URL_CASES])
def test_a_bad_storage_url_is_one_line_naming_it_with_the_password_masked(case: str, argv: list[str], url: str, needle: str,
                                                                         run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(run_dir.parent)
    code, out, err = run(capsys, [*argv, "--storage", url])
    assert_clean(code, out, err, needle=needle)
    assert "--storage" in err
    assert snapshot(run_dir.parent) == before


def test_the_storage_may_come_from_the_environment(run_dir: Path, template: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_ENV, f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:1/db")
    code, out, err = run(capsys, ["results", "run"])
    assert_clean(code, out, err, needle=f"{STORAGE_ENV} postgresql+psycopg2://u:***@127.0.0.1:1/db: cannot connect")
    code, out, err = run(capsys, ["worker", "--study", "s", "--device", "cpu"])  # --storage not needed
    assert_clean(code, out, err, needle=f"{STORAGE_ENV} postgresql+psycopg2://u:***@127.0.0.1:1/db: cannot connect")
    monkeypatch.setenv(STORAGE_ENV, "bogus://x")
    assert_clean(*run(capsys, ["results", "run"]), needle=f"{STORAGE_ENV} bogus://x: unknown database")
    monkeypatch.setenv(STORAGE_ENV, f"sqlite:///{template / 'valid.db'}")
    code, out, err = run(capsys, ["results", "run"])
    assert_clean(code, out, err, expect=0)
    assert "50.00" in out
    monkeypatch.delenv(STORAGE_ENV)
    assert_clean(*run(capsys, ["worker", "--study", "s"]), needle=STORAGE_ENV)  # neither given: say both ways


@pytest.mark.parametrize("url, masked", [
    (f"postgresql+psycopg2://user:{SECRET}@host:5432/db", "postgresql+psycopg2://user:***@host:5432/db"),
    (f"postgresql://user:p@ss/w{SECRET}@host/db", "postgresql://user:***@host/db"),  # unquoted @ and / in it
    (f"mysql+pymysql://user:{SECRET}@host/db?charset=utf8", "mysql+pymysql://user:***@host/db?charset=utf8"),
    (f"postgresql://user@host/db?password={SECRET}&sslmode=require", "postgresql://user@host/db?password=***&sslmode=require"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("sqlite:////tmp/a:b@c/study.db", "sqlite:////tmp/a:b@c/study.db"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked and SECRET not in mask_url(url)


def test_mask_command_and_text_hide_every_password() -> None:
    argv = ["search", "--storage", f"postgresql://u:{SECRET} with space@h/db", f"--storage=mysql://u:{SECRET}@h/db"]
    text = mask_command(argv)
    assert SECRET not in text and text.startswith("archsearch search --storage") and text.count("***") == 2
    assert SECRET not in mask_text(f"error at postgresql://u:{SECRET}@h/db and mysql://v:{SECRET}@k/db: refused")
    with pytest.raises(Exception, match=r"\*\*\*") as info:
        check_url(f"postgresql+nodriver://u:{SECRET}@h/db")
    assert SECRET not in str(info.value)


# -- 4. nothing lost: an empty solve, another run in --out, atomic run directories ---------------------------
def test_a_solve_that_finds_nothing_is_unsolved_exits_2_and_keeps_the_run(run_dir: Path, capsys: pytest.CaptureFixture[str],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from archsearch.solvers import get_solver
    from archsearch.solvers.base import FEASIBLE, UNSOLVED, SolveResult, SolverStats
    from archsearch.space import Budget, get_space

    empty = SolveResult(FEASIBLE, SPACE, Budget(macs=1), [], 10.0, float("inf"),
                        SolverStats(nodes=7, extra={"stopped": "time_limit"}))
    assert empty.status == UNSOLVED  # no candidate is never "feasible"
    monkeypatch.setattr(get_solver(get_space(SPACE).solver), "solve", lambda self, *a, **k: empty)
    before = snapshot(run_dir.parent)
    for extra in (["--overwrite"], ["--overwrite", "--format", "json"]):  # not even --overwrite replaces a run with nothing
        code, out, err = run(capsys, ["solve", "--space", SPACE, "--budget", "macs=5M", "--time-limit", "0.5",
                                      "--out", "run", *extra])
        assert_clean(code, out, err, needle="no design")
        assert "--time-limit" in err and "nothing was written" in err and out == ""
    code, out, err = run(capsys, ["solve", "--space", SPACE, "--budget", "macs=5M", "--time-limit", "0.5", "--out", "new"])
    assert_clean(code, out, err, needle="no design")
    assert snapshot(run_dir.parent) == before and not Path("new").exists()


def test_another_run_in_out_is_refused_before_the_work_unless_overwrite(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(run_dir.parent)
    for argv in (["solve", "--space", SPACE, "--budget", "macs=6M", "--max-nodes", "5", "--out", "run"],
                 ["sample", "--space", SPACE, "--budget", "macs=5M", "-n", "2", "--out", "run"],
                 ["baseline", "--space", SPACE, "--budget", "macs=6M", "--out", "run"],
                 ["search", "--space", SPACE, "--budget", "macs=5M", "--out", "run", "--device", "cpu"]):
        assert_clean(*run(capsys, argv), needle="--overwrite")
    # prune resumes its own run in --out and has no --overwrite: another run there is refused all the same
    assert_clean(*run(capsys, ["prune", "--model", "timm:vit_tiny_patch16_224", "--budget", "macs=1G", "--out", "run"]),
                 needle="give another --out")
    assert snapshot(run_dir.parent) == before
    # the same run again is no other run
    assert run(capsys, ["baseline", "--space", SPACE, "--budget", "macs=5M", "--name", RUN_NAME, "--out", "run"])[0] == 0
    assert json.loads((run_dir / "candidates.json").read_text())["kind"] == "baseline"
    # --overwrite replaces it, and leaves the folder's other files alone
    (run_dir / "notes.txt").write_text("mine")
    assert run(capsys, ["sample", "--space", SPACE, "--budget", "macs=5M", "-n", "2", "--out", "run", "--overwrite"])[0] == 0
    record = json.loads((run_dir / "candidates.json").read_text())
    assert record["kind"] == "random" and len(record["candidates"]) == 2 and (run_dir / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["dir", "file", "run"]  # no temporary folder or file


def test_a_new_run_directory_appears_whole_or_not_at_all(run_dir: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import archsearch._files as files

    real = os.rename

    def fail(src: Any, dst: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files.os, "rename", fail)
    with pytest.raises(OSError):
        main(["baseline", "--space", SPACE, "--budget", "macs=5M", "--out", "fresh/run"])
    assert [p.name for p in Path("fresh").iterdir()] == []  # no half-written run, no temporary folder
    monkeypatch.setattr(files.os, "rename", real)
    assert run(capsys, ["baseline", "--space", SPACE, "--budget", "macs=5M", "--out", "fresh/run"])[0] == 0
    assert sorted(p.name for p in Path("fresh/run").iterdir()) == ["candidates.json", "pareto.csv"]
    assert oct(Path("fresh/run").stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- 5. a real PostgreSQL server: a wrong password, a password never shown or stored ------------------------
@pytest.fixture(scope="module")
def postgres_password_url() -> Iterator[str]:
    """A server that checks passwords (scram-sha-256 on TCP); the URL carries the right one (``SECRET``)."""
    from _postgres import bin_dir, postgres_server

    if bin_dir() is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("psycopg2 is not installed")
    with postgres_server(password=SECRET) as url:
        yield url


def test_postgres_wrong_password_and_no_password_shown_or_stored(postgres_password_url: str, run_dir: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = postgres_password_url.replace(SECRET, "not-the-password")
    for argv in (["results", "run"], ["pareto", "run"], ["report", "run", "-o", "r.html"],
                 ["validate", "run", "--device", "cpu", "--epochs", "1", "--max-batches", "1", "--no-latency"],
                 ["worker", "--study", "s", "--no-wait"],
                 ["search", "--space", SPACE, "--budget", "macs=5M", "--out", "s", "--enqueue-only", "--trials", "1"]):
        code, out, err = run(capsys, [*argv, "--storage", wrong])
        assert_clean(code, out, err, needle="authentication failed")
        assert "not-the-password" not in err and "no validated candidates" not in err
    assert not Path("s").exists()  # the search failed before its solve
    # the right password: a search enqueues, and neither its output nor its files show the password
    code, out, err = run(capsys, ["search", "--space", SPACE, "--budget", "macs=5M", "--out", "s", "--enqueue-only",
                                  "--trials", "1", "--storage", postgres_password_url])
    assert_clean(code, out, err, expect=0)
    assert "archsearch worker" in err and "***" in err
    for path in Path("s").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert "***" in json.loads((Path("s") / "candidates.json").read_text())["provenance"]["command"]
    # from the environment: the hints name no URL at all
    monkeypatch.setenv(STORAGE_ENV, postgres_password_url)
    code, out, err = run(capsys, ["search", "--space", SPACE, "--budget", "macs=5M", "--out", "s", "--enqueue-only",
                                  "--trials", "1", "--format", "json"])
    assert_clean(code, out, err, expect=0)
    assert json.loads(out)["resumed"] and "***" in json.loads(out)["storage"]
    code, out, err = run(capsys, ["results", "s"])
    assert_clean(code, out, err, expect=2, needle="no completed trial")


# -- 6. killed at random points, run again: every finished trial kept, none duplicated (slow) ---------------
def _completed(db: Path) -> dict[str, list[tuple[int, float]]]:
    """Completed trials by candidate key, read with sqlite3 (no engine of this process outlives the read)."""
    if not db.is_file() or db.stat().st_size == 0:
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        if not {"trials", "trial_user_attributes", "trial_values"} <= {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
            return {}  # killed while the tables were being created
        rows = con.execute("SELECT t.number, a.value_json, v.value FROM trials t JOIN trial_user_attributes a ON "
                           "a.trial_id = t.trial_id AND a.key = 'key' LEFT JOIN trial_values v ON v.trial_id = t.trial_id "
                           "WHERE t.state = 'COMPLETE' ORDER BY t.number").fetchall()
    out: dict[str, list[tuple[int, float]]] = {}
    for number, key, value in rows:
        out.setdefault(json.loads(key), []).append((number, value))
    return out


def _kill_ten_times(start: Any, db: Path, seed: int, longest: float) -> dict[str, tuple[int, float]]:
    """Starts a process 10 times and SIGKILLs it after a random time; after each kill, every trial completed
    before is still there with its number and value, and no key is completed twice."""
    import random
    import signal
    import time

    rng = random.Random(seed)
    seen: dict[str, tuple[int, float]] = {}
    for _ in range(10):
        proc = start()
        time.sleep(rng.uniform(0.05, longest))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        done = _completed(db)
        assert all(len(v) == 1 for v in done.values()), f"a candidate was completed twice: {done}"
        assert all(done.get(k) == [v] for k, v in seen.items()), "a finished trial was lost or changed"
        seen.update({k: v[0] for k, v in done.items()})
    return seen


@pytest.mark.slow
def test_validate_killed_at_10_random_points_then_rerun_keeps_every_finished_trial_once(tmp_path: Path) -> None:
    import multiprocessing as mp

    from _search_helpers import _worker_process
    from _train_helpers import one_thread, tiny_spec, write_run

    import archsearch.models  # noqa: F401  (imported once here, inherited by the forked runs)
    from archsearch.train import get_dataset

    one_thread()
    get_dataset("digits", seed=0, resolution=16)
    run = write_run(tmp_path / "run", [tiny_spec(name=f"c{i}", width=16 + 8 * i) for i in range(4)])
    argv = ["validate", str(run), "--device", "cpu", "--epochs", "2", "--max-batches", "4", "--no-latency", "--threads", "1",
            "--format", "json"]

    def start() -> Any:
        proc = mp.get_context("fork").Process(target=_worker_process, args=(argv, str(tmp_path / "validate.log")), daemon=True)
        proc.start()
        return proc

    seen = _kill_ten_times(start, run / "study.db", seed=17, longest=3.0)
    final = start()
    final.join(timeout=300)
    assert final.exitcode == 0, (tmp_path / "validate.log").read_text()
    done = _completed(run / "study.db")
    assert len(done) == 4 and all(len(v) == 1 for v in done.values())
    assert all(done[k] == [v] for k, v in seen.items())  # finished before a kill: kept, never trained again


@pytest.mark.slow
def test_worker_killed_at_10_random_points_then_rerun_keeps_every_finished_trial_once(tmp_path: Path) -> None:
    from _search_helpers import plan, start_worker
    from _train_helpers import one_thread

    import archsearch.models  # noqa: F401
    from archsearch.train import get_dataset

    one_thread()
    get_dataset("digits", seed=0, resolution=16)
    run = tmp_path / "run"
    p = plan(run, storage=None, trials=4, study="kill-ten", epochs=2, max_batches=4)
    assert p.enqueued == 4
    seen = _kill_ten_times(lambda: start_worker(p.storage, p.study, tmp_path / "worker.log"), run / "study.db", seed=23,
                           longest=3.0)
    again = plan(run, storage=None, trials=4, study="kill-ten", epochs=2, max_batches=4)  # the search re-run
    assert again.resumed
    final = start_worker(p.storage, p.study, tmp_path / "worker.log")
    final.join(timeout=300)
    assert final.exitcode == 0, (tmp_path / "worker.log").read_text()
    done = _completed(run / "study.db")
    assert sorted(done) == sorted(a["key"] for a in p.proposals) and all(len(v) == 1 for v in done.values())
    assert all(done[k] == [v] for k, v in seen.items())


def test_search_checks_its_default_run_directory_too(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("runs").write_text("a file where runs/ would go\n")
    before = snapshot(run_dir.parent)
    assert_clean(*run(capsys, ["search", "--space", SPACE, "--budget", "macs=5M", "--device", "cpu"]), needle="--out")
    assert snapshot(run_dir.parent) == before


def _interrupted_write(db: Path) -> None:
    """A process SIGKILLed in the middle of a transaction: its rollback journal stays beside the database."""
    pid = os.fork()
    if pid == 0:
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("PRAGMA cache_size = 1")  # pages spill into the file, the journal holds the old ones
        con.execute("BEGIN IMMEDIATE")
        for i in range(200):
            con.execute("INSERT INTO study_user_attributes (study_id, key, value_json) VALUES (1, ?, ?)", (f"k{i}", "x" * 3000))
        os._exit(0)
    os.waitpid(pid, 0)
    assert Path(f"{db}-journal").stat().st_size > 0


def test_an_interrupted_write_is_rolled_back_by_the_next_writer_never_by_a_reader(run_dir: Path, template: Path,
                                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from archsearch.study import ValidationStudy

    shutil.copy(template / "valid.db", run_dir / "study.db")
    _interrupted_write(run_dir / "study.db")
    before = snapshot(run_dir)
    for argv in READERS.values():
        assert_clean(*run(capsys, argv), needle="interrupted")
    assert snapshot(run_dir) == before  # the journal too: only a writer may roll it back
    ValidationStudy(name=RUN_NAME, storage=f"sqlite:///{run_dir / 'study.db'}")  # what validate opens first
    assert not Path(f"{run_dir / 'study.db'}-journal").exists()
    code, out, err = run(capsys, ["results", "run"])
    assert_clean(code, out, err, expect=0)
    assert "50.00" in out  # the committed trial survived, the interrupted transaction did not


def test_a_password_in_an_old_runs_provenance_never_reaches_the_report(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs written before passwords were masked carry one in provenance.command; the report masks it again."""
    record = json.loads((run_dir / "candidates.json").read_text())
    record["provenance"]["command"] = f"archsearch search --storage postgresql://u:{SECRET}@db/x --out run"
    (run_dir / "candidates.json").write_text(json.dumps(record))
    code, out, err = run(capsys, ["report", "run", "-o", "r.html"])
    assert_clean(code, out, err, expect=0)
    html = Path("r.html").read_text()
    assert SECRET not in html and "postgresql://u:***@db/x" in html


def test_the_real_entry_point_masks_and_answers_in_one_line(run_dir: Path) -> None:
    """``python -m archsearch`` in its own process: the same one line, exit 2, no password, no traceback."""
    import sys

    env = {**os.environ, STORAGE_ENV: f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:1/db"}
    proc = subprocess.run([sys.executable, "-m", "archsearch", "results", "run"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert_clean(proc.returncode, proc.stdout, proc.stderr, needle="cannot connect")
    proc = subprocess.run([sys.executable, "-m", "archsearch", "report", "run", "-o", "/dev/null"], capture_output=True,
                          text=True, timeout=120)
    assert_clean(proc.returncode, proc.stdout, proc.stderr, needle="not a regular file")
