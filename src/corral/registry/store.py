"""The registry: the only place job state lives. Synchronous; the async layer calls it from one
dedicated thread (``corral.registry.AsyncRegistry``), never from the event loop.

Client writes (add, kill requests, resubmit, remove) are short ``BEGIN IMMEDIATE`` transactions.
Monitor writes are batched (one transaction per cycle) and fenced: each one first bumps the lease
heartbeat ``WHERE epoch = :epoch`` and aborts with ``LeaseLost`` if a newer monitor took over.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.exc import OperationalError

from corral import identity_files
from corral.errors import LeaseLost, NotFound, StateConflict, WriteConflict
from corral.records import Attempt, JobId, JobRecord, Page, Removal, Transition
from corral.registry import identity, inserts, rows
from corral.registry.engine import open_engines
from corral.registry.leases import LeaseRows, fence
from corral.registry.rows import to_sub, where
from corral.registry.schema import TOP, jobs, transitions
from corral.registry.sqlite_dialect import VersionProbe
from corral.registry.summary import LeaseInfo as LeaseInfo
from corral.registry.updates import (
    Update,
    active_units,
    apply_updates,
    archive_and_renew,
    delete_job,
    lost_race,
    refresh_masters,
)
from corral.selection import Selection
from corral.spec import JobSpec
from corral.states import ACTIVE, JobState

T = TypeVar("T")
WRITE_RETRIES = 50
LIVE = tuple(s.value for s in ACTIVE if s != JobState.NEW)


class Registry(LeaseRows):
    """Synchronous access to one registry file."""

    def __init__(self, path: Path, work_dir: Path, *, deferred_writes: bool = False) -> None:
        self.path = path
        self.work_dir = work_dir
        begin = "BEGIN" if deferred_writes else "BEGIN IMMEDIATE"
        self._writer, self._reader = open_engines(path, begin)
        self.registry_uuid = identity.ensure(self._writer)
        identity_files.check(path, work_dir, self.registry_uuid)  # emptied or replaced: refused
        self._probe = VersionProbe(path)  # "anything new?", cheaply

    def close(self) -> None:
        self._probe.close()
        self._writer.dispose()
        self._reader.dispose()

    # ---------------------------------------------------------------- change feed
    def data_version(self) -> int:
        return self._probe.version()

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
        """Store a new job (and its subjobs) in state ``new``; the monitor submits it.

        The hot path of one-at-a-time submits: plain SQL on the driver's cursor inside the
        writer's transaction, three statements, no SQLAlchemy compilation (which cost three
        quarters of a submit)."""
        with self._writer.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                return JobId(
                    inserts.insert_job(cursor, self._job_root(), spec, subspecs, time.time())[0]
                )
            finally:
                cursor.close()

    def add_claimed(
        self, spec: JobSpec, subspecs: Sequence[JobSpec], epoch: int
    ) -> tuple[JobId, list[Attempt]]:
        """``add``, with the new units claimed in the same transaction by the monitor holding
        lease ``epoch`` (``new`` -> ``submitting``, fenced, the history ``claim_new`` writes):
        a submit from the monitor's own process is one transaction, and its attempts go to
        that monitor directly, not through its intake. ``LeaseLost`` (nothing stored) if a
        newer monitor took over. Plain SQL, like ``add``."""
        now = time.time()
        with self._writer.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if cursor.execute(inserts.FENCE, (now, epoch)).rowcount != 1:
                    raise LeaseLost(f"monitor lease epoch {epoch} was taken over")
                found = inserts.insert_job(
                    cursor, self._job_root(), spec, subspecs, now, claimed=True
                )
            finally:
                cursor.close()
        return JobId(found[0]), inserts.claimed_attempts(found, spec, subspecs)

    def _job_root(self) -> Path:
        return identity_files.job_root(self.work_dir, self.registry_uuid)

    def request_kill(self, ids: Sequence[JobId]) -> list[JobId]:
        """Flag active runnable jobs for the monitor to cancel; ``new`` ones are killed here."""
        return self._write(
            lambda conn: self._kill_rows(conn, self._runnable(conn, ids), time.time())
        )

    @staticmethod
    def _kill_rows(conn: Connection, found: Sequence[Any], now: float) -> list[JobId]:
        touched: list[JobId] = []
        for row in found:
            state = JobState(row.state)
            if state.final:
                continue
            touched.append(JobId(row.job_id, rows.from_sub(row.sub)))
            if state == JobState.NEW:
                apply_updates(
                    conn, [Update(row.uuid, JobState.KILLED, "killed before submission")], now
                )
            else:
                conn.execute(update(jobs).where(jobs.c.pk == row.pk).values(kill_requested=True))
        return touched

    def runnable_attempts(self, ids: Sequence[JobId]) -> list[Attempt]:
        """The runnable jobs under ``ids`` (a master's subjobs), as attempts, in any state."""
        with self._reader.begin() as conn:
            return [rows.attempt_of(r) for r in self._runnable(conn, ids)]

    def note_hold(self, reasons: Mapping[str, str]) -> None:
        """Record that queued jobs were held ("held: ...") or released (""): their reason."""

        def body(conn: Connection) -> None:
            for uuid, reason in reasons.items():
                conn.execute(
                    update(jobs)
                    .where(jobs.c.uuid == uuid, jobs.c.state == JobState.SUBMITTED.value)
                    .values(reason=reason or "released from hold", updated_at=time.time())
                )

        self._write(body)

    def resubmit(self, ids: Sequence[JobId], *, include_all: bool = False) -> list[JobId]:
        """Start a new attempt of final jobs (failed/killed ones only unless ``include_all``)."""
        now = time.time()
        wanted = {JobState.FAILED, JobState.KILLED} | (
            {JobState.COMPLETED} if include_all else set()
        )

        def renew(conn: Connection) -> list[JobId]:
            touched: list[JobId] = []
            for row in self._runnable(conn, ids):
                if JobState(row.state) in wanted:
                    archive_and_renew(conn, row, now, "resubmitted by user")
                    touched.append(JobId(row.job_id, rows.from_sub(row.sub)))
            refresh_masters(conn, {t.job for t in touched}, now)
            return touched

        return self._write(renew)

    def _write(self, body: Callable[[Connection], T]) -> T:
        """Run ``body`` in a write transaction, again if another writer won a race: a
        compare-and-set that found the row changed (``WriteConflict``), or SQLite refusing to
        upgrade a deferred transaction's stale snapshot to a write (``SQLITE_BUSY``)."""
        for attempt in range(WRITE_RETRIES):
            try:
                with self._writer.begin() as conn:
                    return body(conn)
            except (WriteConflict, OperationalError) as exc:
                if attempt == WRITE_RETRIES - 1 or not lost_race(exc):
                    raise
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # de-synchronise the racers
        raise AssertionError("unreachable")

    def remove(self, ids: Sequence[JobId], *, force: bool = False) -> Removal:
        """Delete top-level jobs (their subjobs, history). With ``force``, a job with active
        units is killed and left as a tombstone (hidden from every selection) that the monitor
        deletes once every unit is final (``purge_removed``): nothing is left running with no
        record of it."""
        now = time.time()

        def delete(conn: Connection) -> Removal:
            result = Removal([], [])
            for job_id in sorted({i.job for i in ids}):
                members = conn.execute(
                    select(jobs).where(jobs.c.job_id == job_id, jobs.c.removing.is_(False))
                ).all()
                if not members:
                    raise NotFound(f"no job {job_id}")
                active = [r for r in members if r.subjobs == 0 and JobState(r.state) in ACTIVE]
                if active and not force:
                    raise StateConflict(
                        f"job {job_id} has {len(active)} active job(s); kill it first or use force"
                    )
                top = next(r for r in members if r.sub == TOP)
                if active:
                    self._kill_rows(conn, active, now)
                    conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(removing=True))
                    if active_units(conn, job_id):
                        result.pending.append(rows.job_record(top))
                        continue
                result.removed.append(rows.job_record(top))
                delete_job(conn, job_id)
            return result

        return self._write(delete)

    def purge_removed(self, epoch: int) -> list[Path]:
        """Delete the tombstoned jobs whose units are all final now; return their job dirs."""
        # "removing = 1", word for word the partial index's condition, so the index is used
        tombstone = jobs.c.removing == True  # noqa: E712
        waiting = select(jobs.c.job_id).where(tombstone, jobs.c.sub == TOP)
        with self._reader.begin() as conn:
            if conn.execute(waiting.limit(1)).first() is None:
                return []  # the common case: one indexed read
        dirs: list[Path] = []
        with self._writer.begin() as conn:
            fence(conn, epoch, time.time())
            for job_id, job_dir in conn.execute(waiting.add_columns(jobs.c.job_dir)).all():
                if not active_units(conn, job_id):
                    delete_job(conn, job_id)
                    if job_dir:
                        dirs.append(Path(job_dir))
        return dirs

    # ---------------------------------------------------------------- reads
    def get(self, job_id: JobId) -> JobRecord:
        found = self.select(Selection(ids=(job_id,)))
        if not found:
            raise NotFound(f"no job {job_id}")
        return found[0]

    def get_many(self, ids: Sequence[JobId]) -> list[JobRecord]:
        """These jobs, in the given order, in a few queries; ``NotFound`` names a missing one."""
        found: dict[JobId, JobRecord] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), 200):
            found.update((r.id, r) for r in self.select(Selection(ids=tuple(chunk))))
        for job_id in ids:
            if job_id not in found:
                raise NotFound(f"no job {job_id}")
        return [found[i] for i in ids]

    def select(self, selection: Selection, *, limit: int | None = None) -> list[JobRecord]:
        query = select(jobs).where(where(selection)).order_by(jobs.c.job_id, jobs.c.sub)
        if limit is not None:
            query = query.limit(limit)
        with self._reader.begin() as conn:
            found = conn.execute(query).all()
            masters = [r.job_id for r in found if r.subjobs > 0]
            counts = self._counts(conn, masters)
        return [rows.job_record(r, counts.get(r.job_id) if r.subjobs else None) for r in found]

    def page(self, selection: Selection, after: JobId | None, limit: int) -> Page:
        """One page of a listing, keyset-paged (the next starts after the last id, so a page
        costs the same at the end of 100,000 jobs as at the start), with the number of
        matching top-level jobs in each state over the whole selection."""
        query = select(jobs).where(where(selection))
        if after is not None:
            query = query.where(
                or_(
                    jobs.c.job_id > after.job,
                    and_(jobs.c.job_id == after.job, jobs.c.sub > to_sub(after.sub)),
                )
            )
        query = query.order_by(jobs.c.job_id, jobs.c.sub).limit(limit + 1)
        counting = select(jobs.c.state, func.count()).where(where(selection))
        with self._reader.begin() as conn:
            found = conn.execute(query).all()
            counts = {JobState(s): n for s, n in conn.execute(counting.group_by(jobs.c.state))}
            masters = [r.job_id for r in found[:limit] if r.subjobs > 0]
            sub_counts = self._counts(conn, masters)
        records = [
            rows.job_record(r, sub_counts.get(r.job_id) if r.subjobs else None)
            for r in found[:limit]
        ]
        more = len(found) > limit and bool(records)
        return Page(records, counts, records[-1].id if more else None)

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
            query = select(jobs).where(jobs.c.job_id == job_id.job, jobs.c.removing.is_(False))
            if job_id.sub is not None:
                query = query.where(jobs.c.sub == job_id.sub)
            members = conn.execute(query.order_by(jobs.c.sub)).all()
            if not members:
                raise NotFound(f"no job {job_id}")
            found += [r for r in members if r.subjobs == 0]
        return found

    # ---------------------------------------------------------------- monitor side
    def intake(self, epoch: int) -> tuple[list[Attempt], list[Attempt], list[Path]]:
        """What the monitor's intake asks, in one call: new jobs claimed, kill requests, and
        the job dirs of tombstones it just deleted."""
        return self.claim_new(epoch), self.kill_requests(), self.purge_removed(epoch)

    def active_attempts(self) -> list[Attempt]:
        """Every runnable job the monitor must watch (submitting included, for reconciling)."""
        query = select(jobs).where(jobs.c.subjobs == 0, jobs.c.state.in_(LIVE)).order_by(jobs.c.pk)
        with self._reader.begin() as conn:
            return [rows.attempt_of(r) for r in conn.execute(query)]

    def kill_requests(self) -> list[Attempt]:
        query = select(jobs).where(jobs.c.kill_requested.is_(True), jobs.c.state.in_(LIVE))
        with self._reader.begin() as conn:
            return [rows.attempt_of(r) for r in conn.execute(query)]


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
