"""The rows of a new job, written with plain SQL on the driver's cursor (the hot path of
one-at-a-time submits: SQLAlchemy's compilation cost three quarters of a submit)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from pathlib import Path

from corral.records import Attempt, JobId
from corral.registry import identity, rows
from corral.registry.driver import sqlite3
from corral.registry.schema import TOP
from corral.spec import JobSpec
from corral.states import JobState

_INSERT_JOB = (
    "INSERT INTO jobs (job_id, backend, tags, state, created_at, updated_at, sub, name, spec, "
    "uuid, job_dir, subjobs, reason, attempt, kill_requested, removing) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, 0)"
)
CLAIMED = "claimed by monitor"
SUBMITTING = JobState.SUBMITTING.value
_CLAIM_HISTORY = (  # units first, then the master: the order claim_new's transaction writes
    "INSERT INTO transitions (job_pk, attempt, old_state, new_state, at, reason, applied) "
    "SELECT pk, 1, 'new', 'submitting', ?, CASE WHEN subjobs > 0 THEN 'derived from subjobs' "
    f"ELSE '{CLAIMED}' END, 1 FROM jobs WHERE job_id = ? ORDER BY subjobs > 0, pk"
)
FENCE = "UPDATE lease SET heartbeat = ? WHERE id = 1 AND epoch = ?"
_CREATED = (
    "INSERT INTO transitions (job_pk, attempt, old_state, new_state, at, reason, applied) "
    "SELECT pk, 1, NULL, 'new', ?, 'created', 1 FROM jobs WHERE job_id = ? ORDER BY pk"
)

Inserted = tuple[int, list[str], Path]
"""(job id, the uuids of the master then of each subjob, the job dir)."""


def insert_job(
    cursor: sqlite3.Cursor,
    job_root: Path,
    spec: JobSpec,
    subspecs: Sequence[JobSpec],
    now: float,
    *,
    claimed: bool = False,
) -> Inserted:
    """A new job's rows and ``created`` history, inside the caller's write transaction.
    ``claimed``: every row ``submitting`` (a master of all-submitting subjobs is too), with the
    history a claim writes."""
    job_id = int(cursor.execute(identity.NEXT_JOB_ID_SQL).fetchone()[0])
    job_dir = job_root / str(job_id)
    tags = rows.encode_tags(spec.tags)
    state, reason = (SUBMITTING, CLAIMED) if claimed else (JobState.NEW.value, "")
    common = (job_id, spec.backend, tags, state, now, now)
    uuids = [str(uuidlib.uuid4()) for _ in range(len(subspecs) + 1)]
    count, top_reason = len(subspecs), "" if subspecs else reason
    values = [(*common, TOP, spec.name, spec.to_json(), uuids[0], str(job_dir), count, top_reason)]
    values += [
        (*common, i, s.name, s.to_json(), uuids[i + 1], str(job_dir / str(i)), 0, reason)
        for i, s in enumerate(subspecs)
    ]
    cursor.executemany(_INSERT_JOB, values)
    cursor.execute(_CREATED, (now, job_id))
    if claimed:
        cursor.execute(_CLAIM_HISTORY, (now, job_id))
    return job_id, uuids, job_dir


def claimed_attempts(
    inserted: Inserted, spec: JobSpec, subspecs: Sequence[JobSpec]
) -> list[Attempt]:
    """The attempts of a job ``insert_job(..., claimed=True)`` stored: what the monitor
    submits (as ``rows.attempt_of`` would read them back)."""
    job_id, uuids, job_dir = inserted
    units = (
        [(JobId(job_id), uuids[0], spec, job_dir)]
        if not subspecs
        else [
            (JobId(job_id, i), uuids[i + 1], sub, job_dir / str(i))
            for i, sub in enumerate(subspecs)
        ]
    )
    return [
        Attempt(unit_id, uuid, 1, unit, unit_dir / "attempt-1", JobState.SUBMITTING)
        for unit_id, uuid, unit, unit_dir in units
    ]
