"""Requeues on the real Slurm (``scripts/test-slurm.sh``): a requeued job goes back to submitted
and reruns, and a later run that never reached corral's wrapper is never judged by the killed
run's exit (see test_requeue.py for the same on recorded output)."""

from __future__ import annotations

import asyncio
import subprocess
import time

from corral.backends.runfiles import read_run_files
from corral.backends.slurm import SlurmBackend, render
from corral.records import Attempt, Observation
from corral.spec import JobSpec
from corral.states import JobState
from tests.slurm.helpers import SLURM, apply, attempt, drive
from tests.slurm.test_integration import Harness, run, scontrol

pytestmark = SLURM
# the first run sleeps until Slurm requeues it (its TERM ends the run: 143, whichever of the
# shell and the sleep it reaches first); the second prints
SCRIPT = (
    'if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 600; exit 143; fi; '
    'echo "run=$SLURM_RESTART_COUNT"'
)
SPEC = JobSpec(command=("sh", "-c", SCRIPT))
Log = dict[str, list[Observation]]


async def requeued(slurm: SlurmBackend, job: Attempt, log: Log) -> Attempt:
    """Run 0 running under the wrapper, requeued by ``scontrol requeue`` and seen back in
    submitted; returns once Slurm has finished the requeue (the killed run cleaned up)."""
    (job,) = await drive(slurm, [job], until=frozenset({JobState.RUNNING}), log=log)
    deadline = time.monotonic() + 60
    while read_run_files(job.attempt_dir).run != 0:  # the wrapper is past its start file
        assert time.monotonic() < deadline, f"job {job.native_id}: no run-start.0"
        await asyncio.sleep(0.1)
    await asyncio.to_thread(scontrol, "requeue", job.native_id or "")
    requeued_at = time.time()
    (job,) = await drive(slurm, [job], until=frozenset({JobState.SUBMITTED}), log=log)
    # Slurm ends a requeue by setting the job's begin time (now + the credential lifetime):
    # a StartTime=now sent before that would be overwritten and the job never start again
    deadline = time.monotonic() + 60
    while await asyncio.to_thread(reason_of, job) != "BeginTime":
        assert time.monotonic() < deadline, f"job {job.native_id} never finished its requeue"
        await asyncio.sleep(0.1)
    # That begin time keeps the next run's job credential newer than the one slurmd revoked
    # at the requeue; a relaunch within the requeue's second is refused (FAILED). Overriding
    # the begin time, wait for the next second as Slurm would have.
    await asyncio.sleep(max(0.0, int(requeued_at) + 1 - time.time()))
    return job


def reason_of(job: Attempt) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job.native_id or "", "-o", "%r"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return out.stdout.strip()


def test_a_requeued_job_goes_back_to_submitted_and_reruns(harness: Harness) -> None:
    slurm = harness.backend()
    log: Log = {}

    async def go() -> Attempt:
        (job,) = await harness.submit(slurm, [attempt(harness.root, SPEC)])
        job = await requeued(slurm, job, log)
        await asyncio.to_thread(scontrol, "update", f"jobid={job.native_id}", "StartTime=now")
        (job,) = await drive(slurm, [job], log=log)
        return job

    job = run(go())
    assert job.state == JobState.COMPLETING
    assert any(o.requeue and o.state == JobState.SUBMITTED for o in log[job.uuid])
    assert log[job.uuid][-1].exit_code == 0, log[job.uuid]
    files = read_run_files(job.attempt_dir)
    assert files.run == 1 and files.exit is not None and files.exit.clean
    assert (job.attempt_dir / "run-start.0").exists()
    assert (job.attempt_dir / "stdout").read_text() == "run=1\n"


def test_a_rerun_that_never_reached_the_wrapper_is_not_judged_by_the_killed_run(
    harness: Harness,
) -> None:
    # run 1 lands where the attempt dir cannot be entered (a filesystem the node lacks): the
    # wrapper exits 125 before it records run 1, so run 0's exit (the requeue's TERM ended it)
    # stays the latest file
    slurm = harness.backend()
    log: Log = {}

    async def go() -> Attempt:
        (job,) = await harness.submit(slurm, [attempt(harness.root, SPEC)])
        job = await requeued(slurm, job, log)
        (job.attempt_dir / render.TASKS).write_text(f"{harness.root}/nowhere\n")
        await asyncio.to_thread(scontrol, "update", f"jobid={job.native_id}", "StartTime=now")
        (job,) = await drive(slurm, [job], log=log)
        return job

    job = run(go())
    files = read_run_files(job.attempt_dir)
    assert files.run == 0 and files.exit is not None and files.exit.code == 143
    last = log[job.uuid][-1]
    # Slurm's word: squeue's FAILED (no exit code), or sacct's 125 once the job left squeue
    assert last.exit_code in (None, 125), log[job.uuid]
    assert job.state == JobState.FAILED or last.exit_code == 125, log[job.uuid]
    assert "cannot enter" in (job.attempt_dir / render.ERRORS).read_text()


def test_an_exit_the_cluster_requeues_on_is_not_the_jobs_end(harness: Harness) -> None:
    # scripts/start-slurm.sh sets RequeueExit=99: run 0's clean exit 99 is followed by run 1
    slurm = harness.backend()
    script = 'if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then exit 99; fi; echo "run=1"'
    log: Log = {}

    async def go() -> Attempt:
        spec = JobSpec(command=("sh", "-c", script))
        (job,) = await harness.submit(slurm, [attempt(harness.root, spec)])
        deadline = time.monotonic() + 60
        # polled like the monitor while run 0 ends and Slurm requeues the job
        while read_run_files(job.attempt_dir).exit is None or (
            await asyncio.to_thread(reason_of, job) != "BeginTime"
        ):
            assert time.monotonic() < deadline, f"job {job.native_id} was not requeued"
            seen = await slurm.status([job])
            log.setdefault(job.uuid, []).append(seen[job.uuid])
            (job,) = apply([job], seen)
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # past the second of the requeue (see ``requeued``)
        await asyncio.to_thread(scontrol, "update", f"jobid={job.native_id}", "StartTime=now")
        (job,) = await drive(slurm, [job], log=log)
        return job

    job = run(go())
    assert [o.exit_code for o in log[job.uuid] if o.exit_code is not None] == [0], log[job.uuid]
    assert (job.attempt_dir / "stdout").read_text() == "run=1\n"
    assert read_run_files(job.attempt_dir).run == 1
