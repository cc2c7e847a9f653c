"""Three `archsearch worker` processes on one study in a real PostgreSQL server, one SIGKILLed mid-trial.

The fixture starts Debian's PostgreSQL as the ``postgres`` user on a free loopback port, in a data
directory under /tmp (pytest's tmp_path sits under a root-only directory the server cannot enter),
and removes everything at teardown. CI installs ``postgresql`` (.ci/run), so this test runs there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from _search_helpers import check_exactly_once, three_workers_one_killed


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    from _postgres import bin_dir as find_bin_dir, postgres_server

    bin_dir = find_bin_dir()
    root = os.geteuid() == 0
    if bin_dir is None:
        if root:  # CI runs as root and .ci/run installs the server: never skip silently there
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) and not root to install them")
    with postgres_server(max_connections=50) as url:
        yield url


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
