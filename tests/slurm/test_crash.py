"""A monitor SIGKILLed while Slurm jobs run (at injected points and at random times): after a
restart every job is re-attached, reaches its true final state, and ran exactly once (a witness
file proves it)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from corral import JobState, Session, load_settings
from corral.lock import holder
from corral.records import JobId
from tests.conftest import env_with_home
from tests.slurm.helpers import SLURM

pytestmark = [*SLURM, pytest.mark.timeout(300)]
CONFIG = "autostart = false\n[backends.slurm]\nmin_interval = 0.2\nmax_interval = 2.0\n"


def submit_sweep(home: Path, n: int, witness: Path) -> JobId:
    (home / "config.toml").write_text(CONFIG)
    # Point I appends I to the witness, sleeps a little, and fails when I % 7 == 3.
    script = f'echo "$I" >> {witness}; sleep 0.$((I % 4)); [ $((I % 7)) -ne 3 ]'
    with Session(load_settings(), monitor="off") as session:
        return session.submit(
            {
                "name": "crash",
                "command": ["sh", "-c", script],
                "backend": "slurm",
                "splitter": {"kind": "sweep", "parameters": {"i": [str(i) for i in range(n)]}},
            }
        )


def start_monitor(home: Path, fault: str = "") -> subprocess.Popen[str]:
    env = env_with_home(home, CORRAL_FAULT=fault) if fault else env_with_home(home)
    return subprocess.Popen(
        [sys.executable, "-m", "corral.monitor", "--idle-exit", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_and_check(home: Path, job: JobId, n: int, witness: Path) -> None:
    monitor = start_monitor(home)
    deadline = time.monotonic() + 30
    while holder(home / "monitor.lock") != monitor.pid and time.monotonic() < deadline:
        time.sleep(0.02)
    stuck: list[tuple[str, str, str | None, str]] = []
    try:
        with Session(load_settings(), monitor="off") as session:
            try:
                (master,) = session.wait(job, timeout=120)
            except TimeoutError:
                stuck = [(str(s.id), s.state, s.native_id, s.reason) for s in session.subjobs(job)]
            subs = session.subjobs(job)
    finally:
        monitor.send_signal(signal.SIGTERM)
        _, err = monitor.communicate(timeout=30)
    assert not stuck, f"not finished: {stuck}\nmonitor stderr:\n{err[-3000:]}"
    assert monitor.returncode == 0, err
    lines = witness.read_text().split()
    assert len(lines) == n, Counter(lines).most_common(3)
    assert set(lines) == {str(i) for i in range(n)}
    for sub in subs:
        i = int(sub.spec.environment["I"])
        expected = (JobState.FAILED, 1) if i % 7 == 3 else (JobState.COMPLETED, 0)
        assert (sub.state, sub.exit_code) == expected, (sub.id, sub.reason)
    assert master.state == JobState.FAILED


@pytest.mark.parametrize("fault", ["after_claim", "after_sbatch"])
def test_crash_points(home: Path, tmp_path: Path, fault: str) -> None:
    witness = tmp_path / "witness"
    n = 12
    job = submit_sweep(home, n, witness)
    crashed = start_monitor(home, fault)
    crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    with Session(load_settings(), monitor="off") as session:
        states = session.get(job).counts
    assert JobState.SUBMITTING in states, states
    finish_and_check(home, job, n, witness)


def test_sigkill_at_random_times_in_a_40_job_sweep(home: Path, tmp_path: Path) -> None:
    rng = random.Random(random.randrange(1 << 30))
    witness = tmp_path / "witness"
    n = 40
    job = submit_sweep(home, n, witness)
    for _ in range(4):
        monitor = start_monitor(home)
        time.sleep(rng.uniform(0.2, 1.5))
        monitor.kill()
        monitor.communicate(timeout=30)
    finish_and_check(home, job, n, witness)
