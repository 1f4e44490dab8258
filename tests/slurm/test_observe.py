"""From Slurm's words (recorded and synthetic) and the wrapper's files to observations."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.backends.runfiles import ExitRecord, RunFiles
from corral.backends.slurm import observe, parse
from corral.records import Attempt
from corral.states import JobState
from tests.slurm.helpers import attempt, fixture

NO_FILES = RunFiles()


def job(tmp_path: Path, state: JobState = JobState.SUBMITTED) -> Attempt:
    return attempt(tmp_path, state=state, native_id="42", prepare=False)


def queue_rows(name: str) -> dict[str, parse.QueueRow]:
    return {row.name: row for row in parse.parse_squeue(fixture(name)).values()}


@pytest.mark.parametrize(
    ("name", "state", "reason"),
    [
        ("fx-timeout", JobState.FAILED, "TIMEOUT"),
        ("fx-cancelled-pending", JobState.KILLED, "CANCELLED"),
        ("fx-dependency", JobState.SUBMITTED, "pending (Dependency)"),
        ("fx-resources", JobState.SUBMITTED, "pending (Resources)"),
        ("fx-held", JobState.SUBMITTED, "held: JobHeldUser"),
        ("fx-running", JobState.RUNNING, "running"),
        ("fx-single", JobState.COMPLETING, "exit code 0"),
    ],
)
def test_recorded_squeue_states(tmp_path: Path, name: str, state: JobState, reason: str) -> None:
    obs = observe.from_queue(job(tmp_path), queue_rows("squeue.states.out")[name], NO_FILES)
    assert obs.state == state
    assert obs.reason.startswith(reason)
    assert obs.native_id == "42"


def test_failed_in_squeue_takes_the_exit_code_from_the_wrapper(tmp_path: Path) -> None:
    row = next(
        r
        for r in parse.parse_squeue(fixture("squeue.states.out")).values()
        if r.name == "fx-array" and r.state == "FAILED"
    )
    files = RunFiles(0, "2_1", 1.0, ExitRecord(3, terminated=False))
    obs = observe.from_queue(job(tmp_path), row, files)
    assert (obs.state, obs.exit_code) == (JobState.COMPLETING, 3)
    without = observe.from_queue(job(tmp_path), row, NO_FILES)
    assert without.state == JobState.FAILED and "NonZeroExitCode" in without.reason


def test_node_failure_and_requeue_after_it(tmp_path: Path) -> None:
    rows = queue_rows("squeue.node-fail.out")
    failed = observe.from_queue(job(tmp_path, JobState.RUNNING), rows["fx-node-fail"], NO_FILES)
    assert failed.state == JobState.FAILED and failed.reason.startswith("NODE_FAIL")
    again = observe.from_queue(
        job(tmp_path, JobState.RUNNING), rows["fx-node-fail-requeue"], NO_FILES
    )
    assert again.state == JobState.SUBMITTED and again.requeue


def test_pending_is_a_requeue_for_a_job_that_started_a_run(tmp_path: Path) -> None:
    row = queue_rows("squeue.states.out")["fx-requeued"]
    started = RunFiles(0, "42", 1.0, ExitRecord(143, terminated=True))
    assert observe.from_queue(job(tmp_path, JobState.RUNNING), row, NO_FILES).requeue
    assert observe.from_queue(job(tmp_path, JobState.SUBMITTED), row, started).requeue
    # Slurm's restart count says so too, even where the wrapper never started (or the files
    # were not read yet)
    assert row.restarts == 1
    assert observe.from_queue(job(tmp_path, JobState.SUBMITTED), row, NO_FILES).requeue
    never = queue_rows("squeue.states.out")["fx-resources"]
    assert not observe.from_queue(job(tmp_path, JobState.SUBMITTED), never, NO_FILES).requeue


@pytest.mark.parametrize(
    ("name", "state", "reason", "requeue"),
    [
        ("fx-oom", JobState.FAILED, "OUT_OF_MEMORY", False),
        ("fx-preempted", JobState.FAILED, "PREEMPTED", False),
        ("fx-requeued-state", JobState.SUBMITTED, "requeued", True),
        ("fx-requeue-hold", JobState.SUBMITTED, "held: JobHeldAdmin", True),
        ("fx-boot-fail", JobState.FAILED, "BOOT_FAIL", False),
        ("fx-deadline", JobState.FAILED, "DEADLINE", False),
        ("fx-suspended", JobState.RUNNING, "running", False),
        ("fx-completing", JobState.RUNNING, "running", False),
        ("fx-configuring", JobState.RUNNING, "running", False),
        ("fx-special-exit", JobState.FAILED, "SPECIAL_EXIT", False),
        ("fx-unknown-state", JobState.UNKNOWN, "unknown Slurm state", False),
    ],
)
def test_synthetic_squeue_states(
    tmp_path: Path, name: str, state: JobState, reason: str, requeue: bool
) -> None:
    obs = observe.from_queue(job(tmp_path), queue_rows("synthetic.squeue.out")[name], NO_FILES)
    assert (obs.state, obs.requeue) == (state, requeue)
    assert obs.reason.startswith(reason)


def test_recorded_sacct_states(tmp_path: Path) -> None:
    rows = {
        (r.name, r.state): r for r in parse.parse_sacct(fixture("sacct.cancelled.out")).values()
    }
    timeout = observe.from_acct(job(tmp_path), rows["fx-timeout", "TIMEOUT"])
    assert timeout.state == JobState.FAILED and timeout.reason.startswith("TIMEOUT")
    cancelled = observe.from_acct(job(tmp_path), rows["fx-held", "CANCELLED"])
    assert (cancelled.state, cancelled.reason) == (JobState.KILLED, "CANCELLED by uid 0")
    failed = observe.from_acct(job(tmp_path), rows["fx-array", "FAILED"])
    assert (failed.state, failed.exit_code) == (JobState.COMPLETING, 3)
    done = observe.from_acct(job(tmp_path), rows["fx-single", "COMPLETED"])
    assert (done.state, done.exit_code) == (JobState.COMPLETING, 0)


def test_synthetic_sacct_states(tmp_path: Path) -> None:
    rows = parse.parse_sacct(fixture("synthetic.sacct.out"))
    oom = observe.from_acct(job(tmp_path), rows["501"])
    assert oom.state == JobState.FAILED and oom.reason.startswith("OUT_OF_MEMORY")
    killed = observe.from_acct(job(tmp_path), rows["512"])
    assert (killed.state, killed.exit_code, killed.signal) == (JobState.COMPLETING, 137, 9)


@pytest.mark.parametrize(
    ("record", "fast"),
    [
        (ExitRecord(0, terminated=False), True),
        (ExitRecord(2, terminated=False), True),
        (ExitRecord(143, terminated=False), False),  # TERM reached the job before the wrapper
        (ExitRecord(0, terminated=True), False),
    ],
)
def test_fast_path_only_for_a_clean_end(tmp_path: Path, record: ExitRecord, fast: bool) -> None:
    obs = observe.fast_path(job(tmp_path), RunFiles(0, "42", 1.0, record))
    assert (obs is not None) == fast
    if obs is not None:
        assert (obs.state, obs.exit_code) == (JobState.COMPLETING, record.code)
    assert observe.fast_path(job(tmp_path), NO_FILES) is None


def test_exit_file_alone(tmp_path: Path) -> None:
    clean = observe.from_exit_only(job(tmp_path), ExitRecord(4, terminated=False))
    assert (clean.state, clean.exit_code) == (JobState.COMPLETING, 4)
    stopped = observe.from_exit_only(job(tmp_path), ExitRecord(143, terminated=True))
    assert stopped.state == JobState.FAILED and "stopped by Slurm" in stopped.reason


def test_missing_is_unknown_then_lost(tmp_path: Path) -> None:
    assert observe.missing(job(tmp_path), 5, lost_after=60).state == JobState.UNKNOWN
    lost = observe.missing(job(tmp_path), 61, lost_after=60)
    assert lost.state == JobState.FAILED and lost.reason.startswith("LOST")


def test_signal_from_the_shell_convention(tmp_path: Path) -> None:
    obs = observe.ended(job(tmp_path), 139)
    assert (obs.exit_code, obs.signal, obs.reason) == (139, 11, "killed by signal 11")
