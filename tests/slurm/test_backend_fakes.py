"""The backend's I/O logic against stand-in Slurm commands (no Slurm needed): errors, timeouts,
retries that must not submit twice, and the fast path that needs no scheduler call."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from corral.backends.base import BackendConfig, Submitted
from corral.backends.slurm import SlurmBackend
from corral.errors import BackendUnavailable, ConfigError, TransientBackendError
from corral.records import Observation
from corral.states import JobState
from tests.slurm.helpers import attempt, fixture, sweep, with_state

FAKE = """#!/bin/sh
name=$(basename "$0")
echo "$name $*" >> "$FAKE_DIR/calls"
[ -f "$FAKE_DIR/$name.sleep" ] && exec sleep "$(cat "$FAKE_DIR/$name.sleep")"
[ -f "$FAKE_DIR/$name.out" ] && cat "$FAKE_DIR/$name.out"
[ -f "$FAKE_DIR/$name.err" ] && cat "$FAKE_DIR/$name.err" >&2
exit "$(cat "$FAKE_DIR/$name.rc" 2>/dev/null || echo 0)"
"""


class Fakes:
    def __init__(self, path: Path) -> None:
        self.path = path

    def set(
        self, command: str, out: str = "", err: str = "", rc: int = 0, sleep: float | None = None
    ) -> None:
        for suffix, text in (("out", out), ("err", err), ("rc", str(rc))):
            (self.path / f"{command}.{suffix}").write_text(text)
        sleeper = self.path / f"{command}.sleep"
        if sleep is None:
            sleeper.unlink(missing_ok=True)
        else:
            sleeper.write_text(str(sleep))

    def calls(self, command: str | None = None) -> list[str]:
        log = self.path / "calls"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line for line in lines if command is None or line.split()[0] == command]


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "squeue", "sacct", "scancel", "scontrol"):
        path = bin_dir / name
        path.write_text(FAKE)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_DIR", str(bin_dir))
    found = Fakes(bin_dir)
    found.set("scontrol", out=fixture("scontrol-show-config.noacct.out"))
    return found


def backend(tmp_path: Path, **options: object) -> SlurmBackend:
    return SlurmBackend(BackendConfig("slurm", tmp_path, options))


def test_missing_tools_make_the_backend_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="sbatch"):
        asyncio.run(backend(tmp_path).start(lambda obs: None))


def test_bad_backend_options_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        backend(tmp_path, colour="blue")
    with pytest.raises(ConfigError, match="command_timeout"):
        backend(tmp_path, command_timeout="soon")


def test_a_failing_squeue_is_transient_and_fails_no_job(fakes: Fakes, tmp_path: Path) -> None:
    fakes.set("squeue", err="squeue: error: Unable to contact slurm controller\n", rc=1)
    job = attempt(tmp_path, state=JobState.RUNNING, native_id="5")
    with pytest.raises(TransientBackendError, match="Unable to contact"):
        asyncio.run(backend(tmp_path).status([job]))


def test_a_slow_command_times_out_as_transient(fakes: Fakes, tmp_path: Path) -> None:
    fakes.set("squeue", sleep=30)
    job = attempt(tmp_path, state=JobState.RUNNING, native_id="5")
    with pytest.raises(TransientBackendError, match="timed out"):
        asyncio.run(backend(tmp_path, command_timeout=0.3).status([job]))


def test_one_squeue_for_all_and_the_fast_path_needs_none(fakes: Fakes, tmp_path: Path) -> None:
    ids = ["7_0", "7_1", "9", "8"]
    jobs = [
        with_state(a, JobState.RUNNING, n) for a, n in zip(sweep(tmp_path, 4), ids, strict=True)
    ]
    fakes.set("squeue", out="7_0|RUNNING|x|None\n7_1|PENDING|x|BeginTime\n9|RUNNING|x|None\n")
    (jobs[3].attempt_dir / "run-start.0").write_text("1 8 n\n")
    (jobs[3].attempt_dir / "run-exit.0").write_text("0 0 2\n")
    seen = asyncio.run(backend(tmp_path).status(jobs))
    (call,) = fakes.calls("squeue")
    assert call.endswith("--jobs 7,9")  # one id per Slurm job; the cleanly ended one not at all
    # every job is answered for (the poll loop leaves out what did not change): requeued
    # (pending after running), still running, done through the fast path
    assert set(seen) == {j.uuid for j in jobs}
    assert seen[jobs[1].uuid].requeue and seen[jobs[1].uuid].state == JobState.SUBMITTED
    assert seen[jobs[0].uuid].state == seen[jobs[2].uuid].state == JobState.RUNNING
    assert seen[jobs[3].uuid].state == JobState.COMPLETING
    for job in jobs[:3]:
        (job.attempt_dir / "run-start.0").write_text("1 x n\n")
        (job.attempt_dir / "run-exit.0").write_text("3 0 2\n")
    calls = len(fakes.calls("squeue"))
    asyncio.run(backend(tmp_path).status(jobs))
    assert len(fakes.calls("squeue")) == calls  # every job had a clean exit file: no squeue


def test_an_array_cancelled_before_any_task_started_is_one_row(
    fakes: Fakes, tmp_path: Path
) -> None:
    jobs = [with_state(a, JobState.SUBMITTED, f"64_{i}") for i, a in enumerate(sweep(tmp_path, 3))]
    fakes.set("squeue", out="64|CANCELLED|x|None\n")
    seen = asyncio.run(backend(tmp_path).status(jobs))
    assert [seen[j.uuid].state for j in jobs] == [JobState.KILLED] * 3


def test_a_refused_sbatch_refuses_each_attempt(fakes: Fakes, tmp_path: Path) -> None:
    fakes.set("sbatch", err=fixture("sbatch.bad-partition.err"), rc=1)
    reports: list[Observation] = []
    slurm = backend(tmp_path, partition="nope")

    async def go() -> Submitted:
        await slurm.start(reports.append)
        return await slurm.submit(sweep(tmp_path, 3))

    result = asyncio.run(go())
    assert not result.accepted and len(result.refused) == 3 and not reports
    assert len(fakes.calls("sbatch")) == 1
    assert all("Invalid partition name specified" in why for why in result.refused.values())


def test_a_retried_submit_finds_what_went_through(fakes: Fakes, tmp_path: Path) -> None:
    points = sweep(tmp_path, 3)
    slurm = backend(tmp_path, command_timeout=0.5)
    fakes.set("sbatch", sleep=30)  # the controller took the job but sbatch never answered
    with pytest.raises(TransientBackendError, match="timed out"):
        asyncio.run(slurm.submit(points))
    label = points[0].label
    fakes.set("squeue", out="".join(f"31_{i}|PENDING|{label}|Priority\n" for i in range(3)))
    fakes.set("sbatch", out="99\n")
    ids = asyncio.run(slurm.submit(points)).accepted
    assert ids == {a.uuid: f"31_{i}" for i, a in enumerate(points)}
    assert len(fakes.calls("sbatch")) == 1  # only the call that timed out
    assert any(f"--name {label}" in c or f"--name={label}" in c for c in fakes.calls("squeue"))


def test_a_transient_sbatch_error_is_raised_when_nothing_went_through(
    fakes: Fakes, tmp_path: Path
) -> None:
    fakes.set(
        "sbatch",
        err="sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
        rc=1,
    )
    with pytest.raises(TransientBackendError, match="Socket timed out"):
        asyncio.run(backend(tmp_path).submit(sweep(tmp_path, 2)))


def test_scheduler_config_is_read_once(fakes: Fakes, tmp_path: Path) -> None:
    fakes.set("sbatch", out="12\n")
    slurm = backend(tmp_path)

    async def go() -> None:
        await slurm.submit(sweep(tmp_path, 2))
        await slurm.submit(sweep(tmp_path, 2))

    asyncio.run(go())
    assert len(fakes.calls("scontrol")) == 1
    assert slurm.calls["sbatch"] == 2


def test_gone_jobs_without_accounting_use_exit_files_then_unknown(
    fakes: Fakes, tmp_path: Path
) -> None:
    fakes.set("squeue", err=fixture("squeue.unknown-one.err"), rc=1)
    done, lost = (attempt(tmp_path, state=JobState.RUNNING, native_id=n) for n in ("8", "9"))
    (done.attempt_dir / "run-exit.0").write_text("143 1 5\n")  # stopped by Slurm
    seen = asyncio.run(backend(tmp_path, lost_after=3600).status([done, lost]))
    assert seen[done.uuid].state == JobState.FAILED
    assert seen[lost.uuid].state == JobState.UNKNOWN
    assert fakes.calls("sacct") == []  # no accounting: never asked
    seen = asyncio.run(backend(tmp_path, lost_after=0).status([with_state(lost, JobState.UNKNOWN)]))
    assert seen[lost.uuid].state == JobState.FAILED and seen[lost.uuid].reason.startswith("LOST")


def test_cancel_is_one_scancel_with_one_argument_per_slurm_job(
    fakes: Fakes, tmp_path: Path
) -> None:
    jobs = [
        attempt(tmp_path, state=JobState.RUNNING, native_id=n)
        for n in ("4_0", "4_1", "4_2", "6", "4_5")
    ]
    asyncio.run(backend(tmp_path).cancel([*jobs, attempt(tmp_path)]))
    assert fakes.calls() == ["scancel 6 4_[0-2,5]"]
    fakes.set(
        "scancel", err="scancel: error: Kill job error on job id 6: Access/permission denied", rc=1
    )
    with pytest.raises(TransientBackendError):
        asyncio.run(backend(tmp_path).cancel(jobs))


@pytest.mark.parametrize("how", ["dir", "fifo", "symlink", "huge"])
def test_sabotaged_status_files_never_raise_and_fail_the_job(
    fakes: Fakes, tmp_path: Path, how: str
) -> None:
    """Issue 9: a job that puts a dir, FIFO, link or huge file where its exit file goes makes
    status neither raise nor block; once it has left the queue it is failed with the reason."""
    import os

    running, gone = (
        with_state(a, JobState.RUNNING, n) for a, n in zip(sweep(tmp_path, 2), "12", strict=True)
    )
    for job in (running, gone):
        (job.attempt_dir / "run-start.0").write_text("1 x n\n")
        target = job.attempt_dir / "run-exit.0"
        if how == "dir":
            target.mkdir()
        elif how == "fifo":
            os.mkfifo(target)
        elif how == "symlink":
            target.symlink_to("/etc/passwd")
        else:
            target.write_bytes(b"0 0 " * 10_000)
    fakes.set("squeue", out="1|RUNNING|x|None\n")
    seen = asyncio.run(backend(tmp_path).status([running, gone]))
    assert seen[running.uuid].state == JobState.RUNNING
    assert seen[gone.uuid].state == JobState.FAILED
    assert "sabotaged" in seen[gone.uuid].reason
