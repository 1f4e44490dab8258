"""The monitor's side of ``Registry``: its lease (one monitor per registry; every write fenced
by the lease epoch), claiming new jobs, applying a cycle's observations, and the backend health
rows."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from corral.errors import LeaseLost
from corral.records import Attempt, BackendHealth, Transition
from corral.registry import health, rows
from corral.registry.schema import jobs, lease, transitions
from corral.registry.summary import LeaseInfo
from corral.registry.updates import Update, apply_updates
from corral.states import JobState


class LeaseRows:
    """Mixed into ``Registry``: it provides the two engines."""

    _writer: Engine
    _reader: Engine

    def claim_new(self, epoch: int, limit: int = 5000) -> list[Attempt]:
        """Move up to ``limit`` new runnable jobs to ``submitting`` (durable before acting)."""
        waiting = select(jobs.c.pk).where(jobs.c.state == "new", jobs.c.subjobs == 0)
        with self._reader.begin() as conn:
            if conn.execute(waiting.limit(1)).first() is None:
                return []  # the common case costs a read, not a write
        now = time.time()
        with self._writer.begin() as conn:
            fence(conn, epoch, now)
            found = (
                conn.execute(
                    select(jobs.c.uuid).where(
                        jobs.c.pk.in_(waiting.order_by(jobs.c.pk).limit(limit))
                    )
                )
                .scalars()
                .all()
            )
            if not found:
                return []
            apply_updates(
                conn, [Update(u, JobState.SUBMITTING, "claimed by monitor") for u in found], now
            )
            claimed = conn.execute(
                select(jobs)
                .where(jobs.c.uuid.in_(found), jobs.c.state == "submitting")
                .order_by(jobs.c.pk)
            ).all()
        return [rows.attempt_of(r) for r in claimed]

    def apply(self, epoch: int, updates: Sequence[Update]) -> list[Transition]:
        """Apply a cycle's observations in one fenced transaction; return what changed."""
        if not updates:
            return []
        now = time.time()
        with self._writer.begin() as conn:
            fence(conn, epoch, now)
            first = int(conn.execute(_LAST_SEQ).scalar_one())
            apply_updates(conn, updates, now)
            return [rows.transition_of(r) for r in conn.execute(_SINCE, {"first": first})]

    def acquire_lease(self, pid: int, version: str) -> int:
        now = time.time()
        with self._writer.begin() as conn:
            epoch = int(conn.execute(select(lease.c.epoch).where(lease.c.id == 1)).scalar_one()) + 1
            conn.execute(
                update(lease)
                .where(lease.c.id == 1)
                .values(
                    epoch=epoch,
                    pid=pid,
                    host=socket.gethostname(),
                    version=version,
                    acquired_at=now,
                    heartbeat=now,
                    released=False,
                )
            )
        return epoch

    def release_lease(self, epoch: int) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                update(lease).where(lease.c.id == 1, lease.c.epoch == epoch).values(released=True)
            )

    def lease_info(self) -> LeaseInfo:
        with self._reader.begin() as conn:
            m = conn.execute(select(lease).where(lease.c.id == 1)).one()._mapping
        return LeaseInfo(
            m["epoch"],
            m["pid"],
            m["host"],
            m["version"],
            m["acquired_at"],
            m["heartbeat"],
            bool(m["released"]),
            m["last_error"],
            m["last_error_at"],
            m["last_error_pid"],
        )

    def put_backend_health(self, epoch: int, rows: Sequence[BackendHealth]) -> None:
        """Upsert one health row per backend instance, fenced, in one transaction."""
        now = time.time()
        with self._writer.begin() as conn:
            fence(conn, epoch, now)
            health.put_rows(conn, rows, now)

    def backend_health(self) -> list[BackendHealth]:
        with self._reader.begin() as conn:
            return health.read_rows(conn)

    def record_monitor_error(self, epoch: int | None, error: str, pid: int | None = None) -> None:
        """Keep a monitor's fatal error (and its pid, default this process) on the lease row.
        Fenced by ``epoch``; ``None`` writes unfenced, for a daemon that never held a lease."""
        pid = os.getpid() if pid is None else pid
        with self._writer.begin() as conn:
            health.record_error(conn, epoch, error, pid, time.time())

    def heartbeat(self, epoch: int) -> None:
        with self._writer.begin() as conn:
            fence(conn, epoch, time.time())


# Built once: constructing a statement costs more than running it (SQLAlchemy caches the
# compiled form by the statement's structure, but building and keying it is per call).
_FENCE = (
    update(lease)
    .where(lease.c.id == 1, lease.c.epoch == bindparam("f_epoch"))
    .values(heartbeat=bindparam("f_now"))
)
_LAST_SEQ = select(func.coalesce(func.max(transitions.c.seq), 0))
_SINCE = (
    select(transitions, jobs.c.job_id, jobs.c.sub)
    .join(jobs, jobs.c.pk == transitions.c.job_pk)
    .where(transitions.c.seq > bindparam("first"))
    .order_by(transitions.c.seq)
)


def fence(conn: Connection, epoch: int, now: float) -> None:
    result = conn.execute(_FENCE, {"f_epoch": epoch, "f_now": now})
    if result.rowcount != 1:
        raise LeaseLost(f"monitor lease epoch {epoch} was taken over by a newer monitor")
