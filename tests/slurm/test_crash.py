"""A monitor SIGKILLed while Slurm jobs run (at injected points and at random times): after a
restart every job is re-attached, reaches its true final state, and ran exactly once (a witness
file proves it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import JobState
from corral.records import JobId
from tests.crashkit import crash_at, finish_and_check, kill_at_random_times, submit_sweep
from tests.slurm.helpers import SLURM

pytestmark = [*SLURM, pytest.mark.timeout(300)]
CONFIG = "autostart = false\n[backends.slurm]\nmin_interval = 0.2\nmax_interval = 2.0\n"


def sweep(home: Path, n: int, witness: Path) -> JobId:
    return submit_sweep(home, n, witness, "slurm", CONFIG)


@pytest.mark.parametrize("fault", ["after_claim", "after_sbatch"])
def test_crash_points(home: Path, tmp_path: Path, fault: str) -> None:
    witness = tmp_path / "witness"
    n = 12
    job = sweep(home, n, witness)
    states = crash_at(home, fault)
    assert JobState.SUBMITTING in states, states
    finish_and_check(home, job, n, witness)


def test_sigkill_at_random_times_in_a_40_job_sweep(home: Path, tmp_path: Path) -> None:
    kill_at_random_times(home, 40, "slurm", CONFIG, tmp_path / "witness")
