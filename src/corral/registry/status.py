"""Lean reads of the monitor lease and the backends' health (``corral ls``, ``monitor
--status``, ``show``), over the plain read-only ``sqlite3`` connection of ``summary``.

They are tolerant of a registry created before these were stored: a read-only reader must not
migrate, so an older file simply has no health yet.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from corral.records import BackendHealth


# ---------------------------------------------------------------- lease and backend health
@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """The monitor lease row. ``last_error*`` is the last fatal error of a monitor; it is kept
    when the next monitor starts, so compare ``last_error_at`` with ``acquired_at``."""

    epoch: int
    pid: int | None
    host: str | None
    version: str | None
    acquired_at: float | None
    heartbeat: float | None
    released: bool
    last_error: str | None = None
    last_error_at: float | None = None
    last_error_pid: int | None = None

    @property
    def error_is_latest(self) -> bool:
        """The stored error came after the last lease acquisition: it is how the latest monitor
        ended (or why a monitor could not take the lease), not an older one's story."""
        if self.last_error is None or self.last_error_at is None:
            return False
        return self.acquired_at is None or self.last_error_at >= self.acquired_at


def _missing_schema(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return text.startswith("no such table") or text.startswith("no such column")


_LEASE = "epoch, pid, host, version, acquired_at, heartbeat, released"


def lease_info(conn: sqlite3.Connection) -> LeaseInfo | None:
    """The lease row (None for a registry without one); no error fields before schema 0002."""
    try:
        row = conn.execute(
            f"SELECT {_LEASE}, last_error, last_error_at, last_error_pid FROM lease WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if not _missing_schema(exc):
            raise
        try:
            row = conn.execute(f"SELECT {_LEASE} FROM lease WHERE id = 1").fetchone()
        except sqlite3.OperationalError as again:
            if not _missing_schema(again):
                raise
            return None
    if row is None:
        return None
    epoch, pid, host, version, acquired_at, heartbeat, released, *error = row
    return LeaseInfo(epoch, pid, host, version, acquired_at, heartbeat, bool(released), *error)


_HEALTH_COLUMNS = (
    "name", "kind", "state", "reason", "since", "active", "interval", "last_poll", "polls",
    "errors", "consecutive_errors", "calls", "updated_at",
)  # fmt: skip
_HEALTH = ", ".join(_HEALTH_COLUMNS)


def decode_calls(text: str | None) -> dict[str, int]:
    """``backend_status.calls`` (JSON); a value we cannot read is no calls, not an error."""
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, int)}


def health_of(row: Sequence[Any]) -> BackendHealth:
    """A ``backend_status`` row (columns in the order of ``_HEALTH``) as a record."""
    values = dict(zip(_HEALTH_COLUMNS, row, strict=True))
    values["calls"] = decode_calls(values["calls"])
    return BackendHealth(**values)


def backend_health(conn: sqlite3.Connection) -> list[BackendHealth]:
    """Every backend's last written health, by name; [] for a registry older than the table."""
    try:
        rows = conn.execute(f"SELECT {_HEALTH} FROM backend_status ORDER BY name").fetchall()
    except sqlite3.OperationalError as exc:
        if not _missing_schema(exc):
            raise
        return []
    return [health_of(r) for r in rows]


def down_backends(conn: sqlite3.Connection) -> dict[str, str]:
    """``{name: reason}`` of the backends the latest monitor last saw down (one query on a
    table of a few rows, cheap enough for ``corral ls``). Rows older than the last lease
    acquisition were written by an earlier monitor and say nothing about now."""
    try:
        rows = conn.execute(
            "SELECT name, reason FROM backend_status WHERE state = 'down' AND updated_at >= "
            "coalesce((SELECT acquired_at FROM lease WHERE id = 1), 0) ORDER BY name"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if not _missing_schema(exc):
            raise
        return {}
    return {name: reason for name, reason in rows}


def from_latest_monitor(health: BackendHealth, lease: LeaseInfo | None) -> bool:
    """Written since the last lease acquisition, i.e. by the latest monitor (running or not)."""
    acquired = lease.acquired_at if lease is not None else None
    return acquired is None or health.updated_at >= acquired


@dataclass(frozen=True, slots=True)
class MonitorStatus:
    """``AsyncSession.monitor_status``: ``running`` means a process holds the monitor lock."""

    running: bool
    pid: int | None
    lease: LeaseInfo | None
    active: int
    backends: list[BackendHealth]
