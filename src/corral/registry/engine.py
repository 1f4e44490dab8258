"""Opening the registry database: SQLite pragmas, write transactions, migrations.

At their defaults pysqlite and SQLAlchemy start a transaction lazily, at the first write, so a
read-modify-write can interleave with another process and lose an update silently. Every write
here therefore runs in ``BEGIN IMMEDIATE`` (the write lock is taken up front, waiting at most
the busy timeout), and reads run in a plain ``BEGIN`` snapshot.
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DatabaseError

from corral.errors import RegistryError
from corral.registry.schema import SCHEMA_REVISION, lease, metadata

BUSY_TIMEOUT_S = 60.0


def _sqlite_engine(path: Path, begin: str) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        pool_size=2,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def open_engines(path: Path) -> tuple[Engine, Engine]:
    """(writer, reader) engines on the registry file, migrated to the code's schema."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
    writer = _sqlite_engine(path, "BEGIN IMMEDIATE")
    reader = _sqlite_engine(path, "BEGIN")
    try:
        if stored_revision(reader) != SCHEMA_REVISION:
            _migrate(writer, path)
    except DatabaseError as exc:  # locked, unreadable, or not a database at all
        raise RegistryError(f"cannot open registry {path}: {exc.orig}") from exc
    return writer, reader


def stored_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'")
        ).first()
        if not exists:
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])


def _is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM sqlite_master LIMIT 1")).first() is None


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
    with open(path.with_suffix(".migrate.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stored_revision(engine) == SCHEMA_REVISION:
            return
        if _is_empty(engine):
            _create_fresh(engine)
            return
        _upgrade(engine, path)


def upgrade_with_alembic(engine: Engine, path: Path) -> None:
    """Run the versioned migrations to head (used for existing registries, and by tests)."""
    with open(path.with_suffix(".migrate.lock"), "w") as lock:
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
