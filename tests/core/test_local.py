"""The Local backend end to end, through the sync Session and its in-process monitor."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from corral import JobState, Session, Settings
from corral.records import JobId

S = JobState


def test_sweep_runs_and_collects_outputs(session: Session) -> None:
    job = session.submit(
        {
            "name": "sq",
            "command": ["sh", "-c", 'echo $(( {x} * {x} )) > out.txt; echo "x={x}"'],
            "outputs": ["out.txt"],
            "splitter": {"kind": "sweep", "parameters": {"x": ["2", "3", "4"]}},
        }
    )
    (master,) = session.wait(job, timeout=30)
    assert master.state == S.COMPLETED
    assert master.counts == {S.COMPLETED: 3}
    values = sorted(
        int((sub.output_dir / "out.txt").read_text())  # type: ignore[operator]
        for sub in session.subjobs(job)
    )
    assert values == [4, 9, 16]
    assert session.peek(JobId(job.job, 1)).strip() == "x=3"


def test_exit_code_fails_the_job_and_is_recorded(session: Session) -> None:
    job = session.submit({"command": ["sh", "-c", "echo oops >&2; exit 3"]})
    (record,) = session.wait(job, timeout=30)
    assert (record.state, record.exit_code, record.reason) == (S.FAILED, 3, "exit code 3")
    assert session.peek(job, stderr=True).strip() == "oops"
    states = [t.new for t in session.history(job) if t.applied]
    assert states == [S.NEW, S.SUBMITTING, S.SUBMITTED, S.RUNNING, S.COMPLETING, S.FAILED]


@pytest.mark.parametrize("walltime", [0, 60])  # (with a walltime the job runs under timeout(1))
def test_a_pipeline_whose_reader_ends_early_ends_quietly(session: Session, walltime: int) -> None:
    """SIGPIPE is at its default in a job, though the monitor (Python) ignores it: the writer of
    a pipeline dies when its reader is gone, without a "Broken pipe" error."""
    script = "yes | head -n 2 > /dev/null; grep SigIgn /proc/self/status"
    job = session.submit(
        {"command": ["sh", "-c", script], "resources": {"walltime": walltime or None}}
    )
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.COMPLETED
    assert session.peek(job, stderr=True) == ""
    ignored = int(session.peek(job).split()[1], 16)
    assert not ignored & (1 << 12)  # SIGPIPE (13)


def test_missing_declared_output_fails_the_job(session: Session) -> None:
    job = session.submit({"command": ["true"], "outputs": ["result.csv"]})
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.FAILED
    assert record.reason == "missing declared output: result.csv"


def test_walltime_is_enforced_locally(session: Session) -> None:
    job = session.submit({"command": ["sleep", "30"], "resources": {"walltime": 1}})
    (record,) = session.wait(job, timeout=20)
    assert (record.state, record.reason) == (S.FAILED, "walltime exceeded")


def test_memory_limit_is_enforced_locally(session: Session) -> None:
    hog = "import sys; b = bytearray(400 * 1024 * 1024); print('allocated')"
    job = session.submit({"command": ["python3", "-c", hog], "resources": {"memory_mb": 100}})
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.FAILED
    if record.reason != "memory limit exceeded":  # a memory cgroup OOM-kills instead
        assert "MemoryError" in session.peek(job, stderr=True)


@pytest.mark.parametrize("walltime", [None, 120])  # without and with timeout(1) in between
def test_kill_terminates_the_whole_process_group(
    session: Session, tmp_path: Path, walltime: int | None
) -> None:
    marker = tmp_path / "child.pid"
    job = session.submit(
        {"script": f"sleep 60 & echo $! > {marker}; wait", "resources": {"walltime": walltime}}
    )
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(marker.read_text())
    assert session.kill(job) == [job]
    (record,) = session.wait(job, timeout=20)
    assert record.state == S.KILLED
    assert record.attempt_dir is not None
    exit_file = record.attempt_dir / "run-exit.0"
    deadline = time.monotonic() + 3  # well under the 60 s the job would take on its own
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exit_file.read_text().split() == ["143", "1"]  # the wrapper saw TERM, job ended
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan may wait a moment for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_concurrency_cap_keeps_extra_jobs_submitted(home: Path) -> None:
    (home / "config.toml").write_text("autostart = false\n[backends.local]\nmax_cpus = 2\n")
    from corral import load_settings

    with Session(load_settings()) as session:
        job = session.submit(
            {"command": ["sleep", "1"], "splitter": {"kind": "args", "args": [[]] * 4}}
        )
        deadline = time.monotonic() + 10
        counts: dict[JobState, int] = {}
        while time.monotonic() < deadline:
            counts = session.get(job).counts
            if counts.get(S.RUNNING) == 2:
                break
            time.sleep(0.05)
        assert counts == {S.RUNNING: 2, S.SUBMITTED: 2}
        (master,) = session.wait(job, timeout=20)
        assert master.state == S.COMPLETED


def test_failed_subjobs_resubmit_as_new_attempts(session: Session, tmp_path: Path) -> None:
    flag = tmp_path / "second-time"
    job = session.submit(
        {
            "script": f'[ "$1" = 1 ] && [ ! -e {flag} ] && {{ touch {flag}; exit 1; }}; exit 0',
            "splitter": {"kind": "args", "args": [["0"], ["1"], ["2"]]},
        }
    )
    (master,) = session.wait(job, timeout=30)
    assert master.counts == {S.COMPLETED: 2, S.FAILED: 1}
    assert session.resubmit(job) == [JobId(job.job, 1)]
    (master,) = session.wait(job, timeout=30)
    assert master.state == S.COMPLETED
    retried = session.get(JobId(job.job, 1))
    assert retried.attempt == 2
    assert [t.attempt for t in session.history(retried.id) if t.new == S.FAILED] == [1]


def test_max_attempts_retries_automatically(session: Session, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    job = session.submit(
        {"script": f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ]", "max_attempts": 3}
    )
    (record,) = session.wait(job, timeout=30)
    assert (record.state, record.attempt) == (S.COMPLETED, 3)


def test_callbacks_see_every_state_change(session: Session) -> None:
    seen: list[tuple[str, JobState]] = []
    session.on_transition(lambda t: seen.append((str(t.id), t.new)))
    job = session.submit({"command": ["true"]})
    session.wait(job, timeout=30)
    deadline = time.monotonic() + 5
    while (str(job), S.COMPLETED) not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [s for i, s in seen if i == str(job)][-1] == S.COMPLETED
    assert (str(job), S.RUNNING) in seen


def test_copy_select_and_remove(session: Session, settings: Settings) -> None:
    job = session.submit({"name": "orig", "command": ["true"], "tags": ["t1"]})
    session.wait(job, timeout=30)
    twin = session.copy(job)
    assert twin != job and session.get(twin).spec == session.get(job).spec
    session.wait(twin, timeout=30)
    assert [r.id for r in session.select(tags=["t1"])] == [job, twin]
    job_dir = session.get(job).job_dir
    assert job_dir is not None and job_dir.exists()
    session.remove(job)
    assert not job_dir.exists()
    assert [r.id for r in session.select(states=["completed"])] == [twin]


def test_wait_timeout_raises(session: Session) -> None:
    job = session.submit({"command": ["sleep", "5"]})
    with pytest.raises(TimeoutError):
        session.wait(job, timeout=0.3)
    session.kill(job)
    session.wait(job, timeout=20)
