"""Turn what Grid Engine and the wrapper's files say about a job into an ``Observation`` (pure).

Sources: ``qstat`` while the job is queued or running; once it has left qstat, the wrapper's
exit file for a clean end (no scheduler call), else ``qacct`` (exit status, why Grid Engine
failed it, and what it used). State letters: ``q``/``w`` waiting, ``h`` held, ``E`` error (the
job can never start: failed with the reason and removed), ``R`` rescheduled, ``r``/``t``
running or being started, ``s``/``S``/``T`` suspended, ``d`` being deleted.
"""

from __future__ import annotations

from dataclasses import replace

from corral.backends.runfiles import RunFiles
from corral.backends.sge.parse import AcctRow, QueueRow
from corral.records import Attempt, Observation
from corral.states import JobState


def _obs(
    attempt: Attempt,
    state: JobState,
    reason: str,
    *,
    exit_code: int | None = None,
    requeue: bool = False,
    held: str = "",
) -> Observation:
    return Observation(
        attempt.uuid,
        state,
        reason,
        exit_code=exit_code,
        native_id=attempt.native_id,
        requeue=requeue,
        held=held,
    )


RESCHEDULE_EXITS = frozenset({99, 100})
"""A job script's exit 99 makes Grid Engine reschedule the job (run it again), 100 puts it in
error state: neither is the job's end, so the wrapper's record of it is left to qstat/qacct."""


def ended(attempt: Attempt, files: RunFiles) -> Observation | None:
    """The fast path: the wrapper saw the latest run end on its own, with a code that ends a
    Grid Engine job (see ``RESCHEDULE_EXITS``)."""
    if files.exit is None or not files.exit.clean or files.exit.code in RESCHEDULE_EXITS:
        return None
    obs = Observation.ended(attempt.uuid, files.exit.code, native_id=attempt.native_id)
    return replace(obs, usage=files.usage)


def in_error(state: str) -> bool:
    return "E" in state


def from_queue(attempt: Attempt, row: QueueRow, files: RunFiles, error: str = "") -> Observation:
    """qstat's view. ``error`` is the reason ``qstat -j`` gave for a job in ``E`` state."""
    state = row.state
    if in_error(state):
        return _obs(attempt, JobState.FAILED, f"held: {error or 'job in error state (Eqw)'}")
    if "d" in state:
        running = "r" in state or "t" in state
        why = "being deleted"
        return _obs(attempt, JobState.RUNNING if running else JobState.SUBMITTED, why)
    if "q" in state or "w" in state:
        requeue = "R" in state or files.run is not None or attempt.state == JobState.RUNNING
        if "h" in state:
            held = f"hold ({state})"
            return _obs(attempt, JobState.SUBMITTED, f"held: {held}", held=held, requeue=requeue)
        why = f"requeued ({state})" if requeue else f"pending ({state})"
        return _obs(attempt, JobState.SUBMITTED, why, requeue=requeue)
    return _obs(attempt, JobState.RUNNING, f"running on Grid Engine ({state})")


def from_acct(attempt: Attempt, row: AcctRow, files: RunFiles) -> Observation:
    """qacct's view of a job that has left qstat (with the wrapper's record, if any)."""
    failed_code = row.failed.partition(":")[0].strip()
    code = row.exit_status
    walltime = attempt.spec.resources.walltime
    wall = row.usage.wall_seconds
    if code is not None and code > 128 and walltime and wall is not None and wall >= walltime:
        obs = Observation.ended(attempt.uuid, code, walltime=True, native_id=attempt.native_id)
    elif failed_code not in ("", "0", "100") or code is None:
        obs = _obs(attempt, JobState.FAILED, f"Grid Engine failed the job: {row.failed}")
    elif files.exit is not None and files.exit.terminated and failed_code == "100":
        obs = _obs(attempt, JobState.KILLED, "deleted (qdel)", exit_code=code)
    else:
        obs = Observation.ended(attempt.uuid, code, native_id=attempt.native_id)
    return replace(obs, usage=row.usage)


def from_exit_only(attempt: Attempt, files: RunFiles) -> Observation | None:
    """Gone from qstat and not (yet) in qacct: the wrapper's word on a signalled end."""
    record = files.exit
    if record is None:
        return None
    obs = _obs(
        attempt,
        JobState.FAILED,
        f"stopped by Grid Engine (exit code {record.code}: deleted, time or memory limit) "
        "and not in qacct",
        exit_code=record.code,
    )
    return replace(obs, usage=files.usage)


def missing(attempt: Attempt, seconds: float, lost_after: float) -> Observation:
    """Neither qstat, qacct nor the wrapper knows the job."""
    if seconds < lost_after:
        return _obs(attempt, JobState.UNKNOWN, "not found by qstat, qacct or the wrapper's files")
    return _obs(
        attempt,
        JobState.FAILED,
        f"LOST: not found by qstat, qacct or the wrapper's files for {seconds:.0f} s",
    )
