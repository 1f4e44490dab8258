"""SIGKILL the monitor at injected crash points and at random times; after a restart every job
is re-attached, reaches its true final state, and ran exactly once (proven by a witness file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import JobState
from corral.records import JobId
from tests.crashkit import crash_at, finish_and_check, kill_at_random_times, submit_sweep

pytestmark = pytest.mark.timeout(240)
CONFIG = "autostart = false\n[backends.local]\nmax_cpus = 8\n"


def sweep(home: Path, n: int, witness: Path) -> JobId:
    return submit_sweep(home, n, witness, "local", CONFIG)


@pytest.mark.parametrize("fault", ["after_claim", "after_spawn"])
def test_crash_points(home: Path, tmp_path: Path, fault: str) -> None:
    witness = tmp_path / "witness"
    n = 12
    job = sweep(home, n, witness)
    states = crash_at(home, fault)
    assert JobState.SUBMITTING in states or JobState.SUBMITTED in states, states
    finish_and_check(home, job, n, witness)


def test_sigkill_at_random_times_in_a_100_job_run(home: Path, tmp_path: Path) -> None:
    kill_at_random_times(home, 100, "local", CONFIG, tmp_path / "witness")
