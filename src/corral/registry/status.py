"""The monitor lease and the backends' health as records, whatever database they were read
from (``monitor --status``, ``plugins``, ``show``, ``ls``, ``submit``). A health row is *stale*
when no monitor runs now, or when it was written before the current monitor took the lease.
The SQLite reads are in ``corral.registry.sqlite_status``."""

from __future__ import annotations

import json
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


_HEALTH_COLUMNS = (
    "name", "kind", "state", "reason", "since", "active", "interval", "last_poll", "polls",
    "errors", "consecutive_errors", "calls", "updated_at",
)  # fmt: skip
HEALTH = ", ".join(_HEALTH_COLUMNS)


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
    """A ``backend_status`` row (columns in the order of ``HEALTH``) as a record."""
    values = dict(zip(_HEALTH_COLUMNS, row, strict=True))
    values["calls"] = decode_calls(values["calls"])
    return BackendHealth(**values)


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
