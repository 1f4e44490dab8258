"""Helpers for the Slurm tests: attempts prepared like the monitor does, recorded fixtures, and
a small driver that applies observations the way the state machine does."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from corral import sandbox
from corral.backends.base import AsyncBackend
from corral.records import Attempt, JobId, Observation
from corral.spec import JobSpec
from corral.states import JobState, decide

FIXTURES = Path(__file__).parent / "fixtures"
SLURM = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        shutil.which("sbatch") is None and not os.environ.get("CORRAL_REQUIRE_SLURM"),
        reason="no Slurm here (scripts/test-slurm.sh starts one; CORRAL_REQUIRE_SLURM=1 "
        "turns this skip into a failure)",
    ),
]
"""Marks of the tests that need the real Slurm: they skip only where Slurm is absent and
CORRAL_REQUIRE_SLURM is not set (scripts/test-slurm.sh sets it)."""
DONE = frozenset({JobState.COMPLETING, JobState.FAILED, JobState.KILLED})


def fixture(name: str) -> str:
    """A recorded (or, where the name says so, synthetic) fixture's text; '' if absent."""
    path = FIXTURES / name
    return path.read_text() if path.exists() else ""


def attempt(
    root: Path,
    spec: JobSpec | None = None,
    *,
    job: int = 1,
    sub: int | None = None,
    state: JobState = JobState.SUBMITTING,
    native_id: str | None = None,
    prepare: bool = True,
) -> Attempt:
    """A fresh attempt under ``root`` whose dir holds job.sh, as the monitor leaves it."""
    spec = spec or JobSpec(command=("true",))
    key = str(uuid.uuid4())
    directory = root / key / "attempt-1"
    if prepare:
        sandbox.prepare(spec, directory)
    return Attempt(JobId(job, sub), key, 1, spec, directory, state, native_id)


def sweep(root: Path, count: int, **spec: Any) -> list[Attempt]:
    """``count`` attempts of one job whose points differ in an argument and an environment
    variable: point i prints ``point=i arg=i`` and exits ``i % 3``."""
    script = 'echo "point=$POINT arg=$1"; exit $(( $1 % 3 ))'
    result = []
    for i in range(count):
        job = JobSpec(
            command=("sh", "-c", script, "job"),
            arguments=(str(i),),
            environment={"POINT": str(i)},
            backend="slurm",
            **spec,
        )
        result.append(attempt(root, job, sub=i))
    return result


def with_state(item: Attempt, state: JobState, native_id: str | None = None) -> Attempt:
    return dataclasses.replace(item, state=state, native_id=native_id or item.native_id)


def submitted(items: Iterable[Attempt], ids: Mapping[str, str]) -> list[Attempt]:
    return [with_state(a, JobState.SUBMITTED, ids[a.uuid]) for a in items]


def apply(items: Sequence[Attempt], seen: Mapping[str, Observation]) -> list[Attempt]:
    """New attempts after the observations, moved as the state machine would move them."""
    result = []
    for item in items:
        obs = seen.get(item.uuid)
        if obs is not None:
            target = decide(item.state, obs.state, requeue=obs.requeue).target
            if target is not None:
                item = with_state(item, target, obs.native_id)
        result.append(item)
    return result


async def drive(
    backend: AsyncBackend,
    items: Sequence[Attempt],
    *,
    until: frozenset[JobState] = DONE,
    within: float = 60.0,
    interval: float = 0.3,
    log: dict[str, list[Observation]] | None = None,
) -> list[Attempt]:
    """Poll ``status`` like the monitor until every attempt is in ``until``."""
    deadline = time.monotonic() + within
    current = list(items)
    while not all(a.state in until for a in current):
        if time.monotonic() > deadline:
            states = {a.native_id: a.state.value for a in current}
            raise AssertionError(f"timed out waiting for {sorted(until)}: {states}")
        active = [a for a in current if a.state not in until]
        seen = await backend.status(active)
        if log is not None:
            for key, obs in seen.items():
                log.setdefault(key, []).append(obs)
        current = apply(current, seen)
        await asyncio.sleep(interval)
    return current
