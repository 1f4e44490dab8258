"""Converting between table rows and plain records; the selection a query filters on."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, or_

from corral.records import Attempt, JobId, JobRecord, Transition, Usage
from corral.registry import sql
from corral.registry.schema import TOP, jobs
from corral.selection import Selection
from corral.spec import read_stored_spec
from corral.states import JobState


def to_sub(sub: int | None) -> int:
    return TOP if sub is None else sub


def from_sub(sub: int) -> int | None:
    return None if sub == TOP else sub


def encode_tags(tags: Sequence[str]) -> str:
    return "," + ",".join(tags) + "," if tags else ""


def decode_tags(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split(",") if t)


def job_record(row: Row[Any], counts: dict[JobState, int] | None = None) -> JobRecord:
    m = row._mapping
    spec, problem = read_stored_spec(m["spec"])
    return JobRecord(
        id=JobId(m["job_id"], from_sub(m["sub"])),
        name=m["name"],
        spec=spec,
        problem=problem,
        state=JobState(m["state"]),
        attempt=m["attempt"],
        uuid=m["uuid"],
        backend=m["backend"],
        tags=decode_tags(m["tags"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        native_id=m["native_id"],
        exit_code=m["exit_code"],
        signal=m["signal"],
        reason=m["reason"],
        job_dir=Path(m["job_dir"]) if m["job_dir"] else None,
        subjobs=m["subjobs"],
        kill_requested=bool(m["kill_requested"]),
        counts=counts or {},
        usage=read_usage(m.get("usage")),
    )


def read_usage(text: object) -> Usage | None:
    """A stored ``usage`` column back (None if absent or unreadable: it is information only)."""
    if not isinstance(text, str):
        return None
    try:
        return Usage.from_json(json.loads(text))
    except ValueError:
        return None


def attempt_of(row: Row[Any]) -> Attempt:
    m = row._mapping
    job_dir = Path(m["job_dir"])
    spec, problem = read_stored_spec(m["spec"])
    return Attempt(
        id=JobId(m["job_id"], from_sub(m["sub"])),
        uuid=m["uuid"],
        attempt=m["attempt"],
        spec=spec,
        problem=problem,
        attempt_dir=job_dir / f"attempt-{m['attempt']}",
        state=JobState(m["state"]),
        native_id=m["native_id"],
    )


def transition_of(row: Row[Any]) -> Transition:
    m = row._mapping
    return Transition(
        seq=m["seq"],
        id=JobId(m["job_id"], from_sub(m["sub"])),
        attempt=m["attempt"],
        old=JobState(m["old_state"]) if m["old_state"] else None,
        new=JobState(m["new_state"]),
        at=m["at"],
        reason=m["reason"],
        applied=bool(m["applied"]),
    )


def _ids(ids: Sequence[JobId]) -> ColumnElement[bool]:
    """These (job, sub) pairs: top-level ids as one ``IN`` (an OR of 200 pairs took SQLAlchemy
    several ms to build and compile per query), subjob ids as pairs."""
    tops = [i.job for i in ids if i.sub is None]
    subs = [i for i in ids if i.sub is not None]
    terms = [and_(jobs.c.job_id == i.job, jobs.c.sub == to_sub(i.sub)) for i in subs]
    if tops:
        terms.append(and_(jobs.c.job_id.in_(tops), jobs.c.sub == TOP))
    return or_(*terms)


def where(selection: Selection) -> ColumnElement[bool]:
    """The SQL condition, over top-level rows unless ids name subjobs."""
    clauses: list[ColumnElement[bool]] = [jobs.c.removing.is_(False)]  # (tombstones: removed)
    if selection.ids:
        clauses.append(_ids(selection.ids))
    else:
        clauses.append(jobs.c.sub == TOP)
    if selection.states:
        clauses.append(jobs.c.state.in_([s.value for s in selection.states]))
    if selection.names:
        clauses.append(or_(*(sql.glob(jobs.c.name, n) for n in selection.names)))
    if selection.tags:
        clauses.append(or_(*(jobs.c.tags.contains(f",{t},") for t in selection.tags)))
    if selection.backends:
        clauses.append(jobs.c.backend.in_(selection.backends))
    now = time.time()
    if selection.older_than is not None:
        clauses.append(jobs.c.created_at <= now - selection.older_than)
    if selection.newer_than is not None:
        clauses.append(jobs.c.created_at >= now - selection.newer_than)
    return and_(*clauses)
