"""Shared by the crash tests of every backend: a sweep whose jobs write a witness file, a monitor
daemon started (optionally with a crash point), and the final check that every job ran exactly
once and reached its true final state."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from corral import JobState, Session, load_settings
from corral.lock import holder
from corral.records import JobId
from tests.conftest import env_with_home


def submit_sweep(home: Path, n: int, witness: Path, backend: str, config: str) -> JobId:
    (home / "config.toml").write_text(config)
    # Point I appends I to the witness, sleeps a little, and fails when I % 7 == 3.
    script = f'echo "$I" >> {witness}; sleep 0.$((I % 4)); [ $((I % 7)) -ne 3 ]'
    with Session(load_settings(), monitor="off") as session:
        return session.submit(
            {
                "name": "crash",
                "command": ["sh", "-c", script],
                "backend": backend,
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


def crash_at(home: Path, fault: str) -> dict[JobState, int]:
    """Run a monitor that SIGKILLs itself at ``fault``; the sweep's state counts afterwards."""
    crashed = start_monitor(home, fault)
    crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    with Session(load_settings(), monitor="off") as session:
        (master,) = session.select()
        return master.counts


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
    assert len(lines) == n, Counter(lines).most_common(3)  # each job ran exactly once
    assert set(lines) == {str(i) for i in range(n)}
    for sub in subs:
        i = int(sub.spec.environment["I"])
        expected = (JobState.FAILED, 1) if i % 7 == 3 else (JobState.COMPLETED, 0)
        assert (sub.state, sub.exit_code) == expected, (sub.id, sub.reason)
    assert master.state == JobState.FAILED


def kill_at_random_times(home: Path, n: int, backend: str, config: str, witness: Path) -> None:
    """A sweep of ``n`` whose monitor is SIGKILLed four times at random moments, then checked."""
    rng = random.Random(random.randrange(1 << 30))
    job = submit_sweep(home, n, witness, backend, config)
    for _ in range(4):
        monitor = start_monitor(home)
        time.sleep(rng.uniform(0.2, 1.5))
        monitor.kill()
        monitor.communicate(timeout=30)
    finish_and_check(home, job, n, witness)


def crash_and_finish(
    home: Path, n: int, backend: str, config: str, witness: Path, fault: str
) -> dict[JobState, int]:
    """A sweep of ``n`` whose first monitor dies at ``fault``; then checked. The state counts
    the crash left are returned for the caller to judge."""
    job = submit_sweep(home, n, witness, backend, config)
    states = crash_at(home, fault)
    finish_and_check(home, job, n, witness)
    return states
