"""The registry's write transactions take SQLite's write lock when they begin, and a BEGIN that
cannot get it fails as SQLAlchemy's OperationalError (which the retry and full-disk handling
expect), not as the driver's bare error."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from corral.registry import engine as registry_engine
from corral.registry.driver import sqlite3


def _other_writer(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=0, isolation_level=None)  # (fails at once if busy)


def test_a_write_transaction_holds_the_write_lock_from_its_begin(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    writer, reader = registry_engine.open_engines(path)
    other = _other_writer(path)
    try:
        # nothing written yet: BEGIN IMMEDIATE alone took the lock
        with writer.begin(), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("COMMIT")
        with reader.begin() as conn:  # a reader's plain BEGIN takes no write lock
            other.execute("BEGIN IMMEDIATE")
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            other.execute("COMMIT")
    finally:
        other.close()
        writer.dispose()
        reader.dispose()


def test_a_begin_that_cannot_get_the_lock_is_sqlalchemys_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_engine, "BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "registry.db"
    writer, reader = registry_engine.open_engines(path)
    other = _other_writer(path)
    try:
        other.execute("BEGIN IMMEDIATE")
        with (
            pytest.raises(sqlalchemy.exc.OperationalError, match="locked") as caught,
            writer.begin(),
        ):
            pass
        assert isinstance(caught.value.orig, sqlite3.OperationalError)
        other.execute("ROLLBACK")
        with writer.begin() as conn:  # the failed BEGIN left the pooled connection usable
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        other.close()
        writer.dispose()
        reader.dispose()
