"""``remove(force=True)``: kill first, keep a tombstone until every unit is final, then delete."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from corral import JobState, Session, Settings
from corral.errors import NotFound
from corral.registry.driver import sqlite3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too (the wrapper reaps its child; the test must not wait on that race)
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False


def test_rm_force_of_a_running_job_leaves_no_process_and_no_rows(
    session: Session, settings: Settings, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    job = session.submit({"command": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"]})
    assert _until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    (removed,) = session.remove(job, force=True)
    assert removed.id == job
    with pytest.raises(NotFound):  # a tombstone is hidden from every selection at once
        session.get(job)
    assert removed.job_dir is not None
    assert _until(lambda: not removed.job_dir.exists(), 60), "the monitor never purged it"  # type: ignore[union-attr]
    assert not _alive(pid)
    with sqlite3.connect(settings.registry) as conn:
        left = conn.execute("SELECT count(*) FROM jobs WHERE job_id = ?", (job.job,)).fetchone()
    assert left == (0,)


def test_rm_force_keeps_the_tombstone_while_the_kill_is_pending(
    settings: Settings, tmp_path: Path
) -> None:
    """Without a monitor nothing can confirm the kill: the rows stay (hidden) for the next one."""
    with Session(settings, monitor="off") as s:
        job = s.submit({"command": ["sleep", "300"]})
    with sqlite3.connect(settings.registry) as conn:  # as if a monitor had launched it
        conn.execute("UPDATE jobs SET state = 'running' WHERE job_id = ?", (job.job,))
    with Session(settings, monitor="off") as s:
        s.remove(job, force=True)
        with pytest.raises(NotFound):
            s.get(job)
    with sqlite3.connect(settings.registry) as conn:
        row = conn.execute(
            "SELECT removing, kill_requested, state FROM jobs WHERE job_id = ?", (job.job,)
        ).fetchone()
    assert row == (1, 1, JobState.RUNNING.value)
