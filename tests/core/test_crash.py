"""SIGKILL the monitor at injected crash points and at random times; after a restart every job
is re-attached, reaches its true final state, and ran exactly once (proven by a witness file)."""

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

pytestmark = pytest.mark.timeout(240)


def submit_sweep(home: Path, n: int, witness: Path) -> JobId:
    (home / "config.toml").write_text("autostart = false\n[backends.local]\nmax_cpus = 8\n")
    # Job I appends I to the witness, sleeps a little, and fails when I % 7 == 3.
    script = f'echo "$I" >> {witness}; sleep 0.$((I % 4)); [ $((I % 7)) -ne 3 ]'
    with Session(load_settings(), monitor="off") as session:
        return session.submit(
            {
                "name": "crash",
                "command": ["sh", "-c", script],
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
    try:
        with Session(load_settings(), monitor="off") as session:
            (master,) = session.wait(job, timeout=120)
            subs = session.subjobs(job)
    finally:
        monitor.send_signal(signal.SIGTERM)
        _, err = monitor.communicate(timeout=30)
    assert monitor.returncode == 0, err
    lines = witness.read_text().split()
    assert len(lines) == n, Counter(lines).most_common(3)
    assert set(lines) == {str(i) for i in range(n)}
    for sub in subs:
        i = int(sub.spec.environment["I"])
        expected = (JobState.FAILED, 1) if i % 7 == 3 else (JobState.COMPLETED, 0)
        assert (sub.state, sub.exit_code) == expected, (sub.id, sub.reason)
    assert master.state == JobState.FAILED


@pytest.mark.parametrize("fault", ["after_claim", "after_spawn"])
def test_crash_points(home: Path, tmp_path: Path, fault: str) -> None:
    witness = tmp_path / "witness"
    n = 12
    job = submit_sweep(home, n, witness)
    crashed = start_monitor(home, fault)
    crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    with Session(load_settings(), monitor="off") as session:
        states = session.get(job).counts
    assert JobState.SUBMITTING in states or JobState.SUBMITTED in states, states
    finish_and_check(home, job, n, witness)


def test_sigkill_at_random_times_in_a_100_job_run(home: Path, tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    witness = tmp_path / "witness"
    n = 100
    job = submit_sweep(home, n, witness)
    for _ in range(4):
        monitor = start_monitor(home)
        time.sleep(rng.uniform(0.2, 1.5))
        monitor.kill()
        monitor.communicate(timeout=30)
    finish_and_check(home, job, n, witness)
