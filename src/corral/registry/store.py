"""The registry: the only place job state lives. Synchronous; the async layer calls it from one
dedicated thread (``corral.registry.AsyncRegistry``), never from the event loop.

Client writes (add, kill requests, resubmit, remove) are short ``BEGIN IMMEDIATE`` transactions.
Monitor writes are batched (one transaction per cycle) and fenced: each one first bumps the lease
heartbeat ``WHERE epoch = :epoch`` and aborts with ``LeaseLost`` if a newer monitor took over.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update

from corral import identity_files
from corral.errors import LeaseLost, NotFound
from corral.records import Attempt, BackendHealth, JobId, JobRecord, Transition
from corral.registry import health, identity, rows
from corral.registry.engine import open_engines
from corral.registry.rows import to_sub, where
from corral.registry.schema import TOP, attempts, jobs, lease, transitions
from corral.registry.summary import LeaseInfo as LeaseInfo
from corral.registry.updates import Update, apply_updates, archive_and_renew, refresh_masters
from corral.selection import Selection
from corral.spec import JobSpec
from corral.states import ACTIVE, JobState

LIVE = tuple(s.value for s in ACTIVE if s != JobState.NEW)


class Registry:
    """Synchronous access to one registry file."""

    def __init__(self, path: Path, work_dir: Path) -> None:
        self.path = path
        self.work_dir = work_dir
        self._writer, self._reader = open_engines(path)
        self.registry_uuid = identity.ensure(self._writer)
        identity_files.check(path, work_dir, self.registry_uuid)  # emptied or replaced: refused
        # PRAGMA data_version is per connection: keep one open to ask "anything new?" cheaply.
        self._probe = sqlite3.connect(path, timeout=60, check_same_thread=False)

    def close(self) -> None:
        self._probe.close()
        self._writer.dispose()
        self._reader.dispose()

    # ---------------------------------------------------------------- change feed
    def data_version(self) -> int:
        return int(self._probe.execute("PRAGMA data_version").fetchone()[0])

    def last_seq(self) -> int:
        with self._reader.begin() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(transitions.c.seq), 0))).scalar_one()
            )

    def transitions_since(self, seq: int, limit: int = 100_000) -> list[Transition]:
        query = (
            select(transitions, jobs.c.job_id, jobs.c.sub)
            .join(jobs, jobs.c.pk == transitions.c.job_pk)
            .where(transitions.c.seq > seq)
            .order_by(transitions.c.seq)
            .limit(limit)
        )
        with self._reader.begin() as conn:
            return [rows.transition_of(r) for r in conn.execute(query)]

    # ---------------------------------------------------------------- client writes
    def add(self, spec: JobSpec, subspecs: Sequence[JobSpec]) -> JobId:
        """Store a new job (and its subjobs) in state ``new``; the monitor submits it."""
        now = time.time()
        with self._writer.begin() as conn:
            job_id = identity.next_job_id(conn)
            job_dir = identity_files.job_root(self.work_dir, self.registry_uuid) / str(job_id)
            base = {
                "job_id": job_id,
                "backend": spec.backend,
                "tags": rows.encode_tags(spec.tags),
                "state": JobState.NEW.value,
                "attempt": 1,
                "reason": "",
                "kill_requested": False,
                "created_at": now,
                "updated_at": now,
            }
            values = [
                dict(
                    base,
                    sub=TOP,
                    name=spec.name,
                    spec=spec.to_json(),
                    uuid=str(uuidlib.uuid4()),
                    job_dir=str(job_dir),
                    subjobs=len(subspecs),
                )
            ]
            values += [
                dict(
                    base,
                    sub=i,
                    name=s.name,
                    spec=s.to_json(),
                    uuid=str(uuidlib.uuid4()),
                    job_dir=str(job_dir / str(i)),
                    subjobs=0,
                )
                for i, s in enumerate(subspecs)
            ]
            conn.execute(jobs.insert(), values)
            pks = conn.execute(select(jobs.c.pk).where(jobs.c.job_id == job_id)).scalars().all()
            conn.execute(
                transitions.insert(),
                [
                    {
                        "job_pk": pk,
                        "attempt": 1,
                        "old_state": None,
                        "new_state": "new",
                        "at": now,
                        "reason": "created",
                        "applied": True,
                    }
                    for pk in pks
                ],
            )
        return JobId(job_id)

    def request_kill(self, ids: Sequence[JobId]) -> list[JobId]:
        """Flag active runnable jobs for the monitor to cancel; ``new`` ones are killed here."""
        now = time.time()
        touched: list[JobId] = []
        with self._writer.begin() as conn:
            for row in self._runnable(conn, ids):
                state = JobState(row.state)
                if state.final:
                    continue
                touched.append(JobId(row.job_id, rows.from_sub(row.sub)))
                if state == JobState.NEW:
                    apply_updates(
                        conn, [Update(row.uuid, JobState.KILLED, "killed before submission")], now
                    )
                else:
                    conn.execute(
                        update(jobs).where(jobs.c.pk == row.pk).values(kill_requested=True)
                    )
        return touched

    def resubmit(self, ids: Sequence[JobId], *, include_all: bool = False) -> list[JobId]:
        """Start a new attempt of final jobs (failed/killed ones only unless ``include_all``)."""
        now = time.time()
        wanted = {JobState.FAILED, JobState.KILLED} | (
            {JobState.COMPLETED} if include_all else set()
        )
        touched: list[JobId] = []
        with self._writer.begin() as conn:
            for row in self._runnable(conn, ids):
                if JobState(row.state) in wanted:
                    archive_and_renew(conn, row, now, "resubmitted by user")
                    touched.append(JobId(row.job_id, rows.from_sub(row.sub)))
            refresh_masters(conn, {t.job for t in touched}, now)
        return touched

    def remove(self, ids: Sequence[JobId], *, force: bool = False) -> list[JobRecord]:
        """Delete top-level jobs (and their subjobs, history); returns what was removed."""
        removed: list[JobRecord] = []
        with self._writer.begin() as conn:
            for job_id in sorted({i.job for i in ids}):
                members = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).all()
                if not members:
                    raise NotFound(f"no job {job_id}")
                active = [r for r in members if r.subjobs == 0 and JobState(r.state) in ACTIVE]
                if active and not force:
                    from corral.errors import StateConflict

                    raise StateConflict(
                        f"job {job_id} has {len(active)} active job(s); kill it first or use force"
                    )
                top = next(r for r in members if r.sub == TOP)
                removed.append(rows.job_record(top))
                pks = [r.pk for r in members]
                conn.execute(transitions.delete().where(transitions.c.job_pk.in_(pks)))
                conn.execute(attempts.delete().where(attempts.c.job_pk.in_(pks)))
                conn.execute(jobs.delete().where(jobs.c.job_id == job_id))
        return removed

    # ---------------------------------------------------------------- reads
    def get(self, job_id: JobId) -> JobRecord:
        found = self.select(Selection(ids=(job_id,)))
        if not found:
            raise NotFound(f"no job {job_id}")
        return found[0]

    def select(self, selection: Selection, *, limit: int | None = None) -> list[JobRecord]:
        query = select(jobs).where(where(selection)).order_by(jobs.c.job_id, jobs.c.sub)
        if limit is not None:
            query = query.limit(limit)
        with self._reader.begin() as conn:
            found = conn.execute(query).all()
            masters = [r.job_id for r in found if r.subjobs > 0]
            counts = self._counts(conn, masters)
        return [rows.job_record(r, counts.get(r.job_id) if r.subjobs else None) for r in found]

    def subjobs(self, job_id: int) -> list[JobRecord]:
        query = select(jobs).where(jobs.c.job_id == job_id, jobs.c.sub != TOP).order_by(jobs.c.sub)
        with self._reader.begin() as conn:
            return [rows.job_record(r) for r in conn.execute(query)]

    def history(self, job_id: JobId) -> list[Transition]:
        query = (
            select(transitions, jobs.c.job_id, jobs.c.sub)
            .join(jobs, jobs.c.pk == transitions.c.job_pk)
            .where(jobs.c.job_id == job_id.job, jobs.c.sub == to_sub(job_id.sub))
            .order_by(transitions.c.seq)
        )
        with self._reader.begin() as conn:
            return [rows.transition_of(r) for r in conn.execute(query)]

    def count_active(self) -> int:
        query = select(func.count()).where(
            jobs.c.subjobs == 0, jobs.c.state.in_([s.value for s in ACTIVE])
        )
        with self._reader.begin() as conn:
            return int(conn.execute(query).scalar_one())

    def _counts(self, conn: Connection, masters: Sequence[int]) -> dict[int, dict[JobState, int]]:
        result: dict[int, dict[JobState, int]] = {}
        for chunk in _chunks(masters, 500):
            query = (
                select(jobs.c.job_id, jobs.c.state, func.count())
                .where(jobs.c.job_id.in_(chunk), jobs.c.sub != TOP)
                .group_by(jobs.c.job_id, jobs.c.state)
            )
            for job_id, state, n in conn.execute(query):
                result.setdefault(job_id, {})[JobState(state)] = n
        return result

    def _runnable(self, conn: Connection, ids: Sequence[JobId]) -> list[Any]:
        found: list[Any] = []
        for job_id in ids:
            query = select(jobs).where(jobs.c.job_id == job_id.job)
            if job_id.sub is not None:
                query = query.where(jobs.c.sub == job_id.sub)
            members = conn.execute(query.order_by(jobs.c.sub)).all()
            if not members:
                raise NotFound(f"no job {job_id}")
            found += [r for r in members if r.subjobs == 0]
        return found

    # ---------------------------------------------------------------- monitor side
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
            _fence(conn, epoch, now)
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

    def claim_new(self, epoch: int, limit: int = 5000) -> list[Attempt]:
        """Move up to ``limit`` new runnable jobs to ``submitting`` (durable before acting)."""
        waiting = select(jobs.c.pk).where(jobs.c.state == "new", jobs.c.subjobs == 0)
        with self._reader.begin() as conn:
            if conn.execute(waiting.limit(1)).first() is None:
                return []  # the common case costs a read, not a write
        now = time.time()
        with self._writer.begin() as conn:
            _fence(conn, epoch, now)
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

    def active_attempts(self) -> list[Attempt]:
        """Every runnable job the monitor must watch (submitting included, for reconciling)."""
        query = select(jobs).where(jobs.c.subjobs == 0, jobs.c.state.in_(LIVE)).order_by(jobs.c.pk)
        with self._reader.begin() as conn:
            return [rows.attempt_of(r) for r in conn.execute(query)]

    def kill_requests(self) -> list[Attempt]:
        query = select(jobs).where(jobs.c.kill_requested.is_(True), jobs.c.state.in_(LIVE))
        with self._reader.begin() as conn:
            return [rows.attempt_of(r) for r in conn.execute(query)]

    def apply(self, epoch: int, updates: Sequence[Update]) -> list[Transition]:
        """Apply a cycle's observations in one fenced transaction; return what changed."""
        if not updates:
            return []
        now = time.time()
        with self._writer.begin() as conn:
            _fence(conn, epoch, now)
            first = int(
                conn.execute(select(func.coalesce(func.max(transitions.c.seq), 0))).scalar_one()
            )
            apply_updates(conn, updates, now)
            query = (
                select(transitions, jobs.c.job_id, jobs.c.sub)
                .join(jobs, jobs.c.pk == transitions.c.job_pk)
                .where(transitions.c.seq > first)
                .order_by(transitions.c.seq)
            )
            return [rows.transition_of(r) for r in conn.execute(query)]

    def heartbeat(self, epoch: int) -> None:
        with self._writer.begin() as conn:
            _fence(conn, epoch, time.time())


def _fence(conn: Connection, epoch: int, now: float) -> None:
    result = conn.execute(
        update(lease).where(lease.c.id == 1, lease.c.epoch == epoch).values(heartbeat=now)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"monitor lease epoch {epoch} was taken over by a newer monitor")


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
