"""Applying observations inside one write transaction: the state machine meets the tables.

Every state change is a compare-and-set (``WHERE state = :old AND attempt = :attempt``) and a row
in ``transitions``; an observation that changes nothing is kept as an unapplied event. A master's
state is recomputed from its subjobs once per transaction. A failed job with attempts left under
its spec's ``max_attempts`` starts its next attempt here, in the same transaction.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from corral.registry.schema import TOP, attempts, jobs, transitions
from corral.spec import spec_from_json
from corral.states import JobState, decide, master_state


@dataclass(frozen=True, slots=True)
class Update:
    """One observation (or a monitor decision) about one attempt, keyed by its uuid."""

    uuid: str
    state: JobState
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    native_id: str | None = None
    requeue: bool = False


def apply_updates(conn: Connection, updates: Sequence[Update], now: float) -> None:
    by_uuid: dict[str, Any] = {}
    for i in range(0, len(updates), 500):
        uuids = [u.uuid for u in updates[i : i + 500]]
        for found in conn.execute(select(jobs).where(jobs.c.uuid.in_(uuids))):
            by_uuid[found.uuid] = _Row(found._mapping)
    events: list[dict[str, Any]] = []
    masters: set[int] = set()
    for item in updates:
        row = by_uuid.get(item.uuid)
        if row is None:
            continue  # removed, or an attempt that was superseded
        current = JobState(row.state)
        decision = decide(current, item.state, requeue=item.requeue)
        if not decision.changes:
            if item.state != current and item.state != JobState.UNKNOWN:
                events.append(_event(row, current, item.state, now, item.reason, applied=False))
            continue
        target = decision.target
        assert target is not None
        values: dict[str, Any] = {"state": target.value, "updated_at": now}
        for key in ("exit_code", "signal", "native_id"):
            if getattr(item, key) is not None:
                values[key] = getattr(item, key)
        if item.reason and target != JobState.UNKNOWN:
            values["reason"] = item.reason
        if target.final:
            values["kill_requested"] = False
        result = conn.execute(
            update(jobs)
            .where(jobs.c.pk == row.pk, jobs.c.state == row.state, jobs.c.attempt == row.attempt)
            .values(**values)
        )
        if result.rowcount != 1:
            continue  # another writer moved it first; its change stands
        row = by_uuid[item.uuid] = row.updated(values)  # a later update in this batch sees it
        old = current
        for step in decision.steps:
            events.append(_event(row, old, step, now, item.reason))
            old = step
        if row.sub != TOP:
            masters.add(row.job_id)
        if target == JobState.FAILED and row.attempt < spec_from_json(row.spec).max_attempts:
            renewed = conn.execute(select(jobs).where(jobs.c.pk == row.pk)).one()
            if events:
                conn.execute(transitions.insert(), events)
                events = []
            archive_and_renew(
                conn,
                renewed,
                now,
                f"automatic resubmission (attempt {row.attempt + 1} of "
                f"{spec_from_json(row.spec).max_attempts})",
            )
    if events:
        conn.execute(transitions.insert(), events)
    refresh_masters(conn, masters, now)


class _Row(dict[str, Any]):
    """A jobs row as a dict with attribute access, updated as the batch applies."""

    def __getattr__(self, name: str) -> Any:
        return self[name]

    def updated(self, values: dict[str, Any]) -> _Row:
        return _Row(self, **values)


def _event(
    row: Any, old: JobState, new: JobState, now: float, reason: str, *, applied: bool = True
) -> dict[str, Any]:
    return {
        "job_pk": row.pk,
        "attempt": row.attempt,
        "old_state": old.value,
        "new_state": new.value,
        "at": now,
        "reason": reason,
        "applied": applied,
    }


def archive_and_renew(conn: Connection, row: Any, now: float, reason: str) -> None:
    """Close ``row``'s current attempt into ``attempts`` and start the next one as ``new``."""
    conn.execute(
        attempts.insert().values(
            job_pk=row.pk,
            attempt=row.attempt,
            uuid=row.uuid,
            state=row.state,
            native_id=row.native_id,
            exit_code=row.exit_code,
            signal=row.signal,
            reason=row.reason,
            ended_at=now,
        )
    )
    conn.execute(
        update(jobs)
        .where(jobs.c.pk == row.pk)
        .values(
            attempt=row.attempt + 1,
            uuid=str(uuidlib.uuid4()),
            state=JobState.NEW.value,
            native_id=None,
            exit_code=None,
            signal=None,
            reason="",
            kill_requested=False,
            updated_at=now,
        )
    )
    conn.execute(
        transitions.insert().values(
            job_pk=row.pk,
            attempt=row.attempt + 1,
            old_state=row.state,
            new_state=JobState.NEW.value,
            at=now,
            reason=reason,
            applied=True,
        )
    )
    if row.sub != TOP:
        refresh_masters(conn, {row.job_id}, now)


def refresh_masters(conn: Connection, job_ids: Iterable[int], now: float | None = None) -> None:
    """Recompute each master's state from its subjobs and record the change if any."""
    now = time.time() if now is None else now
    for job_id in job_ids:
        master = conn.execute(
            select(jobs).where(jobs.c.job_id == job_id, jobs.c.sub == TOP)
        ).first()
        if master is None or master.subjobs == 0:
            continue
        counts = {
            JobState(state): n
            for state, n in conn.execute(
                select(jobs.c.state, func.count())
                .where(jobs.c.job_id == job_id, jobs.c.sub != TOP)
                .group_by(jobs.c.state)
            )
        }
        derived = master_state(counts)
        if derived.value == master.state:
            continue
        conn.execute(
            update(jobs).where(jobs.c.pk == master.pk).values(state=derived.value, updated_at=now)
        )
        conn.execute(
            transitions.insert().values(
                job_pk=master.pk,
                attempt=master.attempt,
                old_state=master.state,
                new_state=derived.value,
                at=now,
                reason="derived from subjobs",
                applied=True,
            )
        )
