"""Backend health and the monitor's last fatal error, inside the registry's transactions.

The monitor writes one ``backend_status`` row per backend instance (fenced by its lease epoch,
like every monitor write); ``corral monitor --status``, ``corral plugins``, ``show`` and ``ls``
read it back (the CLI through ``corral.registry.summary``, without SQLAlchemy). A monitor that
dies writes its error on the lease row, where it stays after the next monitor starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy import Connection, select, update

from corral.errors import LeaseLost
from corral.records import BackendHealth
from corral.registry.schema import backend_status, lease
from corral.registry.summary import decode_calls

MAX_ERROR = 4000
"""Characters of an error kept: enough for a message, not for a runaway repr."""


def put_rows(conn: Connection, rows: Sequence[BackendHealth], now: float) -> None:
    """Replace the rows of these backends (delete + insert: an upsert any database can do).
    ``updated_at`` is the time of this write, so it is never older than the writer's lease."""
    if not rows:
        return
    names = [h.name for h in rows]
    conn.execute(backend_status.delete().where(backend_status.c.name.in_(names)))
    conn.execute(
        backend_status.insert(),
        [
            {**asdict(h), "calls": json.dumps(dict(h.calls), sort_keys=True), "updated_at": now}
            for h in {h.name: h for h in rows}.values()  # the last row of a name wins
        ],
    )


def read_rows(conn: Connection) -> list[BackendHealth]:
    found = conn.execute(select(backend_status).order_by(backend_status.c.name))
    return [
        BackendHealth(
            name=r.name,
            kind=r.kind,
            state=r.state,
            reason=r.reason,
            since=r.since,
            active=r.active,
            interval=r.interval,
            last_poll=r.last_poll,
            polls=r.polls,
            errors=r.errors,
            consecutive_errors=r.consecutive_errors,
            calls=decode_calls(r.calls),
            updated_at=r.updated_at,
        )
        for r in found
    ]


def record_error(conn: Connection, epoch: int | None, error: str, pid: int, now: float) -> None:
    """Store a monitor's fatal error. With an epoch the write is fenced (``LeaseLost`` if a newer
    monitor took over; a released lease of that epoch is fine: the monitor released it on its
    way out). ``None`` is for a daemon that died before it held a lease."""
    query = update(lease).where(lease.c.id == 1)
    if epoch is not None:
        query = query.where(lease.c.epoch == epoch)
    result = conn.execute(
        query.values(last_error=error[:MAX_ERROR], last_error_at=now, last_error_pid=pid)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"monitor lease epoch {epoch} was taken over by a newer monitor")
