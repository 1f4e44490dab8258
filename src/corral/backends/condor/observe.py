"""Job ads -> observations (pure). Ads arrive as plain dicts (``plain`` drops ClassAd
``Undefined`` and ``Error`` values), so the recorded fixtures and the live answers look alike.

JobStatus: 1 idle -> submitted (a requeue if the job already ran: evicted or vacated, it waits
for a slot again); 2 running, 6 transferring output, 7 suspended -> running;
3 removed -> killed; 4 completed -> completing with the exit code (or signal); 5 held:

- code 16 (spooling: inputs not uploaded yet) and code 1 (a user's hold) stay ``submitted``,
  "held: reason" (any other code too, while the job never ran);
- codes 6 (the executable cannot be run), 7 and 8 (output or input files cannot be opened)
  and 14 (the initial working directory cannot be entered) can never succeed on retry:
  ``failed``, "held: reason", and the backend removes the job from the queue; so do 46 and
  47 (the job ran past its allowed duration), reported "walltime exceeded";
- a hold of a job that ran (``NumJobStarts`` > 0: HTCondor evicted it to hold) is a requeue
  back to ``submitted``, "held: reason".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from corral.records import Attempt, Observation, Usage
from corral.states import JobState

IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING, SUSPENDED = 1, 2, 3, 4, 5, 6, 7
SPOOLING = 16
USER_HOLD = 1
PERMANENT = frozenset({6, 7, 8, 14})
WALLTIME = frozenset({46, 47})
Ad = Mapping[str, Any]


def plain(ad: Mapping[str, Any]) -> dict[str, Any]:
    """A ClassAd's attributes as Python values; ``Undefined`` and ``Error`` are left out."""
    out = {}
    for key, value in ad.items():
        if type(value).__name__ == "Value":  # classad2.Value.Undefined / .Error
            continue
        out[str(key)] = value
    return out


def hold_code(ad: Ad) -> int | None:
    code = ad.get("HoldReasonCode")
    return code if isinstance(code, int) else None


def hold_reason(ad: Ad) -> str:
    if hold_code(ad) == SPOOLING:
        return "spooling"
    return str(ad.get("HoldReason") or f"hold code {hold_code(ad)}")


def must_remove(ad: Ad) -> bool:
    """A held job whose hold can never succeed on retry: fail it and take it off the queue."""
    return ad.get("JobStatus") == HELD and hold_code(ad) in PERMANENT | WALLTIME


def observe(attempt: Attempt, ad: Ad) -> Observation:
    status = ad.get("JobStatus")
    native = attempt.native_id
    if status == IDLE:
        return _idle(attempt, ad)
    if status in (RUNNING, TRANSFERRING, SUSPENDED):
        what = {RUNNING: "running", TRANSFERRING: "transferring output", SUSPENDED: "suspended"}
        return Observation(attempt.uuid, JobState.RUNNING, what[status], native_id=native)
    if status == REMOVED:
        return Observation.ended(attempt.uuid, None, killed=True, native_id=native)
    if status == COMPLETED:
        if ad.get("ExitBySignal") is True:
            signal = ad.get("ExitSignal")
            sig = signal if isinstance(signal, int) else None
            obs = Observation.ended(attempt.uuid, None, signal=sig, native_id=native)
            return replace(obs, usage=usage(ad))
        code = ad.get("ExitCode")
        obs = Observation.ended(
            attempt.uuid, code if isinstance(code, int) else None, native_id=native
        )
        return replace(obs, usage=usage(ad))
    if status == HELD:
        return _held(attempt, ad)
    return Observation(attempt.uuid, JobState.UNKNOWN, f"JobStatus {status!r}", native_id=native)


def _number(ad: Ad, key: str) -> float | None:
    value = ad.get(key)  # (a job's ad is hostile input: only finite non-negative numbers count)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < 1e15 else None


def usage(ad: Ad) -> Usage | None:
    """What a completed job used, from its ad: RemoteUserCpu + RemoteSysCpu (s), ResidentSetSize
    (KiB, the peak HTCondor measured), RemoteWallClockTime (s), LastRemoteHost (slot@host)."""
    user, system = _number(ad, "RemoteUserCpu"), _number(ad, "RemoteSysCpu")
    cpu = None if user is None and system is None else (user or 0.0) + (system or 0.0)
    rss = _number(ad, "ResidentSetSize")
    host = ad.get("LastRemoteHost")
    found = Usage(
        cpu_seconds=cpu,
        max_rss_bytes=None if rss is None else int(rss) * 1024,
        wall_seconds=_number(ad, "RemoteWallClockTime"),
        host=host.rpartition("@")[2][:255] or None if isinstance(host, str) else None,
    )
    return None if found.empty and found.host is None else found


def _ran(attempt: Attempt, ad: Ad) -> bool:
    """Whether the job already started a run: back in the queue, it was evicted or vacated
    (even if the monitor never saw it running, or restarted since)."""
    starts = ad.get("NumJobStarts")
    started = isinstance(starts, int) and not isinstance(starts, bool) and starts > 0
    return attempt.state == JobState.RUNNING or started


def _idle(attempt: Attempt, ad: Ad) -> Observation:
    if not _ran(attempt, ad):
        return Observation(attempt.uuid, JobState.SUBMITTED, "idle", native_id=attempt.native_id)
    why = ad.get("VacateReason")  # (HTCondor's words, set when it vacates a job)
    said = why.strip()[:200] if isinstance(why, str) else ""
    return Observation(
        attempt.uuid,
        JobState.SUBMITTED,
        f"requeued ({said or 'evicted, idle again'})",
        native_id=attempt.native_id,
        requeue=True,
    )


def _held(attempt: Attempt, ad: Ad) -> Observation:
    why = hold_reason(ad)
    code = hold_code(ad)
    if code in WALLTIME:
        return Observation(attempt.uuid, JobState.FAILED, f"walltime exceeded (held: {why})")
    if code in PERMANENT:
        return Observation(attempt.uuid, JobState.FAILED, f"held: {why}")
    return Observation(
        attempt.uuid,
        JobState.SUBMITTED,
        f"held: {why}",
        native_id=attempt.native_id,
        requeue=_ran(attempt, ad),
        held=why,
    )


def missing(attempt: Attempt, for_seconds: float, lost_after: float) -> Observation | None:
    """A job in neither the queue nor the history: nothing yet (history is written as the job
    leaves the queue), unknown after ``lost_after`` seconds."""
    if for_seconds < lost_after:
        return None
    return Observation(
        attempt.uuid,
        JobState.UNKNOWN,
        f"not in the HTCondor queue or history ({attempt.native_id})",
    )


def not_held_why(ad: Ad | None) -> str:
    """Why a hold did not take, from the job's ad after the call."""
    if ad is None:
        return "not in the HTCondor queue"
    status = ad.get("JobStatus")
    if status in (RUNNING, TRANSFERRING, SUSPENDED):
        return "running jobs cannot be held"
    if status == HELD:
        return f"already held: {hold_reason(ad)}"
    return f"not idle (JobStatus {status})"


def not_released_why(ad: Ad | None) -> str:
    if ad is None:
        return "not in the HTCondor queue"
    if ad.get("JobStatus") != HELD:
        return "not held"
    if hold_code(ad) == SPOOLING:
        return "spooling: its inputs are still being uploaded (not releasable)"
    return "release refused"
