"""Lean reads of the monitor lease and the backends' health over a plain read-only ``sqlite3``
connection (``monitor --status``, ``show``; see ``corral.registry.summary``; what ``corral ls``
reads of the backends' health is ``corral.registry.sqlite_listing.down_backends``).

They are tolerant of a registry created before these were stored: a read-only reader must not
migrate, so an older file simply has no health yet.
"""

from __future__ import annotations

from corral.records import BackendHealth
from corral.registry.driver import sqlite3
from corral.registry.sqlite_listing import missing_schema
from corral.registry.status import HEALTH, LeaseInfo, health_of

_LEASE = "epoch, pid, host, version, acquired_at, heartbeat, released"


def lease_info(conn: sqlite3.Connection) -> LeaseInfo | None:
    """The lease row (None for a registry without one); no error fields before schema 0002."""
    try:
        row = conn.execute(
            f"SELECT {_LEASE}, last_error, last_error_at, last_error_pid FROM lease WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if not missing_schema(exc):
            raise
        try:
            row = conn.execute(f"SELECT {_LEASE} FROM lease WHERE id = 1").fetchone()
        except sqlite3.OperationalError as again:
            if not missing_schema(again):
                raise
            return None
    if row is None:
        return None
    epoch, pid, host, version, acquired_at, heartbeat, released, *error = row
    return LeaseInfo(epoch, pid, host, version, acquired_at, heartbeat, bool(released), *error)


def backend_health(conn: sqlite3.Connection) -> list[BackendHealth]:
    """Every backend's last written health, by name; [] for a registry older than the table."""
    try:
        rows = conn.execute(f"SELECT {HEALTH} FROM backend_status ORDER BY name").fetchall()
    except sqlite3.OperationalError as exc:
        if not missing_schema(exc):
            raise
        return []
    return [health_of(r) for r in rows]
