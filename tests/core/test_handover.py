"""A session that ends with active jobs hands them to a detached daemon, which exits when idle."""

from __future__ import annotations

import time
from pathlib import Path

from corral import JobState, Session, load_settings
from corral.lock import holder


def test_session_exit_hands_active_jobs_to_a_daemon(home: Path) -> None:
    (home / "config.toml").write_text("idle_exit = 2\n")
    settings = load_settings()
    with Session(settings) as session:
        assert session.aio.monitor is not None  # the in-process monitor drives the jobs
        job = session.submit({"command": ["sleep", "2"]})
    daemon = holder(settings.lock_path)
    assert daemon is not None  # handed over on exit
    with Session(settings, monitor="off") as follower:
        (record,) = follower.wait(job, timeout=30)
    assert record.state == JobState.COMPLETED
    deadline = time.monotonic() + 15
    while holder(settings.lock_path) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert holder(settings.lock_path) is None  # idle daemon exited by itself
    assert "idle for 2 s; exiting" in settings.log_path.read_text()
