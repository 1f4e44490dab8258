"""A registry file's whole content, to compare before and after a command (the schema and every
row of every table, in a stable order). ``Connection.iterdump`` would do, but the ``sqlean``
module that ``corral.registry.driver`` prefers does not have it."""

from __future__ import annotations

from pathlib import Path

from corral.registry.driver import sqlite3


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
        ).fetchall()
        lines = [sql for _, _, sql in schema]
        for kind, name, _ in schema:
            if kind == "table":
                quoted = '"' + name.replace('"', '""') + '"'
                rows = conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid").fetchall()
                lines += [f"{name} {row!r}" for row in rows]
        return lines
    finally:
        conn.close()
