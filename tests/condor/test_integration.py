"""Against the real one-machine HTCondor pool (scripts/test-condor.sh): a sweep as one cluster
with its outputs retrieved, holds and releases (user holds, a hold of a running job refused, the
scheduler's own hold of a running job as a requeue, a release), a running job vacated back to
idle (a requeue, then it runs again), and a monitor SIGKILLed between
the submit call and its commit (never run twice)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral import JobState, Session, load_settings
from corral.lock import holder
from corral.records import JobId
from tests.cli.conftest import wait_until
from tests.condor.helpers import CONDOR, runs_by_label
from tests.conftest import env_with_home
from tests.crashkit import crash_at, start_monitor

pytestmark = [*CONDOR, pytest.mark.timeout(240)]
SECTION = "[backends.condor]\nmin_interval = 0.2\nmax_interval = 1.0\n"


@pytest.fixture
def condor_home(home: Path) -> Path:
    (home / "config.toml").write_text(SECTION)
    return home


def corral(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.cli", *args],
        env=env_with_home(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _not_before(seconds: float) -> str:
    """A requirements expression no slot matches for ``seconds`` (then any slot does)."""
    return f"time() > {int(time.time() + seconds)}"


def test_a_sweep_is_one_cluster_and_its_outputs_come_back(condor_home: Path) -> None:
    with Session(load_settings()) as session:
        job = session.submit(
            {
                "name": "sweep",
                "command": ["sh", "-c", 'echo "point $I" > out.txt; echo "to stdout $I"'],
                "backend": "condor",
                "outputs": ["out.txt"],
                "splitter": {"kind": "sweep", "parameters": {"i": [str(i) for i in range(5)]}},
            }
        )
        (master,) = session.wait(job, timeout=180)
        subs = session.subjobs(job.job)
        assert master.state == JobState.COMPLETED, [s.reason for s in subs]
        assert len({s.native_id.split(".")[0] for s in subs if s.native_id}) == 1
        for sub in subs:
            i = sub.spec.environment["I"]
            assert (sub.output_dir / "out.txt").read_text() == f"point {i}\n"
            assert sub.attempt_dir is not None
            assert (sub.attempt_dir / "stdout").read_text() == f"to stdout {i}\n"
            # what the attempt used, from its job ad (RemoteWallClockTime, RemoteUserCpu, ...)
            assert sub.usage is not None and sub.usage.wall_seconds is not None, sub.usage
            assert sub.usage.cpu_seconds is not None and sub.usage.host, sub.usage
        assert set(runs_by_label(f"corral-{s.uuid}" for s in subs).values()) == {1}


def test_hold_a_queued_job_then_release_it(condor_home: Path) -> None:
    with Session(load_settings()) as session:
        runnable_at = time.monotonic() + 30
        job = session.submit(
            {
                "command": ["true"],
                "backend": "condor",
                "backend_options": {"requirements": _not_before(30)},
            }
        )
        assert wait_until(lambda: session.get(job).state == JobState.SUBMITTED, 60)
        # a job whose inputs are still being spooled (hold 16) is "already held: spooling":
        # the user tries again, so does the test
        tries: list[subprocess.CompletedProcess[str]] = []

        def hold() -> bool:
            tries.append(corral(condor_home, "hold", str(job), "--reason", "wait for me", "--json"))
            return tries[-1].returncode == 0 or "spooling" not in tries[-1].stdout

        assert wait_until(hold, 60, every=1)
        held = tries[-1]
        assert held.returncode == 0, held.stderr
        assert json.loads(held.stdout)["held"] == [str(job)]
        # (a poll answered before the hold may land after it: the scheduler's word wins soon)
        assert wait_until(lambda: session.get(job).reason.startswith("held: wait for me"), 30)
        time.sleep(max(0.0, runnable_at - time.monotonic()) + 2)  # it could run now: held, it stays
        record = session.get(job)
        assert record.state == JobState.SUBMITTED
        assert record.reason.startswith("held: wait for me"), record.reason
        released = corral(condor_home, "release", str(job))
        assert released.returncode == 0, released.stderr
        (done,) = session.wait(job, timeout=120)
        assert done.state == JobState.COMPLETED, done.reason
        assert runs_by_label([f"corral-{done.uuid}"])[f"corral-{done.uuid}"] == 1


def test_a_running_job_cannot_be_held_but_a_scheduler_hold_requeues_it(
    condor_home: Path,
) -> None:
    with Session(load_settings()) as session:
        job = session.submit({"command": ["sleep", "300"], "backend": "condor"})
        assert wait_until(lambda: session.get(job).state == JobState.RUNNING, 90)
        refused = corral(condor_home, "hold", str(job))
        assert refused.returncode == 2
        assert "running jobs cannot be held" in refused.stdout
        native = session.get(job).native_id
        assert native is not None
        # HTCondor itself holds the running job (an admin's condor_hold: eviction to hold)
        subprocess.run(["condor_hold", native], check=True, capture_output=True)
        assert wait_until(lambda: session.get(job).state == JobState.SUBMITTED, 60)
        record = session.get(job)
        assert record.reason.startswith("held: "), record.reason
        moves = [(t.old, t.new) for t in session.history(job) if t.applied]
        assert (JobState.RUNNING, JobState.SUBMITTED) in moves
        assert corral(condor_home, "release", str(job)).returncode == 0
        assert wait_until(lambda: session.get(job).state == JobState.RUNNING, 90)
        session.kill(job)
        (done,) = session.wait(job, timeout=60)
        assert done.state == JobState.KILLED


def test_a_running_job_vacated_back_to_idle_is_requeued_then_runs_again(
    condor_home: Path,
) -> None:
    htcondor2 = pytest.importorskip("htcondor2")  # (the pool has no condor_vacate_job)
    with Session(load_settings()) as session:
        job = session.submit({"command": ["sleep", "15"], "backend": "condor"})
        assert wait_until(lambda: session.get(job).state == JobState.RUNNING, 90)
        cluster, proc = (session.get(job).native_id or "").split(".")
        where = f"ClusterId == {cluster} && ProcId == {proc}"
        schedd = htcondor2.Schedd()
        # kept idle a few seconds (no slot matches yet), so a poll surely sees it waiting
        schedd.edit(where, "Requirements", _not_before(8))
        schedd.act(htcondor2.JobAction.Vacate, where)
        assert wait_until(lambda: session.get(job).state == JobState.SUBMITTED, 60)
        assert session.get(job).reason.startswith("requeued ("), session.get(job).reason
        (done,) = session.wait(job, timeout=150)
        assert (done.state, done.exit_code) == (JobState.COMPLETED, 0), done.reason
        moves = [(t.old, t.new) for t in session.history(job) if t.applied]
        assert (JobState.RUNNING, JobState.SUBMITTED) in moves
        assert moves.count((JobState.SUBMITTED, JobState.RUNNING)) == 2, moves


def test_a_hold_that_cannot_succeed_fails_the_job_and_leaves_the_queue(home: Path) -> None:
    # Shared mode with the attempt dirs under this test's 0700 home: the pool's user cannot
    # open the executable, HTCondor holds the job (code 6 or 7), corral fails it and removes it.
    (home / "config.toml").write_text(SECTION + 'mode = "shared"\n')
    with Session(load_settings()) as session:
        job = session.submit({"command": ["true"], "backend": "condor"})
        (done,) = session.wait(job, timeout=120)
        assert done.state == JobState.FAILED
        assert done.reason.startswith("held: "), done.reason
        native = done.native_id or ""
        cluster, proc = native.split(".")
        assert wait_until(lambda: not _in_queue(cluster, proc), 30)


def _in_queue(cluster: str, proc: str) -> bool:
    out = subprocess.run(
        ["condor_q", "-af", "JobStatus", "-constraint", f"ClusterId=={cluster} && ProcId=={proc}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return bool(out.strip())


@pytest.mark.parametrize("fault", ["after_condor_submit", "before_condor_spool"])
def test_a_crash_between_submit_and_commit_never_runs_a_job_twice(home: Path, fault: str) -> None:
    (home / "config.toml").write_text("autostart = false\n" + SECTION)
    n = 12
    with Session(load_settings(), monitor="off") as session:
        job = session.submit(
            {
                "name": "crash",
                "command": ["sh", "-c", "sleep 0.$((I % 4)); [ $((I % 7)) -ne 3 ]"],
                "backend": "condor",
                "splitter": {"kind": "sweep", "parameters": {"i": [str(i) for i in range(n)]}},
            }
        )
    states = crash_at(home, fault)
    assert JobState.SUBMITTING in states, states
    monitor = start_monitor(home)
    assert wait_until(lambda: holder(home / "monitor.lock") == monitor.pid, 30)
    try:
        with Session(load_settings(), monitor="off") as session:
            (master,) = session.wait(job, timeout=180)
            subs = session.subjobs(job.job)
    finally:
        monitor.send_signal(signal.SIGTERM)
        _, err = monitor.communicate(timeout=30)
    assert monitor.returncode == 0, err
    runs = runs_by_label(f"corral-{s.uuid}" for s in subs)
    assert [runs[f"corral-{s.uuid}"] for s in subs] == [1] * n, runs
    for sub in subs:
        i = int(sub.spec.environment["I"])
        expected = (JobState.FAILED, 1) if i % 7 == 3 else (JobState.COMPLETED, 0)
        assert (sub.state, sub.exit_code) == expected, (sub.id, sub.reason)
    assert master.state == JobState.FAILED
    assert isinstance(job, JobId)
