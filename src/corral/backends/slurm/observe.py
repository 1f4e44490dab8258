"""Turn what Slurm and the wrapper's files say about a job into an ``Observation`` (pure).

Sources, most authoritative first for a job that has ended: squeue (while the job is still in
the controller's memory, ``MinJobAge``), then sacct (if accounting exists), then the wrapper's
exit file. The exit file alone is trusted only for a clean end (the fast path); an end caused by
Slurm's signals needs the scheduler to say why.
"""

from __future__ import annotations

from dataclasses import replace

from corral.backends.runfiles import ExitRecord, RunFiles
from corral.backends.slurm.parse import AcctRow, QueueRow
from corral.records import Attempt, Observation
from corral.states import JobState

WAITING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
REQUEUED = frozenset({"REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"})
HELD = frozenset({"JobHeldUser", "JobHeldAdmin"})
"""Pending reasons of a held job: it stays ``submitted``, "held: JobHeldUser"."""
# Slurm's COMPLETING is "processes being cleaned up": the final state is not known yet.
ACTIVE = frozenset(
    {
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "SUSPENDED",
        "STOPPED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "POWER_UP_NODE",
    }
)
FAILURES = {
    "TIMEOUT": "time limit reached",
    "DEADLINE": "deadline reached",
    "OUT_OF_MEMORY": "memory limit exceeded",
    "NODE_FAIL": "node failure",
    "BOOT_FAIL": "node failed to boot",
    "PREEMPTED": "preempted and not requeued",
    "SPECIAL_EXIT": "special exit (held for the user)",
    "REVOKED": "revoked by the federation",
}


def _obs(
    attempt: Attempt, state: JobState, reason: str, exit_code: int | None = None
) -> Observation:
    return Observation(
        attempt.uuid, state, reason, exit_code=exit_code, native_id=attempt.native_id
    )


def ended(attempt: Attempt, code: int, signal: int | None = None) -> Observation:
    """The job ended with an exit code: the monitor collects outputs and judges the code."""
    return Observation.ended(attempt.uuid, code, signal=signal, native_id=attempt.native_id)


def fast_path(
    attempt: Attempt, files: RunFiles, requeue_exits: frozenset[int] = frozenset()
) -> Observation | None:
    """The wrapper saw the latest run end on its own: no scheduler call needed (the usage is
    the wrapper's: CPU and wall time, no peak memory). An exit code on which the cluster
    requeues the job (``RequeueExit``) is not its end: squeue says what follows."""
    if files.exit is not None and files.exit.clean and files.exit.code not in requeue_exits:
        return replace(ended(attempt, files.exit.code), usage=files.usage)
    return None


def _waiting(attempt: Attempt, state: str, reason: str, started: bool) -> Observation:
    # A waiting job that already started a run was requeued: the wrapper's start file says so
    # even when the monitor never saw it running (or restarted since).
    requeue = started or state in REQUEUED or attempt.state == JobState.RUNNING
    why = f"requeued ({reason})" if requeue else f"pending ({reason})"
    held = reason if reason in HELD else ""
    return Observation(
        attempt.uuid,
        JobState.SUBMITTED,
        f"held: {held}" if held else why,
        native_id=attempt.native_id,
        requeue=requeue,
        held=held,
    )


def _final(
    attempt: Attempt, state: str, detail: str, exit_code: int | None, signal: int | None
) -> Observation:
    """A state Slurm reports for a job that has left the running states."""
    if state == "COMPLETED":
        return ended(attempt, exit_code or 0, signal or None)
    if state == "FAILED":
        if signal:
            return ended(attempt, 128 + signal, signal)
        if exit_code:
            return ended(attempt, exit_code)
        return _obs(attempt, JobState.FAILED, f"FAILED ({detail or 'no exit code'})")
    if state == "CANCELLED":
        return _obs(attempt, JobState.KILLED, f"CANCELLED {detail}".strip())
    if state in FAILURES:
        return _obs(attempt, JobState.FAILED, f"{state} ({FAILURES[state]})", exit_code=exit_code)
    return _obs(attempt, JobState.UNKNOWN, f"unknown Slurm state {state!r}")


def from_queue(attempt: Attempt, row: QueueRow, files: RunFiles) -> Observation:
    """squeue's view, with the exit code (which squeue does not show) from the exit file of the
    run squeue is at: an earlier run's exit is never taken for this run's end."""
    if row.state in WAITING:
        started = files.run is not None or bool(row.restarts)
        return _waiting(attempt, row.state, row.reason, started)
    if row.state in ACTIVE:
        return _obs(attempt, JobState.RUNNING, f"running on Slurm ({row.state.lower()})")
    detail = row.reason if row.reason != "None" else ""
    if _run_behind(row, files):
        if row.state == "FAILED" and row.restarts:
            detail = f"{detail}; {_unrecorded(row.restarts)}"
        return _final(attempt, row.state, detail.removeprefix("; "), None, None)
    code = files.exit.code if files.exit is not None else None
    return _final(attempt, row.state, detail, code, None)


def _run_behind(row: QueueRow, files: RunFiles) -> bool:
    """Are the files of an earlier run than the one squeue is at? Slurm counts restarts (each
    requeue) and the wrapper numbers its files by that count, so a run that ended before the
    wrapper wrote its start (a relaunch Slurm refused: the credential revoked at the requeue is
    still held; an attempt dir the node cannot enter) leaves the killed run's exit the latest."""
    if row.restarts is None:
        return False
    return files.run is None or files.run < row.restarts


def _unrecorded(run: int) -> str:
    return f"Slurm's run {run} ended before corral's wrapper recorded it"


def from_acct(attempt: Attempt, row: AcctRow) -> Observation:
    """sacct's view of a job that has left squeue."""
    if row.state in WAITING:
        return _waiting(attempt, row.state, "accounting", started=False)
    if row.state in ACTIVE:
        return _obs(attempt, JobState.RUNNING, f"running on Slurm ({row.state.lower()})")
    detail = f"by uid {row.detail.removeprefix('by ')}" if row.detail.startswith("by ") else ""
    obs = _final(attempt, row.state, detail, row.exit_code, row.signal)
    return replace(obs, usage=row.usage) if row.usage is not None else obs


def from_exit_only(attempt: Attempt, record: ExitRecord) -> Observation:
    """The job left squeue and there is no accounting record: the exit file is all we have."""
    if record.clean:
        return ended(attempt, record.code)
    return _obs(
        attempt,
        JobState.FAILED,
        f"stopped by Slurm (exit code {record.code}: cancelled, time limit or node "
        "failure) and gone from squeue; without accounting the cause is unknown",
        exit_code=record.code,
    )


def gone_unrecorded(attempt: Attempt, run: int) -> Observation:
    """The job left squeue (no accounting record) after squeue had shown it at a run the
    wrapper never recorded: the latest exit file is an earlier run's, not this end."""
    return _obs(
        attempt,
        JobState.FAILED,
        f"{_unrecorded(run)} and it is gone from squeue; without accounting the cause is unknown",
    )


def missing(attempt: Attempt, seconds: float, lost_after: float) -> Observation:
    """Neither squeue, sacct nor the wrapper knows the job."""
    if seconds < lost_after:
        return _obs(attempt, JobState.UNKNOWN, "not found by squeue, sacct or the wrapper's files")
    return _obs(
        attempt,
        JobState.FAILED,
        f"LOST: not found by squeue, sacct or the wrapper's files for {seconds:.0f} s",
    )
