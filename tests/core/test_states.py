from __future__ import annotations

import pytest

from corral.states import FINAL, JobState, decide, master_state

S = JobState


def test_final_flag() -> None:
    assert {s for s in S if s.final} == {S.COMPLETED, S.FAILED, S.KILLED}
    assert {S.COMPLETED, S.FAILED, S.KILLED} == FINAL


@pytest.mark.parametrize(
    ("current", "observed", "steps"),
    [
        (S.NEW, S.SUBMITTING, (S.SUBMITTING,)),
        (S.SUBMITTED, S.RUNNING, (S.RUNNING,)),
        (S.RUNNING, S.SUBMITTED, ()),  # late observation: ignored
        (S.RUNNING, S.RUNNING, ()),  # duplicate
        (S.SUBMITTED, S.COMPLETING, (S.RUNNING, S.COMPLETING)),  # skipped state filled in
        (S.SUBMITTED, S.FAILED, (S.FAILED,)),
        (S.COMPLETED, S.FAILED, ()),  # first final wins
        (S.KILLED, S.COMPLETED, ()),
        (S.RUNNING, S.UNKNOWN, (S.UNKNOWN,)),
        (S.UNKNOWN, S.RUNNING, (S.RUNNING,)),
        (S.UNKNOWN, S.SUBMITTED, (S.SUBMITTED,)),
        (S.COMPLETED, S.UNKNOWN, ()),
    ],
)
def test_decide(current: JobState, observed: JobState, steps: tuple[JobState, ...]) -> None:
    assert decide(current, observed).steps == steps


def test_requeue_is_the_only_way_back() -> None:
    assert decide(S.RUNNING, S.SUBMITTED, requeue=True).steps == (S.SUBMITTED,)
    assert decide(S.COMPLETED, S.SUBMITTED, requeue=True).steps == ()


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, S.NEW),
        ({S.NEW: 3}, S.NEW),
        ({S.SUBMITTED: 2, S.NEW: 1}, S.NEW),
        ({S.SUBMITTED: 3}, S.SUBMITTED),
        ({S.RUNNING: 1, S.SUBMITTED: 2}, S.RUNNING),
        ({S.COMPLETED: 1, S.SUBMITTED: 2}, S.RUNNING),
        ({S.COMPLETED: 3}, S.COMPLETED),
        ({S.COMPLETED: 2, S.FAILED: 1}, S.FAILED),
        ({S.COMPLETED: 2, S.KILLED: 1}, S.KILLED),
        ({S.FAILED: 1, S.KILLED: 1}, S.FAILED),
        ({S.FAILED: 1, S.RUNNING: 1}, S.RUNNING),
        ({S.UNKNOWN: 2}, S.UNKNOWN),
    ],
)
def test_master_state(counts: dict[JobState, int], expected: JobState) -> None:
    assert master_state(counts) == expected
