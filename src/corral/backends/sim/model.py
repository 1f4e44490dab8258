"""The pure part of the simulated backend: its options, each job's plan, and what a job looks
like at a given moment. No I/O and no clock: every function here is a function of its arguments,
so the same (uuid, seed, options) always gives the same job."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from corral.backends.base import BackendOptions, BlockingOptions, JobOptions, parse_model
from corral.errors import InvalidSpec
from corral.records import Observation
from corral.states import JobState

_DAY = 86400.0
_REQUEUE_WINDOW = (0.2, 0.8)
"""Where in its first run a requeued job goes back to the queue (fractions of its run time)."""

Seconds = Annotated[float, Field(ge=0, le=_DAY, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _pair(value: Any) -> Any:
    # TOML has arrays, not tuples (strict mode takes only tuples); one number means a fixed time
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (value, value)
    return value


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"min {value[0]:g} is above max {value[1]:g}")
    return value


RunTime = Annotated[tuple[Seconds, Seconds], BeforeValidator(_pair), AfterValidator(_ordered)]


class SimOptions(BackendOptions):
    """A ``[backends.NAME]`` section of ``type = "sim"``."""

    seed: int = Field(0, description="Another seed gives other jobs for the same uuids.")
    queue_time: Seconds = Field(0.1, description="Mean time queued (each job: 0.5 to 1.5 x).")
    run_time: RunTime = Field((0.2, 0.5), description="Run time range [min, max] (s).")
    fail_rate: Rate = Field(0.0, description="Share of jobs that exit with code 1.")
    requeue_rate: Rate = Field(0.0, description="Share of jobs requeued once, mid-run.")
    status_latency: Seconds = Field(0.0, description="Time each status call takes (s).")
    status_failure_rate: Rate = Field(0.0, description="Share of status calls that fail.")
    unavailable: str = Field("", description="If set, the backend cannot start: this reason.")


class BlockingSimOptions(BlockingOptions, SimOptions):
    """A section of ``type = "sim-blocking"``: the same, plus ``threads``."""


class SimJobOptions(JobOptions):
    """A job's ``backend_options`` on a sim backend."""

    run_time: Seconds | None = Field(None, description="This job's run time (s).")
    exit_code: int | None = Field(None, ge=0, le=255, description="This job's exit code.")
    refuse: str = Field("", description="If set, submit refuses the job with this reason.")


_NO_JOB_OPTIONS = SimJobOptions()


def job_options(raw: Mapping[str, Any]) -> SimJobOptions:
    """A job's ``backend_options``, checked (``InvalidSpec``)."""
    if not raw:  # most jobs have none: 10^5 of them must not cost 10^5 validations
        return _NO_JOB_OPTIONS
    return parse_model(SimJobOptions, raw, "backend_options", InvalidSpec)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one simulated job will do, in seconds after it was accepted."""

    queue: float
    run: float
    exit_code: int
    timed_out: bool = False
    """The spec's walltime ends the job after ``run`` seconds (a failure, whatever the code)."""
    requeue_after: float | None = None
    """Seconds into its first run when the scheduler puts it back in the queue (once)."""

    @property
    def end(self) -> float:
        if self.requeue_after is None:
            return self.queue + self.run
        return 2 * self.queue + self.requeue_after + self.run


def uniforms(key: str) -> list[float]:
    """Eight numbers uniform in [0, 1) (steps of 2**-32), a pure function of ``key``."""
    return [n * _SCALE for n in _WORDS.unpack(hashlib.sha256(key.encode()).digest())]


_WORDS = struct.Struct(">8I")
_SCALE = 2.0**-32


def plan(
    uuid: str,
    options: SimOptions,
    job: SimJobOptions = _NO_JOB_OPTIONS,
    walltime: float | None = None,
) -> Plan:
    """The plan of the job of attempt ``uuid`` (``walltime`` from its spec, if any)."""
    u_queue, u_run, u_fail, u_requeue, u_when, *_ = uniforms(f"{options.seed}:{uuid}")
    low, high = options.run_time
    run = job.run_time if job.run_time is not None else low + (high - low) * u_run
    code = job.exit_code if job.exit_code is not None else int(u_fail < options.fail_rate)
    timed_out = False
    if walltime is not None and run > walltime:
        run, timed_out = walltime, True
    requeue_after = None
    if u_requeue < options.requeue_rate:
        first, last = _REQUEUE_WINDOW
        requeue_after = run * (first + (last - first) * u_when)
    return Plan(options.queue_time * (0.5 + u_queue), run, code, timed_out, requeue_after)


def observe(
    uuid: str,
    plan: Plan,
    elapsed: float,
    *,
    cancelled: float | None = None,
    native_id: str | None = None,
) -> Observation:
    """The job ``elapsed`` seconds after it was accepted (``cancelled``: seconds after it was
    accepted that a cancel reached it). A cancel after the end changes nothing, as on a real
    scheduler."""
    if cancelled is not None and cancelled < plan.end:
        return Observation.ended(uuid, None, killed=True, native_id=native_id)
    if elapsed >= plan.end:
        code = None if plan.timed_out else plan.exit_code
        return Observation.ended(uuid, code, walltime=plan.timed_out, native_id=native_id)
    if elapsed < plan.queue:
        return Observation(uuid, JobState.SUBMITTED, "queued", native_id=native_id)
    if plan.requeue_after is None or elapsed < plan.queue + plan.requeue_after:
        return Observation(uuid, JobState.RUNNING, "running", native_id=native_id)
    if elapsed < 2 * plan.queue + plan.requeue_after:
        return Observation(uuid, JobState.SUBMITTED, "requeued", native_id=native_id, requeue=True)
    return Observation(uuid, JobState.RUNNING, "running again after a requeue", native_id=native_id)


def status_fails(seed: int, call: int, rate: float) -> bool:
    """Whether status call number ``call`` (1, 2, ... over the life of the instance) fails."""
    return rate > 0 and uniforms(f"{seed}:status:{call}")[0] < rate
