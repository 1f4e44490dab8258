"""Opening the registry database: SQLite pragmas, write transactions, migrations.

At their defaults pysqlite and SQLAlchemy start a transaction lazily, at the first write, so a
read-modify-write can interleave with another process and lose an update silently. Every write
here therefore runs in ``BEGIN IMMEDIATE`` (the write lock is taken up front, waiting at most
the busy timeout), and reads run in a plain ``BEGIN`` snapshot.

A full disk is not a broken registry: SQLite's "database or disk is full" (and an I/O error on a
device with no space left) and ``ENOSPC``/``EDQUOT`` become ``StorageFull``, a transient
``RegistryError``, on every statement (SQLAlchemy's ``handle_error`` hook) and in ``open_engines``;
``storage_full`` does the same for callers holding a plain ``sqlite3`` connection.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DatabaseError
from sqlalchemy.pool import PoolProxiedConnection

from corral import modes
from corral.errors import RegistryError, StorageFull
from corral.registry import sqlite_dialect
from corral.registry.driver import sqlite3
from corral.registry.schema import SCHEMA_REVISION, lease, metadata

BUSY_TIMEOUT_S = 60.0
# (as ``corral.sandbox.NO_SPACE``, not imported from there: it would load pydantic for ``ls``)
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
# SQLite reports some ENOSPC failures (growing the -shm, fsync, creating the -wal) as an I/O error
# or "unable to open", without the errno: blame the disk only when the device really is (nearly)
# out of space or inodes, so a genuine I/O error stays a RegistryError.
_SQLITE_MAYBE_FULL = frozenset({10, 14})  # SQLITE_IOERR, SQLITE_CANTOPEN (primary codes)
_LOW_WATER = 1 << 20  # bytes free below which an I/O error is taken for a full disk


def storage_full(exc: BaseException, path: Path) -> StorageFull | None:
    """``StorageFull`` if ``exc`` (from registry access at ``path``) means the disk is full."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return StorageFull(f"no space left on device for the registry at {path}")
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)  # None for errors raised by the module
        primary = None if code is None else code & 0xFF
        if primary == _SQLITE_FULL or (primary in _SQLITE_MAYBE_FULL and _device_full(path)):
            return StorageFull(f"no space left on device for the registry at {path}")
    return None


def _device_full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail  # root may use the reserved blocks
    no_inodes = st.f_files > 0 and (st.f_ffree if os.geteuid() == 0 else st.f_favail) == 0
    return free * st.f_frsize < _LOW_WATER or no_inodes


def _sqlite_engine(path: Path, begin: str) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        pool_size=2,
        module=sqlite3,  # (corral.registry.driver: one SQLite library per process)
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # BEGIN goes to the driver through the dialect's own hook, which SQLAlchemy calls inside
    # its error handling (a busy or full database is wrapped and reaches ``handle_error`` like
    # any statement's). The documented "begin" event with ``exec_driver_sql`` ran the whole
    # statement machinery for it: about a tenth of a one-job submit.
    engine.dialect.do_begin = functools.partial(_begin, begin)  # type: ignore[method-assign]

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # Raising here replaces SQLAlchemy's OperationalError (SQLAlchemy chains it as the cause)
        # for every statement, commit and connect, so no caller has to know about full disks.
        full = storage_full(context.original_exception, path)
        if full is not None:
            raise full from context.original_exception

    return engine


def _begin(statement: str, dbapi_conn: PoolProxiedConnection) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def open_engines(path: Path, writer_begin: str = "BEGIN IMMEDIATE") -> tuple[Engine, Engine]:
    """(writer, reader) engines on the registry file, migrated to the code's schema.
    ``writer_begin="BEGIN"`` (deferred) is how tests prove that the compare-and-set writes
    stay correct where the write lock cannot be taken up front."""
    try:
        modes.makedirs(path.parent)
        if not path.exists():
            path.touch(mode=0o600)
    except OSError as exc:
        raise _os_error(exc, path, "cannot create registry") from exc
    writer = _sqlite_engine(path, writer_begin)
    reader = _sqlite_engine(path, "BEGIN")
    try:
        if stored_revision(reader) != SCHEMA_REVISION:
            _migrate(writer, path)
    except BaseException as exc:
        writer.dispose()
        reader.dispose()
        if isinstance(exc, DatabaseError):  # locked, unreadable, or not a database at all
            raise RegistryError(f"cannot open registry {path}: {exc.orig}") from exc
        if isinstance(exc, OSError):  # the migration lock file
            raise _os_error(exc, path, "cannot open registry") from exc
        raise
    return writer, reader


def _os_error(exc: OSError, path: Path, what: str) -> RegistryError:
    return storage_full(exc, path) or RegistryError(f"{what} {path}: {exc.strerror or exc}")


def stored_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sqlite_dialect.has_table(conn, "alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])


def _is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return sqlite_dialect.is_empty(conn)


def _create_fresh(engine: Engine) -> None:
    """A brand-new registry: the head schema in one transaction, stamped with its revision
    (Alembic's own "create_all, then stamp head"; a test keeps it equal to the migrations)."""
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(lease.insert().values(id=1, epoch=0, released=True))
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": SCHEMA_REVISION})


def _migrate(engine: Engine, path: Path) -> None:
    """Create or upgrade to head; Alembic is imported only for a real upgrade."""
    # A file lock, because ten processes may open a fresh registry at once.
    with open(path.with_suffix(".migrate.lock"), "w", opener=modes.opener) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stored_revision(engine) == SCHEMA_REVISION:
            return
        if _is_empty(engine):
            _create_fresh(engine)
            return
        _upgrade(engine, path)


def upgrade_with_alembic(engine: Engine, path: Path) -> None:
    """Run the versioned migrations to head (used for existing registries, and by tests)."""
    with open(path.with_suffix(".migrate.lock"), "w", opener=modes.opener) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _upgrade(engine, path)


def _upgrade(engine: Engine, path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    try:
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
    except CommandError as exc:  # e.g. a revision this corral does not know: a newer one
        raise RegistryError(
            f"registry {path} is at schema {stored_revision(engine)}, which this corral "
            f"({SCHEMA_REVISION}) cannot migrate: {exc}; upgrade corral"
        ) from exc
    if stored_revision(engine) != SCHEMA_REVISION:
        raise RegistryError(
            f"registry {path} is at schema {stored_revision(engine)}, newer than this corral "
            f"({SCHEMA_REVISION}); upgrade corral"
        )
