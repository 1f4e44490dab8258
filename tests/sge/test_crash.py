"""A monitor SIGKILLed while Grid Engine jobs run (at injected points and at random times): after a
restart every job is re-attached, reaches its true final state, and ran exactly once (a witness
file proves it)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from corral import JobState
from corral.records import JobId
from tests.crashkit import crash_at, finish_and_check, start_monitor, submit_sweep
from tests.sge.helpers import SGE

pytestmark = [*SGE, pytest.mark.timeout(300)]
CONFIG = "autostart = false\n[backends.sge]\nmin_interval = 0.2\nmax_interval = 2.0\n"


def sweep(home: Path, n: int, witness: Path) -> JobId:
    return submit_sweep(home, n, witness, "sge", CONFIG)


@pytest.mark.parametrize("fault", ["after_claim", "after_qsub"])
def test_crash_points(home: Path, tmp_path: Path, fault: str) -> None:
    witness = tmp_path / "witness"
    n = 12
    job = sweep(home, n, witness)
    states = crash_at(home, fault)
    assert JobState.SUBMITTING in states, states
    finish_and_check(home, job, n, witness)


def test_sigkill_at_random_times_in_a_40_job_sweep(home: Path, tmp_path: Path) -> None:
    rng = random.Random(random.randrange(1 << 30))
    witness = tmp_path / "witness"
    n = 40
    job = sweep(home, n, witness)
    for _ in range(4):
        monitor = start_monitor(home)
        time.sleep(rng.uniform(0.2, 1.5))
        monitor.kill()
        monitor.communicate(timeout=30)
    finish_and_check(home, job, n, witness)
