"""The job state machine: the one place that decides whether an observation changes a job.

Backends report *observations*; ``decide`` turns an observation into the transitions to record.
Within one attempt a job only moves forward along the ladder; a late or duplicate observation is
an event that changes nothing; the first final observation wins. ``unknown`` is off the ladder: a
live job enters it when its backend cannot say and leaves it with the next real observation. A
scheduler requeue is the one explicit way back (running -> submitted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class JobState(StrEnum):
    NEW = "new"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        return self in FINAL

    @property
    def rank(self) -> int:
        return _RANK[self]


FINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.KILLED})
ACTIVE = frozenset(s for s in JobState if s not in FINAL)
_LADDER = (
    JobState.NEW,
    JobState.SUBMITTING,
    JobState.SUBMITTED,
    JobState.RUNNING,
    JobState.COMPLETING,
)
_RANK = {state: i for i, state in enumerate(_LADDER)}
_RANK.update({s: len(_LADDER) for s in FINAL})
_RANK[JobState.UNKNOWN] = -1


@dataclass(frozen=True, slots=True)
class Decision:
    """What to record for one observation: the states to pass through (possibly none)."""

    steps: tuple[JobState, ...]

    @property
    def changes(self) -> bool:
        return bool(self.steps)

    @property
    def target(self) -> JobState | None:
        return self.steps[-1] if self.steps else None


NO_CHANGE = Decision(())


def decide(current: JobState, observed: JobState, *, requeue: bool = False) -> Decision:
    """The transitions an observation causes for a job currently in ``current``."""
    if current.final or observed == current:
        return NO_CHANGE
    if observed == JobState.UNKNOWN:
        return Decision((JobState.UNKNOWN,))
    if current == JobState.UNKNOWN:
        return Decision((observed,))
    if requeue and observed == JobState.SUBMITTED and current == JobState.RUNNING:
        return Decision((JobState.SUBMITTED,))
    if observed.rank <= current.rank:
        return NO_CHANGE
    # A job seen finished by a scheduler that never showed it running did run: fill that in.
    queued = current in (JobState.SUBMITTING, JobState.SUBMITTED)
    if queued and observed in (JobState.COMPLETING, JobState.COMPLETED):
        return Decision((JobState.RUNNING, observed))
    return Decision((observed,))


def master_state(counts: Mapping[JobState, int]) -> JobState:
    """A master's state, derived from its subjobs' state counts."""
    present = {state for state, n in counts.items() if n > 0}
    if not present:
        return JobState.NEW
    if present <= FINAL:
        if JobState.FAILED in present:
            return JobState.FAILED
        if JobState.KILLED in present:
            return JobState.KILLED
        return JobState.COMPLETED
    if present & {JobState.RUNNING, JobState.COMPLETING}:
        return JobState.RUNNING
    if JobState.UNKNOWN in present and present - FINAL <= {JobState.UNKNOWN}:
        return JobState.UNKNOWN
    live = [s for s in present if s not in FINAL and s != JobState.UNKNOWN]
    if present & FINAL and live and min(s.rank for s in live) >= JobState.SUBMITTED.rank:
        return JobState.RUNNING  # some done, the rest queued: the sweep is under way
    return min(live, key=lambda s: s.rank) if live else JobState.UNKNOWN


def count(states: Iterable[JobState]) -> dict[JobState, int]:
    result: dict[JobState, int] = {}
    for state in states:
        result[state] = result.get(state, 0) + 1
    return result
