"""What the local wrapper leaves in an attempt dir, read by the local backend (blocking: call
from a worker thread). The files are the job's to tamper with: see ``corral.backends.runfiles``.
"""

from __future__ import annotations

import os
from dataclasses import replace

from corral.backends.runfiles import EXIT, START, Untrusted, parse_exit, read_small, wrapper_usage
from corral.records import Attempt, Observation
from corral.states import JobState

RUN_START = f"{START}.0"  # the local wrapper runs an attempt once: run 0 only
RUN_EXIT = f"{EXIT}.0"
HOST = os.uname().nodename
MARKER = ".corral-run"  # the wrapper's lock (created with O_EXCL), holding the attempt uuid


def marker_problem(attempt: Attempt) -> str | None:
    """Why this attempt dir is not this attempt's (its run marker names another), or None. An
    empty marker was left by a wrapper from before markers carried the uuid: it is accepted."""
    try:
        text = read_small(attempt.attempt_dir / MARKER)
    except Untrusted as exc:
        return f"run marker sabotaged: {exc}"
    owner = (text or "").strip()
    if owner and owner != attempt.uuid:
        return f"this directory belongs to another attempt ({owner}), not {attempt.uuid}"
    return None


def _read_exit(attempt: Attempt, oom: bool = False) -> Observation | None:
    problem = marker_problem(attempt)
    if problem:
        return Observation(attempt.uuid, JobState.FAILED, problem)
    try:
        text = read_small(attempt.attempt_dir / RUN_EXIT)
    except Untrusted as exc:
        return Observation(attempt.uuid, JobState.FAILED, f"status file sabotaged: {exc}")
    record = parse_exit(text) if text is not None else None
    if record is None:
        return None  # not written (yet)
    if record.replaced:
        reason = f"status file sabotaged: the job put something of its own at {RUN_EXIT}"
        return Observation(attempt.uuid, JobState.FAILED, reason, exit_code=record.code)
    walltime = record.code == 124 and bool(attempt.spec.resources.walltime)  # timeout(1)'s code
    obs = Observation.ended(
        attempt.uuid, record.code, killed=record.terminated, walltime=walltime, oom=oom
    )
    return replace(obs, usage=wrapper_usage(attempt.attempt_dir, 0, HOST))
