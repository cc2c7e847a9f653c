"""Three `archsearch worker` processes on one study in a real PostgreSQL server, one SIGKILLed mid-trial.

The fixture starts Debian's PostgreSQL as the ``postgres`` user on a free loopback port, in a data
directory under /tmp (pytest's tmp_path sits under a root-only directory the server cannot enter),
and removes everything at teardown. CI installs ``postgresql`` (.ci/run), so this test runs there.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from _search_helpers import check_exactly_once, three_workers_one_killed


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bin_dir = _bin_dir()
    root = os.geteuid() == 0
    if bin_dir is None:
        if root:  # CI runs as root and .ci/run installs the server: never skip silently there
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) and not root to install them")
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="archsearch-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if root:
        for path in (base, sock):
            shutil.chown(path, "postgres", "postgres")
    port = _free_port()
    ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True)
        subprocess.run([*ctl, "-w", "-t", "60", "-l", str(base / "server.log"), "-o",
                        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", "start"],
                       check=True, capture_output=True)
        subprocess.run([*as_user, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "archsearch"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/archsearch"
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text() if (base / "server.log").is_file() else ""
        raise RuntimeError(f"{exc.cmd[len(as_user)]} failed: {exc.stderr.decode()[-2000:]}\n{log[-2000:]}") from None
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.train
def test_three_postgres_workers_one_killed_every_proposal_completes_exactly_once(postgres_url: str, tmp_path: Path) -> None:
    out = three_workers_one_killed(postgres_url, tmp_path / "run")
    check_exactly_once(out)
    workers = {t.user_attrs.get("worker") for t in out["trials"]}
    assert len(workers) >= 2  # the queue was shared


def test_claims_are_atomic_on_postgres(postgres_url: str) -> None:
    """Optuna's own pop (SELECT ... FOR UPDATE) and this package's conditional update agree on PostgreSQL."""
    import concurrent.futures as cf

    from archsearch.study import SearchQueue, open_storage

    queue = SearchQueue(name="race-pg", storage=open_storage(postgres_url, heartbeat_interval=1, grace_period=3), create=True)
    assert queue.enqueue([{"key": f"k{i}"} for i in range(30)]) == 30

    def claim_all() -> list[int]:
        q = SearchQueue(name="race-pg", storage=open_storage(postgres_url, heartbeat_interval=1, grace_period=3))
        got = []
        while (trial := q.claim("w")) is not None:
            got.append(trial.number)
            q._release(trial)
        return got

    with cf.ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(lambda _: claim_all(), range(4)))
    assert sorted(n for got in claimed for n in got) == list(range(30))
