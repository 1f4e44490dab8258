"""The SQLite ``ListingReader`` (see ``corral.registry.summary``): a plain read-only ``sqlite3``
connection (importing SQLAlchemy alone costs a third of what a cold ``corral ls`` may take).

What ``corral ls`` prints comes from ``corral.registry.sqlite_listing`` (formatted by SQLite,
and lean enough for the cold path); this module adds the structured reads (summaries for
progress displays, the active count, the lease and the backends' health).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from corral.records import BackendHealth, JobId
from corral.registry import sqlite_status
from corral.registry.driver import sqlite3
from corral.registry.sqlite_listing import TOP, sql_where
from corral.registry.sqlite_ls import SQLiteListing
from corral.registry.summary import JobSummary, LeaseInfo
from corral.selection import Selection
from corral.states import FINAL, JobState

_STATES = {s.value: s for s in JobState}  # a dict lookup is several times faster than JobState(v)
_CHUNK = 500  # SQLite limits host parameters: long id lists are queried in chunks


class SQLiteReader(SQLiteListing):
    """A ``ListingReader`` over one registry file."""

    def summaries(self, filt: Selection) -> list[JobSummary]:
        return self._read(lambda c: summaries(c, filt))

    def count_active(self) -> int:
        return self._read(count_active)

    def lease_info(self) -> LeaseInfo | None:
        return self._read(sqlite_status.lease_info)

    def backend_health(self) -> list[BackendHealth]:
        return self._read(sqlite_status.backend_health)


def count_active(conn: sqlite3.Connection) -> int:
    """Runnable jobs not yet final (what a monitor still has to drive)."""
    final = ", ".join(f"'{s.value}'" for s in FINAL)
    query = f"SELECT count(*) FROM jobs WHERE subjobs = 0 AND state NOT IN ({final})"
    return int(conn.execute(query).fetchone()[0])


def summaries(conn: sqlite3.Connection, filt: Selection) -> list[JobSummary]:
    """The matching jobs as structured summaries (for progress displays)."""
    where, params = sql_where(filt, time.time())
    rows = conn.execute(
        f"SELECT t.job_id, t.sub, t.name, t.state, t.backend, t.subjobs FROM jobs AS t "
        f"WHERE {where} ORDER BY t.job_id, t.sub",
        params,
    ).fetchall()
    return _with_counts(conn, rows)


def _with_counts(conn: sqlite3.Connection, rows: Sequence[Any]) -> list[JobSummary]:
    masters = sorted({r[0] for r in rows if r[5] > 0})
    counts: dict[int, dict[JobState, int]] = {}
    for i in range(0, len(masters), _CHUNK):
        chunk = masters[i : i + _CHUNK]
        for job_id, state, n in conn.execute(
            "SELECT job_id, state, count(*) FROM jobs WHERE sub != -1 AND job_id IN "
            f"({','.join('?' * len(chunk))}) GROUP BY job_id, state",
            chunk,
        ):
            counts.setdefault(job_id, {})[_STATES[state]] = n
    result = []
    for job_id, sub, name, state_text, backend, subjobs in rows:
        state = _STATES[state_text]
        result.append(
            JobSummary(
                id=JobId(job_id, None if sub == TOP else sub),
                name=name,
                state=state,
                backend=backend,
                subjobs=subjobs,
                counts=counts.get(job_id, {}) if subjobs else {state: 1},
            )
        )
    return result
