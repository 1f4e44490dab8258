"""The Grid Engine backend against the real Grid Engine (scripts/test-sge.sh starts it)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from corral.backends.base import BackendConfig
from corral.backends.runfiles import TICKET, read_run_files
from corral.backends.sge import SgeBackend, parse
from corral.records import Observation
from corral.spec import JobSpec
from corral.states import JobState
from tests.sge.helpers import SGE
from tests.slurm.helpers import attempt, drive, submitted, sweep, with_state

pytestmark = [*SGE, pytest.mark.timeout(180)]


def backend(tmp_path: Path, **options: object) -> SgeBackend:
    return SgeBackend(BackendConfig("sge", tmp_path, dict(options), kind="sge"))


async def started(sge: SgeBackend) -> SgeBackend:
    await sge.start(lambda obs: None)
    return sge


def test_a_sweep_is_one_array_job_and_each_cycle_is_one_qstat(tmp_path: Path) -> None:
    async def body() -> None:
        sge = await started(backend(tmp_path))
        points = sweep(tmp_path, 6)
        result = await sge.submit(points)
        assert sge.calls["qsub"] == 1 and not result.refused
        assert len({parse.job_of(n) for n in result.accepted.values()}) == 1
        before = sge.calls["qstat"]
        await sge.status(submitted(points, result.accepted))
        assert sge.calls["qstat"] - before == 1
        done = await drive(sge, submitted(points, result.accepted), within=120)
        final = await sge.status([with_state(a, JobState.RUNNING) for a in done])
        for i, item in enumerate(points):
            obs = final[item.uuid]
            assert (obs.state, obs.exit_code) == (JobState.COMPLETING, i % 3), obs
            assert obs.usage is not None and obs.usage.wall_seconds is not None
            out = (item.attempt_dir / "stdout").read_text()
            assert out == f"point={i} arg={i}\n"

    asyncio.run(body())


def test_a_killed_job_leaves_no_accounting_error_and_qacct_gives_usage(tmp_path: Path) -> None:
    async def body() -> None:
        sge = await started(backend(tmp_path))
        job = attempt(tmp_path, JobSpec(command=("sleep", "60")))
        result = await sge.submit([job])
        (item,) = submitted([job], result.accepted)
        (item,) = await drive(sge, [item], until=frozenset({JobState.RUNNING}), within=60)
        await sge.cancel([item])
        await sge.cancel([item])  # a second qdel of a job that has gone is not an error
        seen = await _until_final(sge, item)
        assert seen.state in (JobState.COMPLETING, JobState.FAILED, JobState.KILLED), seen
        assert seen.usage is not None and seen.usage.host

    asyncio.run(body())


async def _until_final(sge: SgeBackend, item: object, within: float = 30) -> Observation:
    deadline = time.monotonic() + within
    while True:
        (obs,) = (await sge.status([item])).values()  # type: ignore[list-item]
        if obs.state.final or obs.state == JobState.COMPLETING or time.monotonic() > deadline:
            return obs
        await asyncio.sleep(0.3)


def test_hold_and_release_a_queued_job(tmp_path: Path) -> None:
    async def body() -> None:
        sge = await started(backend(tmp_path))
        runner = with_state(attempt(tmp_path, JobSpec(command=("true",))), JobState.RUNNING)
        # a job that cannot start for an hour: it stays queued while we hold it
        later = {"extra_qsub_args": ["-a", "203001010000"]}
        job = attempt(tmp_path, JobSpec(command=("true",), backend_options=later))
        result = await sge.submit([job])
        (item,) = submitted([job], result.accepted)
        refused = await sge.hold([item, runner], "for a test")
        assert refused == {runner.uuid: "running jobs cannot be held"}
        (obs,) = (await sge.status([item])).values()
        assert obs.state == JobState.SUBMITTED and obs.held and obs.reason.startswith("held: ")
        assert await sge.release([item]) == {}
        (obs,) = (await sge.status([item])).values()
        assert obs.state == JobState.SUBMITTED and not obs.held
        await sge.cancel([item])
        assert await sge.hold([item], "gone") == {item.uuid: "no longer in the Grid Engine queue"}

    asyncio.run(body())


def test_a_job_in_error_state_fails_with_its_reason_and_is_deleted(tmp_path: Path) -> None:
    async def body() -> None:
        sge = await started(backend(tmp_path))
        job = attempt(tmp_path, JobSpec(command=("true",)))
        # Eqw as users meet it: an output path that cannot be opened when the job starts
        argv = ["qsub", "-terse", "-N", job.label, "-o", "no-such-dir/out", "-b", "y", "/bin/true"]
        out = await sge.runner.check(argv)
        item = with_state(job, JobState.SUBMITTED, parse.parse_qsub(out.stdout))
        seen = await _until_final(sge, item, within=60)
        assert seen.state == JobState.FAILED, seen
        assert seen.reason.startswith("held: ") and "can't open output file" in seen.reason
        gone = await sge.runner.run(["qstat", "-j", item.native_id or ""])
        assert gone.returncode != 0  # qdel'ed

    asyncio.run(body())


def test_reconcile_finds_a_submitted_array_by_its_name(tmp_path: Path) -> None:
    async def body() -> None:
        sge = await started(backend(tmp_path))
        points = sweep(tmp_path, 3)
        result = await sge.submit(points)
        assert all((p.attempt_dir / TICKET).exists() for p in points)
        fresh = backend(tmp_path)
        assert await fresh.reconcile(points) == result.accepted
        assert await fresh.submit(points) == result  # a repeated submit submits nothing
        assert fresh.calls["qsub"] == 0
        await drive(sge, submitted(points, result.accepted), within=60)

    asyncio.run(body())


def test_a_parallel_environment_gives_a_job_its_slots(tmp_path: Path) -> None:
    async def body() -> None:
        sge = await started(backend(tmp_path, pe="smp"))
        spec = JobSpec(command=("sh", "-c", "echo $NSLOTS"), resources={"cpus": 2})
        job = attempt(tmp_path, spec)
        result = await sge.submit([job])
        assert not result.refused, result
        await drive(sge, submitted([job], result.accepted), within=60)
        assert (job.attempt_dir / "stdout").read_text().strip() == "2"

    asyncio.run(body())


def test_a_job_exiting_99_is_rescheduled_and_its_rerun_is_the_end(tmp_path: Path) -> None:
    # exit 99 from a job script makes Grid Engine run the job again: that exit is not the end
    script = "if [ -e tried ]; then echo rerun; else touch tried; exit 99; fi"
    log: dict[str, list[Observation]] = {}

    async def body() -> None:
        sge = await started(backend(tmp_path))
        job = attempt(tmp_path, JobSpec(command=("sh", "-c", script)))
        result = await sge.submit([job])
        (item,) = await drive(sge, submitted([job], result.accepted), within=120, log=log)
        assert item.state == JobState.COMPLETING, log

    asyncio.run(body())
    (obs,) = [o for seen in log.values() for o in seen if o.state == JobState.COMPLETING]
    assert obs.exit_code == 0 and not [o for o in log.values() for x in o if x.exit_code == 99]
    (uuid,) = log
    attempt_dir = next(tmp_path.glob(f"{uuid}/attempt-1"))
    assert (attempt_dir / "stdout").read_text() == "rerun\n"
    assert read_run_files(attempt_dir).run == 1 and (attempt_dir / "run-exit.0").exists()
