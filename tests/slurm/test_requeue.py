"""A requeued job's later run never takes an earlier run's exit for its end, on output recorded
from the real Slurm 22.05 (``scripts/record-slurm-fixtures.sh``, part 4).

The recorded job was requeued while running and let start again within the same second: slurmd
still held the credential it revoked at the requeue, refused the relaunch, and Slurm ended the
job FAILED with restart count 1. No run 1 ever started, so corral's wrapper left run 0's files
as the latest, with run 0's exit: 143, killed by the requeue's TERM. That exit is not the job's
end (seen in CI, where the requeue integration test's ``StartTime=now`` met this race).
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from corral.backends.base import BackendConfig
from corral.backends.runfiles import ExitRecord, RunFiles, read_run_files
from corral.backends.slurm import SlurmBackend, observe, parse
from corral.records import Attempt
from corral.states import JobState
from tests.slurm.helpers import attempt, fixture, with_state

RUN0_KILLED = RunFiles(0, "21", 1.0, ExitRecord(143, terminated=True, at=2.0))


def refused_row() -> parse.QueueRow:
    (row,) = parse.parse_squeue(fixture("squeue.relaunch-refused.out")).values()
    return row


def running(tmp_path: Path, native_id: str = "21") -> Attempt:
    return attempt(tmp_path, state=JobState.RUNNING, native_id=native_id, prepare=False)


def test_the_recorded_row_is_at_run_1() -> None:
    row = refused_row()
    assert (row.state, row.restarts, row.reason) == ("FAILED", 1, "NonZeroExitCode")
    # lines in the -o format (no restart count) still parse, the count unknown
    (old,) = parse.parse_squeue("21|FAILED|fx-x|NonZeroExitCode\n").values()
    assert (old.state, old.restarts, old.reason) == ("FAILED", None, "NonZeroExitCode")


def test_a_relaunch_slurm_refused_fails_without_the_killed_runs_exit(tmp_path: Path) -> None:
    obs = observe.from_queue(running(tmp_path), refused_row(), RUN0_KILLED)
    assert obs.state == JobState.FAILED and obs.exit_code is None
    assert "NonZeroExitCode" in obs.reason and "run 1" in obs.reason


def test_the_exit_of_the_run_squeue_is_at_is_taken(tmp_path: Path) -> None:
    run1 = RunFiles(1, "21", 3.0, ExitRecord(3, terminated=False, at=4.0))
    obs = observe.from_queue(running(tmp_path), refused_row(), run1)
    assert (obs.state, obs.exit_code) == (JobState.COMPLETING, 3)


def test_an_exit_the_cluster_requeues_on_is_not_the_jobs_end(tmp_path: Path) -> None:
    clean99 = RunFiles(0, "21", 1.0, ExitRecord(99, terminated=False, at=2.0))
    assert observe.fast_path(running(tmp_path), clean99, frozenset({99})) is None
    taken = observe.fast_path(running(tmp_path), clean99)
    assert taken is not None and taken.exit_code == 99


FAKE = """#!/bin/sh
name=$(basename "$0")
[ -f "$FAKE_DIR/$name.out" ] && cat "$FAKE_DIR/$name.out"
[ -f "$FAKE_DIR/$name.err" ] && cat "$FAKE_DIR/$name.err" >&2
exit "$(cat "$FAKE_DIR/$name.rc" 2>/dev/null || echo 0)"
"""


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in Slurm commands that print what a test put in ``<command>.out/.err/.rc``."""
    found = tmp_path / "bin"
    found.mkdir()
    for name in ("sbatch", "squeue", "sacct", "scancel", "scontrol"):
        (found / name).write_text(FAKE)
        (found / name).chmod(0o755 | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{found}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_DIR", str(found))
    (found / "scontrol.out").write_text(fixture("scontrol-show-config.noacct.out"))
    return found


def killed_run_0(tmp_path: Path) -> Attempt:
    """An attempt dir as the wrapper leaves it when the requeue's TERM ended run 0."""
    job = with_state(attempt(tmp_path), JobState.RUNNING, "21")
    (job.attempt_dir / "run-start.0").write_text("1764614400.1 21 localhost\n")
    (job.attempt_dir / "run-exit.0").write_text("143 1 1764614402.5\n")
    assert read_run_files(job.attempt_dir).exit == ExitRecord(143, True, 1764614402.5)
    return job


def test_the_backend_fails_a_refused_relaunch(bin_dir: Path, tmp_path: Path) -> None:
    job = killed_run_0(tmp_path)
    (bin_dir / "squeue.out").write_text(fixture("squeue.relaunch-refused.out"))
    slurm = SlurmBackend(BackendConfig("slurm", tmp_path, {}))
    obs = asyncio.run(slurm.status([job]))[job.uuid]
    assert obs.state == JobState.FAILED and obs.exit_code is None, obs


def test_a_job_gone_after_squeue_showed_a_later_run_keeps_no_stale_exit(
    bin_dir: Path, tmp_path: Path
) -> None:
    # no accounting: squeue showed the job requeued (restart count 1), then it left squeue
    # (MinJobAge) without its wrapper recording run 1: run 0's exit is not the job's end
    job = killed_run_0(tmp_path)
    slurm = SlurmBackend(BackendConfig("slurm", tmp_path, {}))
    requeued = fixture("squeue.states.out").splitlines()
    (line,) = [x for x in requeued if "|fx-requeued|" in x]
    (bin_dir / "squeue.out").write_text(line.replace("10|", "21|", 1) + "\n")
    first = asyncio.run(slurm.status([job]))[job.uuid]
    assert first.state == JobState.SUBMITTED and first.requeue
    (bin_dir / "squeue.out").write_text("")
    (bin_dir / "squeue.err").write_text(fixture("squeue.unknown-one.err"))
    (bin_dir / "squeue.rc").write_text("1")
    gone = asyncio.run(slurm.status([job]))[job.uuid]
    assert gone.state == JobState.FAILED and gone.exit_code is None, gone
    assert "run 1" in gone.reason
