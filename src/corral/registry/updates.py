"""Applying observations inside one write transaction: the state machine meets the tables.

Every state change is a compare-and-set (``WHERE state = :old AND attempt = :attempt``) and a row
in ``transitions``; an observation that changes nothing is kept as an unapplied event. A master's
state is recomputed from its subjobs once per transaction. A failed job with attempts left under
its spec's ``max_attempts`` starts its next attempt here, in the same transaction.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from corral.errors import WriteConflict
from corral.records import Observation
from corral.registry.schema import TOP, attempts, jobs, transitions
from corral.spec import read_stored_spec
from corral.states import ACTIVE, JobState, decide, master_state

SQLITE_BUSY = 5

Update = Observation
"""What the registry applies: a backend's observation or a monitor decision, keyed by uuid."""


_ROW_COLUMNS = (
    jobs.c.pk, jobs.c.job_id, jobs.c.sub, jobs.c.state, jobs.c.attempt, jobs.c.uuid,
    jobs.c.native_id, jobs.c.exit_code, jobs.c.signal, jobs.c.reason, jobs.c.kill_requested,
    jobs.c.usage,
)  # fmt: skip

# One statement for every row, so SQLAlchemy compiles it once and the batch is one executemany.
# The WHERE is a compare-and-set: a short row count means another writer got between our read
# and this update (possible where a transaction cannot take the write lock up front), and the
# transaction is rolled back and retried (``Registry._write``).
_CAS = (
    update(jobs)
    .where(
        jobs.c.pk == bindparam("b_pk"),
        jobs.c.state == bindparam("b_old"),
        jobs.c.attempt == bindparam("b_attempt"),
    )
    .values(
        state=bindparam("b_state"),
        updated_at=bindparam("b_now"),
        native_id=bindparam("b_native_id"),
        exit_code=bindparam("b_exit_code"),
        signal=bindparam("b_signal"),
        reason=bindparam("b_reason"),
        kill_requested=bindparam("b_kill"),
        usage=bindparam("b_usage"),
    )
)


_ROWS = select(*_ROW_COLUMNS).where(jobs.c.uuid.in_(bindparam("uuids", expanding=True)))
_EVENTS = transitions.insert()
_MASTER = select(jobs).where(jobs.c.job_id == bindparam("m_job"), jobs.c.sub == TOP)
_COUNTS = (
    select(jobs.c.state, func.count())
    .where(jobs.c.job_id == bindparam("m_job"), jobs.c.sub != TOP)
    .group_by(jobs.c.state)
)


def apply_updates(conn: Connection, updates: Sequence[Update], now: float) -> None:
    rows: dict[str, _Row] = {}
    for i in range(0, len(updates), 500):
        uuids = [u.uuid for u in updates[i : i + 500]]
        for found in conn.execute(_ROWS, {"uuids": uuids}):
            rows[found.uuid] = _Row(found._mapping)
    before = {uuid: row.state for uuid, row in rows.items()}
    events: list[dict[str, Any]] = []
    dirty: set[str] = set()
    for item in updates:
        row = rows.get(item.uuid)
        if row is None:
            continue  # removed, or an attempt that was superseded
        current = JobState(row.state)
        decision = decide(current, item.state, requeue=item.requeue)
        if not decision.changes:
            if item.state not in (current, JobState.UNKNOWN):
                events.append(_event(row, current, item.state, now, item.reason, applied=False))
            elif _hold_changed(row, item, current):
                rows[item.uuid] = _Row(row, reason=item.reason or "released from hold")
                events.append(
                    _event(row, current, current, now, rows[item.uuid].reason, applied=False)
                )
                dirty.add(item.uuid)
            continue
        rows[item.uuid] = row.observe(item, decision.steps[-1])
        for step in decision.steps:
            events.append(_event(row, current, step, now, item.reason))
            current = step
        dirty.add(item.uuid)
    params = [rows[u].params(before[u], now) for u in dirty]
    if params:
        result = conn.execute(_CAS, params)
        if result.rowcount != len(params):
            raise WriteConflict("a job changed under a write transaction; nothing was applied")
    if events:
        conn.execute(_EVENTS, events)
    _retry_failed(conn, [rows[u] for u in dirty if rows[u].state == JobState.FAILED.value], now)
    refresh_masters(conn, {rows[u].job_id for u in dirty if rows[u].sub != TOP}, now)


def _retry_failed(conn: Connection, failed: Sequence[_Row], now: float) -> None:
    """Failed attempts with attempts left under the spec's ``max_attempts`` start the next one."""
    for row in failed:
        spec_text = conn.execute(select(jobs.c.spec).where(jobs.c.pk == row.pk)).scalar_one()
        limit = read_stored_spec(spec_text)[0].max_attempts  # (a placeholder: 1)
        if row.attempt < limit:
            reason = f"automatic resubmission (attempt {row.attempt + 1} of {limit})"
            archive_and_renew(conn, row, now, reason)


def _hold_changed(row: _Row, item: Update, current: JobState) -> bool:
    """A queued job held or released (same state, a reason to record): the reason changes, an
    unapplied event keeps the moment."""
    if current != JobState.SUBMITTED or item.state != current:
        return False
    was_held = str(row.reason).startswith("held: ")
    return item.reason != row.reason if item.held else was_held


class _Row(dict[str, Any]):
    """A jobs row as a dict with attribute access, updated as the batch applies."""

    def __getattr__(self, name: str) -> Any:
        return self[name]

    def observe(self, item: Update, target: JobState) -> _Row:
        """This row after ``item`` moved it to ``target``."""
        values: dict[str, Any] = {"state": target.value}
        for key in ("exit_code", "signal", "native_id"):
            if getattr(item, key) is not None:
                values[key] = getattr(item, key)
        if item.reason and target != JobState.UNKNOWN:
            values["reason"] = item.reason
        if target.final:
            values["kill_requested"] = False
        if item.usage is not None:
            values["usage"] = json.dumps(item.usage.to_json())
        return _Row(self, **values)

    def params(self, old_state: str, now: float) -> dict[str, Any]:
        return {
            "b_pk": self["pk"], "b_old": old_state, "b_attempt": self["attempt"],
            "b_state": self["state"], "b_now": now, "b_native_id": self["native_id"],
            "b_exit_code": self["exit_code"], "b_signal": self["signal"],
            "b_reason": self["reason"], "b_kill": self["kill_requested"],
            "b_usage": self["usage"],
        }  # fmt: skip


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
            usage=row.usage,
        )
    )
    renewed = conn.execute(
        update(jobs)
        .where(jobs.c.pk == row.pk, jobs.c.attempt == row.attempt, jobs.c.state == row.state)
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
            usage=None,
        )
    )
    if renewed.rowcount != 1:  # compare-and-set: someone else renewed or moved it first
        raise WriteConflict(f"job {row.job_id} changed under a write transaction")
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
        master = conn.execute(_MASTER, {"m_job": job_id}).first()
        if master is None or master.subjobs == 0:
            continue
        counts = {JobState(state): n for state, n in conn.execute(_COUNTS, {"m_job": job_id})}
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


def lost_race(exc: Exception) -> bool:
    if isinstance(exc, WriteConflict):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    return code is not None and code & 0xFF == SQLITE_BUSY


def active_units(conn: Connection, job_id: int) -> int:
    query = select(func.count()).where(
        jobs.c.job_id == job_id, jobs.c.subjobs == 0, jobs.c.state.in_([s.value for s in ACTIVE])
    )
    return int(conn.execute(query).scalar_one())


def delete_job(conn: Connection, job_id: int) -> None:
    pks = select(jobs.c.pk).where(jobs.c.job_id == job_id).scalar_subquery()
    conn.execute(transitions.delete().where(transitions.c.job_pk.in_(pks)))
    conn.execute(attempts.delete().where(attempts.c.job_pk.in_(pks)))
    conn.execute(jobs.delete().where(jobs.c.job_id == job_id))
