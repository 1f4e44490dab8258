"""Plain records passed between layers. Immutable, no I/O, safe to hand across threads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from corral.states import JobState

if TYPE_CHECKING:  # only an annotation here; importing it builds the pydantic models (~80 ms)
    from corral.spec import JobSpec


@dataclass(frozen=True, slots=True, order=True)
class JobId:
    """A user-facing id: ``42`` (a job or master) or ``42.3`` (subjob 3 of job 42)."""

    job: int
    sub: int | None = None

    def __str__(self) -> str:
        return str(self.job) if self.sub is None else f"{self.job}.{self.sub}"

    @classmethod
    def parse(cls, text: str) -> JobId:
        """``"42"`` or ``"42.3"``: ASCII digits within the registry's range, else InvalidInput."""
        from corral import inputs
        from corral.errors import InvalidInput

        if not isinstance(text, str):
            raise InvalidInput(f"not a job id (expected 42 or 42.3): {inputs.shown(text)}")
        head, dot, tail = text.strip().partition(".")
        try:
            return cls(inputs.job_number(head), inputs.job_number(tail) if dot else None)
        except ValueError as exc:
            raise InvalidInput(
                f"not a job id (expected 42 or 42.3): {inputs.shown(text)} ({exc})"
            ) from None

    @classmethod
    def many(cls, values: object) -> tuple[JobId, ...]:
        """One id (see ``of``) or a collection or iterator of them."""
        if isinstance(values, list | tuple | set | frozenset | Iterator):
            return tuple(cls.of(v) for v in values)
        return (cls.of(values),)  # (None, bytes, a dict: refused there)

    @classmethod
    def of(cls, value: object) -> JobId:
        """A ``JobId``, an int or a string as an id; anything else (a float, None, a bool, an
        int outside the registry's range) is InvalidInput, never a TypeError or OverflowError."""
        from corral import inputs
        from corral.errors import InvalidInput

        if isinstance(value, JobId):
            checked = [value.job] if value.sub is None else [value.job, value.sub]
            if all(isinstance(n, int) and 0 <= n <= inputs.MAX_ID for n in checked):
                return value
        elif isinstance(value, str):
            return cls.parse(value)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= inputs.MAX_ID:
            return cls(value)
        raise InvalidInput(f"not a job id (expected 42 or '42.3'): {inputs.shown(value)}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of one runnable job, as a backend sees it."""

    id: JobId
    uuid: str
    attempt: int
    spec: JobSpec
    attempt_dir: Path
    state: JobState
    native_id: str | None = None
    problem: str = ""
    """Why the stored spec no longer validates ("" if it does); ``spec`` is then a placeholder
    and the monitor fails the attempt instead of submitting it."""

    @property
    def label(self) -> str:
        """What a scheduler job carries to be found again after a crash."""
        return f"corral-{self.uuid}"


@dataclass(frozen=True, slots=True)
class Observation:
    """What a backend saw of one attempt. The state machine decides what it means."""

    uuid: str
    state: JobState
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    native_id: str | None = None
    requeue: bool = False
    held: str = ""
    """The scheduler's hold reason while the job waits held ("" when not held). The job
    stays `submitted` with reason "held: <held>"."""

    @classmethod
    def ended(
        cls,
        uuid: str,
        code: int | None,
        *,
        signal: int | None = None,
        killed: bool = False,
        walltime: bool = False,
        oom: bool = False,
        native_id: str | None = None,
    ) -> Observation:
        """A job that ended, decoded once for every backend: killed by us, out of time, out of
        memory, or an exit code (128 + N from a shell is signal N) that the monitor judges
        after collecting outputs."""
        if killed:
            return cls(uuid, JobState.KILLED, "killed", exit_code=code, native_id=native_id)
        if walltime:
            return cls(uuid, JobState.FAILED, "walltime exceeded", code, signal, native_id)
        if oom:
            return cls(uuid, JobState.FAILED, "memory limit exceeded", code, signal, native_id)
        if signal is None and code is not None and code > 128:
            signal = code - 128
        reason = f"killed by signal {signal}" if signal else f"exit code {code}"
        return cls(uuid, JobState.COMPLETING, reason, code, signal or None, native_id)


@dataclass(frozen=True, slots=True)
class Transition:
    """One stored state change (or, with ``applied=False``, an observation that changed nothing)."""

    seq: int
    id: JobId
    attempt: int
    old: JobState | None
    new: JobState
    at: float
    reason: str
    applied: bool = True


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job (or master, or subjob) as stored in the registry."""

    id: JobId
    name: str
    spec: JobSpec
    state: JobState
    attempt: int
    uuid: str
    backend: str
    tags: tuple[str, ...]
    created_at: float
    updated_at: float
    native_id: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    job_dir: Path | None = None
    subjobs: int = 0
    kill_requested: bool = False
    counts: dict[JobState, int] = field(default_factory=dict)
    problem: str = ""
    """Why the stored spec no longer validates ("" if it does; ``spec`` is then a placeholder)."""

    @property
    def is_master(self) -> bool:
        return self.subjobs > 0

    @property
    def attempt_dir(self) -> Path | None:
        return None if self.job_dir is None else self.job_dir / f"attempt-{self.attempt}"

    @property
    def output_dir(self) -> Path | None:
        return None if self.job_dir is None else self.job_dir / "output"


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """How one backend instance is doing, as the monitor last wrote it to the registry.

    ``state`` is ``"up"``, ``"down"`` (cannot start or answer: its jobs wait, none is failed for
    it) or ``"starting"``; ``reason`` says why it is down or what last failed."""

    name: str
    kind: str
    state: str
    reason: str = ""
    since: float = 0.0
    active: int = 0
    interval: float = 0.0
    last_poll: float | None = None
    polls: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    calls: Mapping[str, int] = field(default_factory=dict)
    """Scheduler calls made by the last status cycle, by command."""
    updated_at: float = 0.0

    @property
    def down(self) -> bool:
        return self.state == "down"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: its jobs, the per-state counts of the whole selection, and the
    id to pass as ``after`` for the next page (None on the last)."""

    jobs: list[JobRecord]
    counts: dict[JobState, int]
    next_after: JobId | None


@dataclass(frozen=True, slots=True)
class Removal:
    """What ``Registry.remove`` did: deleted now, or killed and left as a tombstone."""

    removed: list[JobRecord]
    pending: list[JobRecord]
