"""``corral ls`` reads the covering indexes of migration 0006, never the ``jobs`` table: after
every kind of write (submit, sweep, run, fail, kill, resubmit, rm, gc) what it prints from the
indexes is byte for byte what the same queries print from the table, and what the session
selects."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from corral import JobState, Session, Settings
from corral.registry import sqlite_listing
from corral.registry.driver import sqlite3
from corral.selection import Selection

S = JobState
NOW = 1796200000.0


class _TableOnly:
    """A connection whose queries read the table: every ``jobs`` is ``NOT INDEXED``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        sql = re.sub(r"\bFROM jobs( AS [ts])?\b", r"FROM jobs\1 NOT INDEXED", sql)
        return self.conn.execute(sql, params)


def _plans(conn: sqlite3.Connection, query: Callable[[Any], object]) -> list[str]:
    seen: list[str] = []

    class Explaining:
        def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
            seen.extend(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            return conn.execute(sql, params)

    query(Explaining())
    return seen


def _listings(conn: Any) -> tuple[bytes, bytes]:
    w = sqlite_listing.widths(conn)
    text = sqlite_listing.listing(conn, None, NOW, w, sqlite_listing.down_backends(conn))[0]
    return text, sqlite_listing.listing_json(conn, Selection(), NOW)


def _check(settings: Settings, s: Session) -> list[dict[str, Any]]:
    """The listing from the indexes equals the listing from the table, and what the session
    selects; returns the listed jobs."""
    conn = sqlite_listing.connect(settings.registry)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert _listings(conn) == _listings(_TableOnly(conn))
        plans = _plans(conn, _listings)
        assert any("COVERING INDEX ix_jobs_listing" in p for p in plans), plans
        assert not any(p.startswith("SCAN t") and "INDEX" not in p for p in plans), plans
        listed = json.loads(b"[" + _listings(conn)[1] + b"]")
    finally:
        conn.close()
    records = s.select()
    assert [(j["id"], j["state"], j["exit_code"]) for j in listed] == [
        (str(r.id), r.state.value, r.exit_code) for r in records
    ]
    assert [j["counts"] for j in listed] == [
        {k.value: n for k, n in (r.counts if r.is_master else {r.state: 1}).items()}
        for r in records
    ]
    return listed


def test_the_listing_indexes_follow_every_write(settings: Settings) -> None:
    with Session(settings, monitor="off") as s:  # (checked between writes: no monitor moves)
        plain = [s.submit({"command": ["true"], "name": f"p{i}", "tags": ["a"]}) for i in range(3)]
        bad = s.submit({"command": ["sh", "-c", "exit 3"], "name": "bad", "tags": ["a", "b"]})
        sweep = s.submit(
            {
                "command": ["sh", "-c", "test {i} != 2"],
                "name": "sweep-with-a-much-longer-name",
                "splitter": {"kind": "sweep", "parameters": {"i": ["1", "2", "3"]}},
            }
        )
        gone = s.submit({"command": ["true"]})
        s.kill(gone)  # a new job: killed at once
        _check(settings, s)
    with Session(settings) as s:
        s.wait([*plain, bad, sweep], timeout=60)
        listed = _check(settings, s)  # run, completed, failed, a master derived from subjobs
        assert {j["state"] for j in listed} == {"completed", "failed", "killed"}
        slow = s.submit({"command": ["sleep", "30"]})
        s.kill(slow)
        s.wait(slow, timeout=60)
        s.resubmit(bad)
        s.wait(bad, timeout=60)
        _check(settings, s)  # killed while running, and a second attempt
        s.remove([plain[0]])
        assert [r.id for r in s.gc(0)] == [*plain[1:], bad, sweep, gone, slow]
        assert _check(settings, s) == []  # removed, and collected
