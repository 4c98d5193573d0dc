"""Engines, sessions and schema migrations for the registry database (SQLite or PostgreSQL).

``make_engine`` turns a URL into an engine tuned for its backend, ``session_scope`` is the one managed
transaction, ``upgrade`` applies the alembic migrations in ``migrations/`` (no alembic.ini needed),
and ``ensure_schema`` / ``check_schema`` refuse to run against a database older than this code.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from shared.errors import InvalidParameter, KilnError, Unavailable

if TYPE_CHECKING:
    from alembic.config import Config

SCHEMA_REVISION = "0004"
"""The alembic revision this code reads and writes: the head of ``migrations/versions``."""
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The alembic script location, inside the installed package."""
BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another writer's lock before giving up."""
CONNECT_TIMEOUT_S = 10
"""How long to wait for a PostgreSQL server to answer."""
_PG_MIGRATION_LOCK = 0x6B696C6E  # "kiln": advisory lock that keeps two upgraders from racing
_READ_ONLY = "kiln_read_only"  # execution option: this transaction only reads
_ALEMBIC_LOCK = threading.Lock()  # alembic's `context` is a module global: one upgrade per process at a time


class SchemaOutOfDate(KilnError):
    """The database schema is not the one this kiln expects (run ``kiln db upgrade``)."""

    code = "SCHEMA_OUT_OF_DATE"
    exit_code = 1


# -- engines ----------------------------------------------------------------------------------------
def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` / ``postgres://`` get the psycopg 3 driver; ``~`` is expanded."""
    try:
        url = make_url(url)
    except ArgumentError:
        raise InvalidParameter(f"not a database URL: {url!r} (try sqlite:///path.db or "
                               "postgresql+psycopg://user@host/db)") from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database and url.database.startswith("~"):
        url = url.set(database=str(Path(url.database).expanduser()))
    return url


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``. Nothing connects yet; the first failure to connect raises Unavailable.

    SQLite: foreign keys on, WAL journal, a busy timeout, the parent directory created, and every
    transaction started with ``BEGIN IMMEDIATE`` except on ``reader(engine)`` (plain deferred ``BEGIN``:
    with WAL, readers never wait for a writer). PostgreSQL: ``postgresql+psycopg://``, pre-ping.
    """
    url = normalize_url(url)
    backend = url.get_backend_name()
    kwargs: dict = {}
    if backend == "sqlite":
        if _is_memory(url):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            if url.query.get("uri") != "true":
                folder = Path(url.database).parent
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise Unavailable(f"cannot create the database folder {folder}: {e.strerror or e}") from None
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
    elif backend == "postgresql":
        kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as e:
        hint = " (pip install 'kiln[postgres]')" if backend == "postgresql" else ""
        raise InvalidParameter(f"no driver for {url.drivername}: module {e.name!r} is not installed{hint}") from None
    except ArgumentError as e:
        raise InvalidParameter(f"cannot use database URL {_shown(url)}: {e}") from None
    if backend == "sqlite":
        _tune_sqlite(engine, wal=not _is_memory(url))
    elif backend == "postgresql":
        _tune_postgresql(engine)
    _report_unavailable(engine)
    return engine


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _tune_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Driver-level autocommit: we send BEGIN ourselves (below), which also makes SAVEPOINT work.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        if wal:
            _use_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, and much faster
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so writers wait their turn (busy timeout) instead of
        # failing when a read-then-write transaction finds its snapshot stale. This is what serialises
        # version numbers on SQLite, where SELECT ... FOR UPDATE does not exist. Read-only transactions
        # begin deferred: in WAL mode they read the last commit and never wait behind a writer.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


def reader(engine: Engine) -> Engine:
    """``engine`` for read-only transactions (deferred on SQLite: they never wait for a writer's lock)."""
    found = engine.__dict__.get("_kiln_reader")
    if found is None:
        found = engine.execution_options(**{_READ_ONLY: True})
        engine.__dict__["_kiln_reader"] = found
    return found


def _tune_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # The registry's queries are short; the planner's cost estimates for search queries over a big
        # registry cross jit_above_cost, and compiling them took longer (~50 ms) than running them.
        # Committed, because SET inside a transaction that rolls back is undone.
        try:
            dbapi_conn.execute("SET jit = off")
            dbapi_conn.commit()
        except Exception:  # a server without JIT (PostgreSQL < 11) has no such setting: nothing to turn off
            dbapi_conn.rollback()


def _use_wal(cur: sqlite3.Cursor) -> None:
    # WAL is stored in the file, so this only switches a new database. Switching needs an exclusive lock
    # that SQLite does not wait for, and several processes may open a new database at once: retry.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _report_unavailable(engine: Engine) -> None:
    where = _shown(engine.url)

    @event.listens_for(engine, "handle_error")
    def _on_error(ctx):
        orig = ctx.original_exception
        if isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig):
            return Unavailable(f"the database at {where} stayed locked by another process "
                               f"for {BUSY_TIMEOUT_S:.0f} s")
        if ctx.connection is None or ctx.is_disconnect:  # could not connect, or the connection dropped
            return Unavailable(f"cannot reach the database at {where}: {_first_line(orig)}")
        return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# -- sessions ---------------------------------------------------------------------------------------
@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back if it raises.

    ``read_only`` sessions must not write: on SQLite they begin deferred and never wait for writers.
    """
    session = Session(reader(engine) if read_only else engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# -- migrations -------------------------------------------------------------------------------------
@contextmanager
def session_or_new(engine: Engine, session: Session | None, *, read_only: bool = False) -> Iterator[Session]:
    """The caller's session (the caller commits), or a new managed one for this call alone."""
    if session is not None:
        yield session
    else:
        with session_scope(engine, read_only=read_only) as own:
            yield own


def alembic_config(url: str | URL | None = None) -> "Config":
    """An alembic Config built in code: script location inside this package, optional database URL.

    For developers: ``alembic.command.revision(alembic_config(url), "message", autogenerate=True)``.
    """
    from alembic.config import Config  # alembic is only needed to migrate; keep read-only starts fast

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url",
                            normalize_url(url).render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def _engine_of(url_or_engine: str | URL | Engine) -> tuple[Engine, bool]:
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return make_engine(url_or_engine), True


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that only one upgrader at a time gets (per process, and across processes)."""
    with _ALEMBIC_LOCK, engine.begin() as conn:  # on SQLite, BEGIN IMMEDIATE already excludes other writers
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        yield conn


def _run_alembic(conn: Connection, revision: str) -> None:
    from alembic import command  # alembic is only needed to migrate; keep read-only starts fast

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def upgrade(url_or_engine: str | URL | Engine, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision`` in one transaction; return the revision now current."""
    engine, owned = _engine_of(url_or_engine)
    try:
        with _migration_transaction(engine) as conn:
            _run_alembic(conn, revision)
        return current_revision(engine)
    finally:
        if owned:
            engine.dispose()


def current_revision(url_or_engine: str | URL | Engine) -> str | None:
    """The alembic revision recorded in the database, or None for a database never migrated."""
    engine, owned = _engine_of(url_or_engine)
    try:
        with reader(engine).connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        if owned:
            engine.dispose()


def schema_status(url_or_engine: str | URL | Engine) -> dict:
    """``{"current": revision or None, "head": SCHEMA_REVISION, "up_to_date": bool}`` for a database."""
    current = current_revision(url_or_engine)
    return {"current": current, "head": SCHEMA_REVISION, "up_to_date": current == SCHEMA_REVISION}


def _known_revisions() -> list[str]:
    return sorted(p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at SCHEMA_REVISION, saying what to run."""
    current = current_revision(engine)
    if current == SCHEMA_REVISION:
        return
    where = _shown(engine.url)
    if current is None:
        raise SchemaOutOfDate(f"the database at {where} has no kiln schema yet: run `kiln db upgrade`")
    if current in _known_revisions():
        raise SchemaOutOfDate(f"the database at {where} is at schema revision {current}, this kiln needs "
                              f"{SCHEMA_REVISION}: run `kiln db upgrade`")
    raise SchemaOutOfDate(f"the database at {where} is at schema revision {current}, newer than this kiln "
                          f"knows ({SCHEMA_REVISION}): upgrade kiln")


def ensure_schema(engine: Engine) -> None:
    """First use: migrate a database that has no tables at all. Otherwise the same as check_schema."""
    current = current_revision(engine)
    if current == SCHEMA_REVISION:
        return
    if current is None:
        with _migration_transaction(engine) as conn:  # decide under the lock: another process may be first
            found = inspect(conn)
            if not found.has_table("alembic_version"):
                tables = sorted(found.get_table_names())
                if tables:
                    raise SchemaOutOfDate(f"the database at {_shown(engine.url)} holds tables but no kiln "
                                          f"schema revision ({', '.join(tables[:5])}...): is it kiln's?")
                _run_alembic(conn, "head")
    check_schema(engine)
