"""The registry's identity and its id counter: plain SQL that any database runs.

A registry has a uuid (``meta.registry_uuid``), made once when it is created. Short job ids come
from ``counters.job_id``, bumped in the transaction that stores the job, so an id is never handed
out twice, even after the newest job is removed (``max(job_id) + 1`` would reuse it).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from corral.registry.schema import counters, jobs, meta

REGISTRY_UUID = "registry_uuid"
JOB_ID = "job_id"


def ensure(engine: Engine) -> str:
    """Create the identity rows of a new registry if they are missing; return its uuid."""
    with engine.connect() as conn:
        found = conn.execute(select(meta.c.value).where(meta.c.key == REGISTRY_UUID)).scalar()
        counted = conn.execute(select(counters.c.value).where(counters.c.name == JOB_ID)).scalar()
    if found is not None and counted is not None:
        return str(found)
    try:
        with engine.begin() as conn:
            if found is None:
                conn.execute(meta.insert().values(key=REGISTRY_UUID, value=uuid.uuid4().hex))
            if counted is None:
                highest = conn.execute(select(func.coalesce(func.max(jobs.c.job_id), 0)))
                conn.execute(counters.insert().values(name=JOB_ID, value=highest.scalar_one()))
    except IntegrityError:
        pass  # another process created them first: theirs are the ones
    with engine.connect() as conn:
        return str(conn.execute(select(meta.c.value).where(meta.c.key == REGISTRY_UUID)).scalar())


NEXT_JOB_ID_SQL = "UPDATE counters SET value = value + 1 WHERE name = 'job_id' RETURNING value"
"""``next_job_id`` as plain SQL, for a caller on the driver's cursor (``Registry.add``)."""


def next_job_id(conn: Connection) -> int:
    """The next short id, taken inside the caller's write transaction."""
    taken = conn.execute(
        update(counters)
        .where(counters.c.name == JOB_ID)
        .values(value=counters.c.value + 1)
        .returning(counters.c.value)
    ).scalar_one()
    return int(taken)
