"""Study storages: URLs checked before anything opens them, shown and recorded with passwords masked, opened
read-only by the commands that only read, and every failure one line naming the storage.

A storage is an SQLAlchemy URL of a database Optuna's ``RDBStorage`` supports (``sqlite:///PATH``,
``postgresql+psycopg2://USER:PASSWORD@HOST/DB``, ``mysql+pymysql://...``). :data:`STORAGE_ENV` gives the
URL where ``--storage`` is not given, so that a password never has to be on a command line (where ``ps``,
shell histories and the run's provenance would see it).

Read-only opens (``results``, ``report``, ``pareto``) never create or migrate anything: an SQLite file is
opened in SQLite's read-only mode, and the study tables must already be there. Write opens (``validate``,
``search``, ``prune``) create Optuna's tables in an empty database, never in a file of another application.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote, unquote

from archsearch.errors import StorageError

__all__ = ["STORAGE_ENV", "check_storage", "check_url", "is_storage_error", "mask_command", "mask_text", "mask_url", "open_rdb",
           "sqlite_path", "storage_errors", "storage_url"]

#: Environment variable holding the storage URL where ``--storage`` is not given.
STORAGE_ENV = "ARCHSEARCH_STORAGE"

# dialect -> (default driver, {driver: (module, pip package)}): the databases Optuna's RDBStorage supports
_DRIVERS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "sqlite": ("pysqlite", {"pysqlite": ("sqlite3", "(the standard library's sqlite3)")}),
    "postgresql": ("psycopg2", {"psycopg2": ("psycopg2", "psycopg2-binary"), "psycopg": ("psycopg", "'psycopg[binary]'"),
                                "pg8000": ("pg8000", "pg8000")}),
    "mysql": ("mysqldb", {"mysqldb": ("MySQLdb", "mysqlclient"), "pymysql": ("pymysql", "pymysql"),
                          "mysqlconnector": ("mysql.connector", "mysql-connector-python")}),
}
_ACCEPTED = ("sqlite:///PATH, postgresql[+psycopg2|+psycopg|+pg8000]://USER@HOST[:PORT]/DB or "
             "mysql[+mysqldb|+pymysql|+mysqlconnector]://USER@HOST[:PORT]/DB")
_OPTUNA_TABLES = ("studies", "trials", "version_info", "alembic_version")  # what a reader needs
# every table Optuna creates: a file holding only some of them is an interrupted creation, not another application's
_OPTUNA_ALL = frozenset(_OPTUNA_TABLES) | {
    "study_directions", "study_user_attributes", "study_system_attributes", "trial_user_attributes",
    "trial_system_attributes", "trial_params", "trial_values", "trial_intermediate_values", "trial_heartbeats"}
_SQLITE_MAGIC = b"SQLite format 3\x00"

# a URL's userinfo password: up to the last "@" of the URL (an unquoted "@" or "/" in a password must not leak)
_PASSWORD_IN_URL = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>.*)(?=@)", re.S)
_PASSWORD_IN_TEXT = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>\S*)(?=@)")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&\s]*)", re.I)
MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with its password (userinfo or ``password=`` query parameter) replaced by ``***``."""
    text = _PASSWORD_IN_URL.sub(lambda m: m["head"] + MASK, str(url))
    return _PASSWORD_IN_QUERY.sub(lambda m: m["head"] + MASK, text)


def mask_text(text: str) -> str:
    """Every storage URL's password in a message (URLs end at white space) replaced by ``***``."""
    text = _PASSWORD_IN_TEXT.sub(lambda m: m["head"] + MASK, str(text))
    return _PASSWORD_IN_QUERY.sub(lambda m: m["head"] + MASK, text)


def mask_command(argv: Sequence[str], prog: str = "archsearch") -> str:
    """The command line ``prog ARGV...`` as a shell would read it, every URL password masked (each
    argument on its own, so a quoted password with spaces is masked whole)."""
    return " ".join([prog, *(shlex.quote(mask_url(a)) for a in argv)]) if argv else prog


def storage_url(given: str | None) -> str | None:
    """The storage of a command: ``--storage`` when given, else :data:`STORAGE_ENV` when set and not
    empty, else None (the run directory's ``study.db``)."""
    if given is not None:
        return given
    return os.environ.get(STORAGE_ENV) or None


def _parts(url: str, flag: str) -> tuple[str, str]:
    match = re.match(r"([A-Za-z][A-Za-z0-9_]*)(?:\+([A-Za-z0-9_]+))?://", url) if isinstance(url, str) else None
    if match is None:
        raise StorageError(f"{flag} {mask_url(url)!r}: not a storage URL; accepted: {_ACCEPTED}")
    dialect = match.group(1)
    if dialect == "postgres":  # SQLAlchemy 1.4 dropped this alias; say what to write instead
        raise StorageError(f"{flag} {mask_url(url)}: write postgresql://, not postgres://; accepted: {_ACCEPTED}")
    if dialect not in _DRIVERS:
        raise StorageError(f"{flag} {mask_url(url)}: unknown database {dialect!r}; accepted: {_ACCEPTED}")
    default, drivers = _DRIVERS[dialect]
    if dialect == "postgresql" and _sqlalchemy_version() >= (2, 1):
        default = "psycopg"  # SQLAlchemy 2.1's default PostgreSQL driver (psycopg2 before)
    driver = match.group(2) or default
    if driver not in drivers:
        raise StorageError(f"{flag} {mask_url(url)}: unknown {dialect} driver {driver!r}; accepted: "
                           f"{', '.join(f'{dialect}+{d}' for d in drivers)}")
    return dialect, driver


def _sqlalchemy_version() -> tuple[int, ...]:
    from importlib import metadata

    try:
        return tuple(int(p) for p in re.findall(r"\d+", metadata.version("sqlalchemy"))[:2])
    except metadata.PackageNotFoundError:
        return (0,)


def _source(flag: str, url: str) -> str:
    """Where a storage URL came from, for messages: :data:`STORAGE_ENV` when ``--storage`` is the flag and
    the URL is the variable's (a command given neither flag nor URL takes it from there)."""
    return STORAGE_ENV if flag == "--storage" and url and url == os.environ.get(STORAGE_ENV) else flag


def check_url(url: str, *, flag: str = "--storage") -> None:
    """Checks a storage URL without opening it or importing anything heavy: a known database, an
    installed driver, an SQLite path whose folder exists.

    Raises:
        StorageError: Naming ``flag``, the URL (password masked) and what is accepted.
    """
    flag = _source(flag, url)
    dialect, driver = _parts(url, flag)
    module, package = _DRIVERS[dialect][1][driver]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # the parent package of a dotted module is missing
        found = False
    if not found:
        implicit = "" if "+" in url.split("://", 1)[0] else \
            f" ({dialect}:// means {dialect}+{driver} here; name another driver as {dialect}+DRIVER://)"
        raise StorageError(f"{flag} {mask_url(url)}: the database driver {module} is not installed{implicit}; "
                           f"pip install {package}")
    if dialect != "sqlite":
        from urllib.parse import urlsplit

        try:
            port = urlsplit(url).port  # what SQLAlchemy would choke on with a traceback
        except ValueError as exc:
            raise StorageError(f"{flag} {mask_url(url)}: not a valid URL ({exc}); expected "
                               f"{dialect}+{driver}://USER@HOST:PORT/DB with PORT an integer in [1, 65535]") from None
        if port == 0:
            raise StorageError(f"{flag} {mask_url(url)}: port 0; expected an integer in [1, 65535]")
    if dialect == "sqlite":
        if not re.match(r"sqlite(\+\w+)?://(/|$)", url):
            raise StorageError(f"{flag} {mask_url(url)}: expected sqlite:///RELATIVE/PATH or sqlite:////ABSOLUTE/PATH")
        path = sqlite_path(url)
        if path is not None and path.exists() and not path.is_file():
            raise StorageError(f"{flag} {mask_url(url)}: {path} is not a file (a study database is one SQLite file)")


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///PATH`` URL (also SQLite's ``file:`` URI form); None for an in-memory
    database or another database."""
    match = re.match(r"sqlite(?:\+\w+)?:///(.*)$", url, re.S)
    if match is None:
        return None
    db = match.group(1).split("?", 1)[0]
    if db.startswith("file:"):
        db = unquote(db[len("file:"):])
        db = db[2:] if db.startswith("///") else db
    return Path(db) if db and db != ":memory:" else None


def _sqlite_tables(path: Path, flag: str, masked: str, *, readonly: bool) -> set[str]:
    """The tables of an SQLite file, read in SQLite's read-only mode for a reader; a writer's connection
    may roll back what an interrupted write left (SQLite's own recovery), a reader's may not."""
    import sqlite3

    mode = "ro" if readonly else "rw"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode={mode}", uri=True,
                                                timeout=60)) as con:
            return {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        journal = path.with_name(path.name + "-journal")
        if "readonly" in str(exc) and journal.is_file() and journal.stat().st_size:
            raise StorageError(f"{flag} {masked}: a write to {path} was interrupted ({journal.name} is there) and only a "
                               "writer may roll it back; run the command that writes it (e.g. `archsearch validate`) "
                               "again, then read it") from None
        raise StorageError(f"{flag} {masked}: {path} is not a readable SQLite database ({exc})") from None


def _check_sqlite_file(path: Path, flag: str, masked: str, *, must_exist: bool, readonly: bool) -> None:
    if not path.exists():
        if must_exist:
            raise StorageError(f"{flag} {masked}: no database at {path}")
        above = next((a for a in path.absolute().parents if a.exists()), None)
        if above is not None and not above.is_dir():  # a folder to be created must not be a file
            raise StorageError(f"{flag} {masked}: {above} is a file, not a folder to put {path.name} in")
        return
    if not path.is_file():
        raise StorageError(f"{flag} {masked}: {path} is not a file (a study database is one SQLite file)")
    if path.stat().st_size == 0:
        if must_exist:
            raise StorageError(f"{flag} {masked}: {path} is empty (0 bytes), not a study database (an interrupted "
                               "`archsearch validate` can leave one: run it again)")
        return
    with path.open("rb") as file:
        if file.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            raise StorageError(f"{flag} {masked}: {path} is not an SQLite database (damaged, or another kind of file)")
    tables = _sqlite_tables(path, flag, masked, readonly=readonly)
    _check_tables(tables, flag, masked, must_exist=must_exist, where=str(path), file=True)


def _check_tables(tables: set[str], flag: str, masked: str, *, must_exist: bool, where: str, file: bool) -> None:
    """Optuna's tables in a database; an SQLite ``file`` with other tables only belongs to another
    application (a server database may hold several applications' tables)."""
    if "studies" not in tables:
        if tables - _OPTUNA_ALL and file:
            raise StorageError(f"{flag} {masked}: {where} is a database of another application (tables "
                               f"{', '.join(sorted(tables)[:5])}{' ...' if len(tables) > 5 else ''}), not an Optuna study "
                               "database; give another --storage")
        if must_exist:
            raise StorageError(f"{flag} {masked}: {where} holds no Optuna study (no 'studies' table"
                               + ("; its creation was interrupted: run the command that writes it again)" if tables else ")"))
        return
    missing = [t for t in _OPTUNA_TABLES if t not in tables]
    if missing and must_exist:
        raise StorageError(f"{flag} {masked}: {where} is an incomplete Optuna database (no table {', '.join(missing)})")


def open_rdb(url: str, *, readonly: bool = False, create: bool = True, flag: str = "--storage", **kwargs: Any) -> Any:
    """An ``optuna.storages.RDBStorage`` of ``url``.

    Args:
        url: SQLAlchemy URL.
        readonly: Open for reading only: an SQLite file in SQLite's read-only mode; nothing is created
            or migrated, and the database must hold Optuna's tables.
        create: Create Optuna's tables in an empty database (``False``: they must exist, and an SQLite
            file is not created).
        flag: The option named in errors.
        **kwargs: Passed to ``RDBStorage`` (heartbeat settings).

    Raises:
        StorageError: An unknown database or driver, a file that is not an (Optuna) SQLite database, a
            server that refuses the connection or the login.
    """
    check_url(url, flag=flag)
    masked = mask_url(url)
    dialect, driver = _parts(url, flag)
    must_exist = readonly or not create
    path = sqlite_path(url) if dialect == "sqlite" else None
    if path is not None:
        _check_sqlite_file(path, flag, masked, must_exist=must_exist, readonly=readonly)
        if readonly:
            url = f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"
    engine_kwargs = _engine_kwargs(dialect, driver)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with storage_errors(url, flag=flag, masked=masked), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if must_exist and path is None:
            import sqlalchemy as sa

            engine = sa.create_engine(url, **engine_kwargs)
            try:
                tables = set(sa.inspect(engine).get_table_names())
            finally:
                engine.dispose()
            _check_tables(tables, flag, masked, must_exist=True, where="the database", file=False)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=must_exist, **kwargs)


def check_storage(url: str, *, readonly: bool = False, create: bool = True, connect: bool = False,
                  flag: str = "--storage") -> None:
    """What :func:`open_rdb` checks before it opens anything, for a command to call before its work
    starts: the URL, an SQLite file's kind and tables, and with ``connect`` a server's connection and
    login. Creates and changes nothing.

    Raises:
        StorageError: As :func:`open_rdb`.
    """
    check_url(url, flag=flag)
    masked = mask_url(url)
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_file(path, flag, masked, must_exist=readonly or not create, readonly=readonly)
    elif connect and not url.lower().startswith("sqlite"):
        import sqlalchemy as sa

        with storage_errors(url, flag=flag, masked=masked):
            engine = sa.create_engine(url, **_engine_kwargs(*_parts(url, flag)))
            try:
                engine.connect().close()
            finally:
                engine.dispose()


def _engine_kwargs(dialect: str, driver: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if dialect == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}  # wait for the file lock instead of "database is locked"
    elif dialect == "postgresql":
        kwargs["pool_pre_ping"] = True  # a server restart or idle timeout must not kill a long worker
        if driver in ("psycopg2", "psycopg"):
            kwargs["connect_args"] = {"connect_timeout": 15}  # an unreachable host is an error, not a hang
    return kwargs


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc.__cause__ or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    return mask_text(text if len(text) <= 300 else text[:300] + " ...")


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error (SQLAlchemy's, a driver's, Optuna's storage error)."""
    names = {f"{c.__module__}.{c.__name__}" for c in type(exc).__mro__}
    return any(n.startswith(("sqlalchemy.exc.", "psycopg2.", "psycopg.", "pymysql.", "MySQLdb.", "sqlite3."))
               for n in names) or "optuna.exceptions.StorageInternalError" in names


@contextlib.contextmanager
def storage_errors(url: str, *, flag: str = "--storage", masked: str | None = None) -> Iterator[None]:
    """Turns the database errors of the block into one-line :class:`StorageError` s naming the storage."""
    masked = masked or mask_url(url)
    flag = _source(flag, url)
    try:
        yield
    except StorageError:
        raise
    except ImportError as exc:
        raise StorageError(f"{flag} {masked}: the database driver is missing ({mask_text(str(exc))})") from None
    except RuntimeError as exc:
        if "table schema" not in str(exc):
            raise
        raise StorageError(f"{flag} {masked}: {_first_line(exc)}") from None
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        text = _first_line(exc)
        low = text.lower()
        if "password authentication failed" in low or "access denied" in low or "authentication failed" in low:
            what = "authentication failed"
        elif "could not connect" in low or "connection refused" in low or "could not translate host" in low \
                or "timeout expired" in low or "can't connect" in low or "failed: " in low:
            what = "cannot connect"
        elif "readonly" in low or "read-only" in low:
            what = "the database is read-only"
        elif "not a database" in low or "malformed" in low:
            what = "not a readable database"
        else:
            what = "database error"
        raise StorageError(f"{flag} {masked}: {what} ({text})") from None
