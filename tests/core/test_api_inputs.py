"""Issue 10 through the API: every failure is a ``CorralError``; a stored spec that no longer
validates never takes the monitor or a verb down."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from corral import Session, Settings
from corral.errors import CorralError, InvalidInput, InvalidSpec, NotFound, WaitTimeout
from corral.records import JobId
from corral.registry.driver import sqlite3
from corral.selection import Selection
from corral.states import JobState


@pytest.fixture
def offline(settings: Settings) -> Session:
    with Session(settings, monitor="off") as sess:
        yield sess  # type: ignore[misc]


@pytest.mark.parametrize("job", [2**70, 2**63, 1.5, None, -1, True, "\u0661", "x", [2**70], b"1"])
def test_get_bad_ids(offline: Session, job: Any) -> None:
    with pytest.raises(InvalidInput):
        offline.get(job)


def test_get_missing_id_is_not_found(offline: Session) -> None:
    with pytest.raises(NotFound):
        offline.get(2**63 - 1)


@pytest.mark.parametrize("spec", [None, 5, "echo", ["echo"], {"command": ["echo", "\x00"]}])
def test_submit_junk(offline: Session, spec: Any) -> None:
    with pytest.raises(InvalidSpec):
        offline.submit(spec)


def test_bad_state_in_a_selection(offline: Session) -> None:
    with pytest.raises(InvalidInput, match="not a job state"):
        offline.select(states=["bogus"])
    with pytest.raises(InvalidInput):
        offline.kill(Selection(states=("bogus",)))  # type: ignore[arg-type]


def test_wait_timeouts(offline: Session) -> None:
    job = offline.submit({"command": ["true"]})
    for bad in (-1, math.nan, "1", True):
        with pytest.raises(InvalidInput, match="timeout"):
            offline.wait(job, timeout=bad)


def test_wait_timeout_and_zero_on_a_final_job(settings: Settings) -> None:
    with Session(settings) as sess:
        slow = sess.submit({"command": ["sleep", "30"]})
        with pytest.raises(WaitTimeout) as info:
            sess.wait(slow, timeout=0.2)
        assert isinstance(info.value, TimeoutError)  # still caught by `except TimeoutError`
        sess.kill(slow)
        job = sess.submit({"command": ["true"]})
        sess.wait([job, slow], timeout=60)
        assert [r.state for r in sess.wait(job, timeout=0)] == [JobState.COMPLETED]


def corrupt(settings: Settings, job: int, spec: dict[str, Any]) -> None:
    """What an older corral (or `-O x=nan` before issue 10) left: a spec that fails to read."""
    conn = sqlite3.connect(settings.registry)
    try:
        with conn:
            conn.execute("UPDATE jobs SET spec = ? WHERE job_id = ?", (json.dumps(spec), job))
    finally:
        conn.close()


BAD = {"command": ["echo", "a"], "backend_options": {"x": None}}


def test_bad_stored_spec_is_failed_not_fatal(settings: Settings) -> None:
    with Session(settings, monitor="off") as sess:
        first = sess.submit({"command": ["echo", "a"]})
    corrupt(settings, first.job, BAD)
    with Session(settings) as sess:  # the monitor starts with the bad row in the registry
        second = sess.submit({"command": ["echo", "b"]})
        done = sess.wait([first, second], timeout=60)
        assert [r.state for r in done] == [JobState.FAILED, JobState.COMPLETED]
        record = sess.get(first)
        assert record.problem.startswith("stored invalid job spec: backend_options.x")
        assert "stored invalid job spec" in record.reason
        with pytest.raises(InvalidSpec, match="cannot be copied"):
            sess.copy(first)
        sess.resubmit(first)  # a new attempt is failed the same way, never run as a placeholder
        assert sess.wait(first, timeout=60)[0].state == JobState.FAILED
        assert [r.id for r in sess.remove(first)] == [first]


def test_bad_stored_spec_can_be_killed_and_removed(settings: Settings) -> None:
    with Session(settings, monitor="off") as sess:
        job = sess.submit({"command": ["sleep", "30"]})
    corrupt(settings, job.job, {"command": "not a list"})
    with Session(settings, monitor="off") as sess:
        assert sess.get(job).problem
        assert sess.select()[0].id == job
        assert sess.kill(job) == [job]
        assert [r.id for r in sess.remove(job, force=True)] == [job]
        with pytest.raises(NotFound):
            sess.get(job)


def test_a_session_outside_its_with_block(settings: Settings) -> None:
    with pytest.raises(CorralError, match="'with' block"):
        Session(settings, monitor="off").get(1)


def test_every_api_failure_is_a_corral_error(offline: Session) -> None:
    calls = [
        lambda: offline.get(JobId(2**64)),
        lambda: offline.kill(Selection()),
        lambda: offline.history(1.5),  # type: ignore[arg-type]
        lambda: offline.subjobs(None),  # type: ignore[arg-type]
        lambda: offline.remove([None]),  # type: ignore[list-item]
        lambda: offline.peek("\u0661"),
    ]
    for call in calls:
        with pytest.raises(CorralError):
            call()


def test_relative_paths_are_the_submitters_wherever_the_monitor_runs(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Input files and the working dir are resolved at submit, against the submitter's
    directory: a monitor working elsewhere (a daemon started from another directory, this
    process after a chdir) stages and runs the files the submitter meant."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    for place in (here, elsewhere):
        place.mkdir()
        (place / "data.csv").write_text(f"from {place.name}\n")
    monkeypatch.chdir(here)
    with Session(settings, monitor="off") as offline:
        staged = offline.submit(
            {
                "command": ["cat", "in.csv", "data.csv"],
                "input_files": ["data.csv", "data.csv:in.csv"],
            }
        )
        placed = offline.submit({"command": ["sh", "-c", "cat data.csv; pwd"], "working_dir": "."})
        assert offline.get(staged).spec.input_files == (
            str(here / "data.csv"),
            f"{here / 'data.csv'}:in.csv",
        )
        assert offline.get(placed).spec.working_dir == str(here)
    monkeypatch.chdir(elsewhere)
    with Session(settings) as session:
        records = session.wait([staged, placed], timeout=60)
        assert [r.state for r in records] == [JobState.COMPLETED] * 2, records
        assert session.peek(staged) == "from here\nfrom here\n"
        assert session.peek(placed) == f"from here\n{here}\n"
