"""Hold and release: the client side of ``corral hold`` / ``corral release``.

Holds are asked of the scheduler at once, from the calling process (one call per backend for
all the jobs given), so the answer says which jobs were held and why the others were not. The
registry keeps the job ``submitted`` and records the reason ("held: ..." / "released from
hold"); the monitor's next status cycle replaces it with the scheduler's own words
(``Observation.held``). Only queued jobs can be held: a running one is refused ("running jobs
cannot be held", exit 2), and so is a job whose backend cannot hold (``HoldUnsupported``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from corral import backends, inputs
from corral.config import Settings
from corral.errors import HoldUnsupported, InvalidInput
from corral.records import Attempt, JobId
from corral.registry.aio import AsyncRegistry
from corral.states import JobState

RUNNING = "running jobs cannot be held"


@dataclass(frozen=True, slots=True)
class HoldResult:
    """What a hold or release did: the jobs it acted on, and why each other one was not."""

    done: list[JobId] = field(default_factory=list)
    refused: dict[JobId, str] = field(default_factory=dict)


def _why_not(attempt: Attempt) -> str | None:
    if attempt.state.final:
        return f"already {attempt.state.value}"
    if attempt.state in (JobState.RUNNING, JobState.COMPLETING):
        return RUNNING
    if attempt.state != JobState.SUBMITTED or not attempt.native_id:
        return f"not queued yet ({attempt.state.value})"
    return None


async def change(
    settings: Settings,
    reg: AsyncRegistry,
    ids: Sequence[JobId],
    *,
    reason: str | None,
) -> HoldResult:
    """Hold (``reason`` given) or release (``reason`` None) the runnable jobs under ``ids``."""
    if reason is not None:
        why = inputs.text_problem(reason) if isinstance(reason, str) else "is not text"
        if why or not reason.strip() or len(reason) > 500 or "\n" in reason:
            raise InvalidInput(
                f"hold reason: one line of text, at most 500 characters "
                f"({why or inputs.shown(reason)})"
            )
    attempts = await reg.call(reg.sync.runnable_attempts, ids)
    result = HoldResult()
    by_backend: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        why = _why_not(attempt)
        if why is None:
            by_backend.setdefault(attempt.spec.backend, []).append(attempt)
        else:
            result.refused[attempt.id] = why
    notes: dict[str, str] = {}
    for name, group in sorted(by_backend.items()):
        failed = await _one_backend(settings, reg, name, group, reason)
        for attempt in group:
            if attempt.uuid in failed:
                result.refused[attempt.id] = failed[attempt.uuid]
            else:
                result.done.append(attempt.id)
                notes[attempt.uuid] = f"held: {reason}" if reason is not None else ""
    if notes:
        await reg.call(reg.sync.note_hold, notes)
    result.done.sort()
    return result


async def _one_backend(
    settings: Settings, reg: AsyncRegistry, name: str, group: list[Attempt], reason: str | None
) -> Mapping[str, str]:
    """One scheduler call for all of ``group``; ``{uuid: why not}``."""
    if not backends.load(settings.backend_kind(name)).can_hold:
        verb = "hold" if reason is not None else "release"
        raise HoldUnsupported(f"backend {name} cannot {verb} jobs")
    config = settings.backend_config(name, registry_uuid=reg.sync.registry_uuid)
    backend = backends.build(config)
    await backend.start(lambda obs: None)
    try:
        if reason is not None:
            return await backend.hold(group, reason)
        return await backend.release(group)
    finally:
        await backend.stop()
