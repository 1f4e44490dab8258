"""The monitor's lease (one monitor per registry, fenced writes) and backend health rows:
the part of ``Registry`` only a monitor and its status readers use."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, select, update

from corral.errors import LeaseLost
from corral.records import BackendHealth
from corral.registry import health
from corral.registry.schema import lease
from corral.registry.summary import LeaseInfo


class LeaseRows:
    """Mixed into ``Registry``: it provides the two engines."""

    _writer: Engine
    _reader: Engine

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


def fence(conn: Connection, epoch: int, now: float) -> None:
    result = conn.execute(
        update(lease).where(lease.c.id == 1, lease.c.epoch == epoch).values(heartbeat=now)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"monitor lease epoch {epoch} was taken over by a newer monitor")
