"""What the SQLAlchemy side of the registry says differently on SQLite.

``corral.registry.sql`` holds the dialect-neutral constructs that ``rows`` and ``store`` build
queries from; this module teaches SQLAlchemy to compile them for SQLite, and holds the few
statements that only SQLite has (its catalogue, ``PRAGMA data_version``). A PostgreSQL registry
later adds one module beside it (``@compiles(Glob, "postgresql")``, ``information_schema``,
LISTEN/NOTIFY instead of the version probe); nothing above the registry changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from corral.registry.driver import sqlite3
from corral.registry.sql import Glob


@compiles(Glob, "sqlite")
def _glob(element: Glob, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = element.clauses
    return f"{compiler.process(column, **kw)} GLOB {compiler.process(pattern, **kw)}"


def has_table(conn: Connection, name: str) -> bool:
    query = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name")
    return conn.execute(query, {"name": name}).first() is not None


def is_empty(conn: Connection) -> bool:
    """No table, index or view at all (a brand-new file)."""
    return conn.execute(text("SELECT 1 FROM sqlite_master LIMIT 1")).first() is None


class VersionProbe:
    """``PRAGMA data_version`` on a connection of its own: a number that changes whenever
    another connection committed (it is per connection, so the probe must not write)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, timeout=60, check_same_thread=False)

    def version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
