"""SlurmBackend against the real single-node Slurm that ``scripts/test-slurm.sh`` starts.

The same tests run in three cluster set-ups (accounting or not, finished jobs kept in squeue for an
hour or for two seconds); the few that only make sense in one set-up say so when they skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.backends.base import BackendConfig
from corral.backends.runfiles import read_run_files
from corral.backends.slurm import SlurmBackend, parse
from corral.records import Attempt, Observation
from corral.spec import JobSpec, Resources
from corral.states import JobState
from tests.slurm.helpers import DONE, SLURM, attempt, drive, submitted, sweep, with_state

pytestmark = SLURM
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclasses.dataclass(frozen=True)
class Cluster:
    accounting: bool
    min_job_age: int


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    text = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    config = parse.parse_config(text)
    age = config.get("MinJobAge", "300").split()[0]
    return Cluster(parse.cluster_info(config).accounting, int(age))


class Harness:
    """A backend plus what the test submitted, so that nothing outlives the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reports: list[Observation] = []
        self.ids: list[str] = []

    def backend(self, **options: Any) -> SlurmBackend:
        return run(self.started(**options))

    async def started(self, **options: Any) -> SlurmBackend:
        """A backend as the monitor has it: constructed, then started."""
        slurm = SlurmBackend(BackendConfig("slurm", self.root, options))
        await slurm.start(self.reports.append)
        return slurm

    async def submit(self, slurm: SlurmBackend, items: list[Attempt]) -> list[Attempt]:
        result = await slurm.submit(items)
        assert not result.refused, result.refused
        self.ids += result.accepted.values()
        return submitted(items, result.accepted)


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, timeout=30)


def held(root: Path, command: tuple[str, ...] = ("true",), **spec: Any) -> Attempt:
    options = {"extra_sbatch_args": ["--hold"]}
    return attempt(root, JobSpec(command=command, backend_options=options, **spec))


def wait_gone(ids: list[str], within: float = 60) -> None:
    """Until squeue has forgotten every job (MinJobAge)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-r", "-o", "%i", "-j", ",".join(ids)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if not out.stdout.strip():
            return
        time.sleep(0.5)
    raise AssertionError(f"jobs {ids} still in squeue after {within} s")


def test_a_sweep_is_one_sbatch_and_each_cycle_one_squeue(harness: Harness) -> None:
    slurm = harness.backend()
    points = sweep(harness.root, 6)

    async def go() -> list[Attempt]:
        jobs = await harness.submit(slurm, points)
        assert slurm.calls["sbatch"] == 1
        array = jobs[0].native_id.split("_")[0] if jobs[0].native_id else ""
        assert [j.native_id for j in jobs] == [f"{array}_{i}" for i in range(6)]
        while not all(j.state in DONE for j in jobs):
            before = dict(slurm.calls)
            seen = await slurm.status([j for j in jobs if j.state not in DONE])
            assert slurm.calls["squeue"] - before.get("squeue", 0) <= 1
            assert slurm.calls["sacct"] - before.get("sacct", 0) <= 1
            jobs = [with_state(j, seen[j.uuid].state) if j.uuid in seen else j for j in jobs]
            if any(o.state == JobState.COMPLETING for o in seen.values()):
                for j in jobs:
                    if j.uuid in seen and seen[j.uuid].state == JobState.COMPLETING:
                        assert seen[j.uuid].exit_code == int(j.spec.arguments[0]) % 3
            await asyncio.sleep(0.3)
        return jobs

    run(asyncio.wait_for(go(), 60))
    for i, point in enumerate(points):
        assert (point.attempt_dir / "stdout").read_text() == f"point={i} arg={i}\n"
    assert slurm.calls["sbatch"] == 1 and slurm.calls["scontrol"] == 1


def test_a_pending_job_cancelled_by_someone_else_is_killed(harness: Harness) -> None:
    slurm = harness.backend()
    log: dict[str, list[Observation]] = {}

    async def go() -> Attempt:
        (job,) = await harness.submit(slurm, [held(harness.root)])
        (job,) = await drive(
            slurm,
            [with_state(job, JobState.SUBMITTING)],
            until=frozenset({JobState.SUBMITTED}),
            log=log,
        )
        assert job.native_id is not None
        await asyncio.to_thread(subprocess.run, ["scancel", job.native_id], check=True)
        (job,) = await drive(slurm, [job], log=log)
        return job

    job = run(go())
    assert job.state == JobState.KILLED
    assert log[job.uuid][0].reason == "held: JobHeldUser"
    assert log[job.uuid][-1].reason.startswith("CANCELLED")
    assert read_run_files(job.attempt_dir).run is None  # it never ran: no status files


@pytest.mark.timeout(300)
def test_a_job_hitting_its_time_limit_fails_with_timeout(harness: Harness) -> None:
    slurm = harness.backend()
    spec = JobSpec(command=("sleep", "600"), resources=Resources(walltime=60))
    log: dict[str, list[Observation]] = {}

    async def go() -> Attempt:
        jobs = await harness.submit(slurm, [attempt(harness.root, spec)])
        (job,) = await drive(slurm, jobs, within=240, interval=0.5, log=log)
        return job

    job = run(go())
    assert job.state == JobState.FAILED
    assert log[job.uuid][-1].reason.startswith("TIMEOUT")
    files = read_run_files(job.attempt_dir)
    # It ran; its end, if recorded at all, is never taken as a clean one: either the wrapper
    # saw Slurm's TERM, or (TERM reached the job first, a race) the code says a signal.
    assert files.run == 0
    assert files.exit is None or not files.exit.clean


def test_reconcile_finds_jobs_by_label_after_a_crash(harness: Harness) -> None:
    first = harness.backend()
    points = [held(harness.root) for _ in range(3)]
    single = attempt(harness.root, JobSpec(command=("true",)))

    async def go() -> None:
        jobs = await harness.submit(first, points)
        (done,) = await harness.submit(first, [single])
        await drive(first, [done])  # finished: its wrapper recorded the native id
        # the monitor died before it stored any native id: a new process reconciles
        after = await harness.started()
        found = await after.reconcile([*points, single])
        assert found == {j.uuid: j.native_id for j in [*jobs, done]}
        assert after.calls["squeue"] == 1 and after.calls["sbatch"] == 0
        # a submit retried with the same attempts submits nothing again
        again = await (await harness.started()).submit([*points, single])
        assert again.accepted == found and not again.refused

    run(go())
    assert first.calls["sbatch"] == 2


def test_reconcile_uses_sacct_once_the_job_left_squeue(harness: Harness, cluster: Cluster) -> None:
    if not cluster.accounting or cluster.min_job_age > 30:
        pytest.skip("needs accounting and a small MinJobAge (WITH_SACCT=1 MIN_JOB_AGE=2)")
    slurm = harness.backend()

    async def go() -> None:
        (job,) = await harness.submit(slurm, [held(harness.root)])
        await asyncio.to_thread(subprocess.run, ["scancel", job.native_id or ""], check=True)
        await asyncio.to_thread(wait_gone, [job.native_id or ""])
        after = await harness.started()
        assert await after.reconcile([job]) == {job.uuid: job.native_id}
        assert after.calls["sacct"] == 1

    run(go())


def test_kill_is_one_scancel_for_every_job(harness: Harness) -> None:
    slurm = harness.backend()
    sleepers = [attempt(harness.root, JobSpec(command=("sleep", "600"))) for _ in range(4)]
    other = attempt(harness.root, JobSpec(command=("sleep", "600"), resources=Resources(cpus=2)))

    async def go() -> list[Attempt]:
        jobs = await harness.submit(slurm, [*sleepers, other])
        assert slurm.calls["sbatch"] == 2  # two resource shapes: two arrays
        await slurm.cancel(jobs)
        assert slurm.calls["scancel"] == 1
        return await drive(slurm, jobs)

    assert [j.state for j in run(go())] == [JobState.KILLED] * 5


def test_jobs_gone_from_squeue_are_resolved_by_sacct_or_exit_files(
    harness: Harness, cluster: Cluster
) -> None:
    if cluster.min_job_age > 30:
        pytest.skip("needs a small MinJobAge (MIN_JOB_AGE=2) so that jobs leave squeue")
    slurm = harness.backend(lost_after=0)
    pending = held(harness.root)
    failing = attempt(harness.root, JobSpec(command=("sh", "-c", "exit 3")))
    running = attempt(harness.root, JobSpec(command=("sleep", "600")))

    async def go() -> dict[str, Observation]:
        a, b, c = await harness.submit(slurm, [pending, failing, running])
        (c,) = await drive(slurm, [c], until=frozenset({JobState.RUNNING}))
        await asyncio.to_thread(subprocess.run, ["scancel", a.native_id or "", c.native_id or ""])
        await asyncio.to_thread(wait_gone, [j.native_id or "" for j in (a, b, c)])
        (b.attempt_dir / "run-exit.0").unlink()  # only the scheduler can tell now
        after = await harness.started(lost_after=0)
        seen = await after.status([a, b, c])
        assert after.calls["squeue"] == 1
        assert after.calls["sacct"] == (1 if cluster.accounting else 0)
        return seen

    seen = run(go())
    a, b, c = (seen[j.uuid] for j in (pending, failing, running))
    if cluster.accounting:
        assert (a.state, a.reason) == (JobState.KILLED, "CANCELLED by uid 0")
        assert (b.state, b.exit_code) == (JobState.COMPLETING, 3)
        assert c.state == JobState.KILLED
    else:
        assert a.state == b.state == JobState.FAILED and a.reason.startswith("LOST")
        assert c.state == JobState.FAILED and "stopped by Slurm" in c.reason


def test_a_refused_submission_refuses_its_attempts_with_sbatchs_reason(harness: Harness) -> None:
    slurm = harness.backend(partition="no-such-partition")
    items = sweep(harness.root, 2)
    result = run(slurm.submit(items))
    assert not result.accepted and set(result.refused) == {a.uuid for a in items}
    assert all("Invalid partition name" in why for why in result.refused.values())


def test_max_array_size_splits_a_sweep(harness: Harness) -> None:
    slurm = harness.backend()

    async def go() -> list[Attempt]:
        info = await slurm.cluster()
        slurm._cluster = dataclasses.replace(info, max_array_size=2)
        jobs = await harness.submit(slurm, sweep(harness.root, 5))
        assert slurm.calls["sbatch"] == 3
        return await drive(slurm, jobs)

    jobs = run(go())
    assert [j.state for j in jobs] == [JobState.COMPLETING] * 5


def test_an_id_squeue_does_not_know(harness: Harness) -> None:
    slurm = harness.backend(lost_after=3600)
    ghost = attempt(harness.root, state=JobState.RUNNING, native_id="999999")
    seen = run(slurm.status([ghost]))
    assert seen[ghost.uuid].state == JobState.UNKNOWN
