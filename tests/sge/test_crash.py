"""A monitor SIGKILLed while Grid Engine jobs run (at injected points and at random times):
after a restart every job is re-attached, reaches its true final state, and ran exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import JobState
from tests.crashkit import crash_and_finish, kill_at_random_times
from tests.sge.helpers import SGE

pytestmark = [*SGE, pytest.mark.timeout(300)]
CONFIG = "autostart = false\n[backends.sge]\nmin_interval = 0.2\nmax_interval = 2.0\n"


@pytest.mark.parametrize("fault", ["after_claim", "after_qsub"])
def test_crash_points(home: Path, tmp_path: Path, fault: str) -> None:
    states = crash_and_finish(home, 12, "sge", CONFIG, tmp_path / "witness", fault)
    assert JobState.SUBMITTING in states, states


def test_sigkill_at_random_times_in_a_40_job_sweep(home: Path, tmp_path: Path) -> None:
    kill_at_random_times(home, 40, "sge", CONFIG, tmp_path / "witness")
