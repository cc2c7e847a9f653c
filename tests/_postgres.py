"""A throw-away PostgreSQL server for tests (Debian's ``postgresql``, which ``scripts/install.sh`` installs as root).

The server refuses to run as root, so as root it runs as the ``postgres`` user (``runuser``); it listens on a
free loopback port and a private socket folder, without fsync, and is stopped and removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator


def bin_dir() -> Path | None:
    """The newest installed server's binaries (``/usr/lib/postgresql/N/bin``), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server(*, password: str | None = None, max_connections: int = 100) -> Iterator[str]:
    """Starts a server with a database ``archsearch``; yields its psycopg2 URL (user ``postgres``). With a
    ``password``, TCP logins are checked (scram-sha-256) and the URL carries it; without, they are trusted.
    The caller skips when :func:`bin_dir` is None."""
    binaries = bin_dir()
    assert binaries is not None, "no PostgreSQL server binaries: skip before calling"
    root = os.geteuid() == 0
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="archsearch-pg-"))
    data, sock, pwfile = base / "data", base / "sock", base / "pw"
    sock.mkdir()
    auth = ["-A", "trust"]
    if password is not None:
        pwfile.write_text(password + "\n")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    if root:
        for path in (base, sock, *([pwfile] if password is not None else [])):
            shutil.chown(path, "postgres", "postgres")
    port = free_port()
    ctl = [*as_user, str(binaries / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", *auth, "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True)
        subprocess.run([*ctl, "-w", "-t", "60", "-l", str(base / "server.log"), "-o",
                        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections={max_connections}",
                        "start"], check=True, capture_output=True)
        subprocess.run([*as_user, str(binaries / "createdb"), "-h", str(sock), "-p", str(port), "-U", "postgres",
                        "archsearch"], check=True, capture_output=True)
        user = "postgres" if password is None else f"postgres:{password}"
        yield f"postgresql+psycopg2://{user}@127.0.0.1:{port}/archsearch"
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text() if (base / "server.log").is_file() else ""
        raise RuntimeError(f"{exc.cmd[len(as_user)]} failed: {exc.stderr.decode()[-2000:]}\n{log[-2000:]}") from None
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
