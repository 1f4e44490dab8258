"""Job isolation (issue 9): process control in every mode this machine supports, hostile status
files, outputs collected without following links, identity markers, modes."""

from __future__ import annotations

import os
import signal
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral import JobState, Session, Settings, load_settings
from corral.backends import local_control
from corral.backends.local_control import ControlUnavailable, detect

S = JobState


def _supported() -> list[str]:
    found = []
    for mode in ("cgroup", "pidns", "pgroup"):
        try:
            detect(mode)  # type: ignore[arg-type]
        except ControlUnavailable:
            continue
        found.append(mode)
    return found


SUPPORTED = _supported()
REACHING = [m for m in SUPPORTED if m != "pgroup"]  # the modes that reach a setsid'd child


def test_root_machines_support_every_reaching_mode() -> None:
    """CI runs as root on a machine with cgroup2 + cgroup.kill: both modes must be exercised
    there, not silently skipped."""
    if os.environ.get("CORRAL_REQUIRE_ROOT"):
        assert SUPPORTED == ["cgroup", "pidns", "pgroup"]
    assert "pgroup" in SUPPORTED


def _session(home: Path, mode: str, **local: object) -> Session:
    options = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in local.items())
    (home / "config.toml").write_text(
        f'[backends.local]\nprocess_control = "{mode}"\nkill_grace = 1\n{options}'
    )
    settings = load_settings(overrides={"autostart": False}, env={"CORRAL_HOME": str(home)})
    return Session(settings)


@pytest.fixture(params=SUPPORTED)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def moded(home: Path, mode: str) -> Iterator[Session]:
    with _session(home, mode) as sess:
        yield sess


def _token() -> str:
    """A unique argument for sleep(1), to find that process in /proc afterwards."""
    return f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"


def _alive(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _gone(token: str, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(token):
            return True
        time.sleep(0.1)
    return False


def _escapee(token: str) -> list[str]:
    # a grandchild in a new session, ignoring TERM: only a cgroup or a PID namespace reaches it
    return ["sh", "-c", f"setsid sh -c 'trap \"\" TERM; exec sleep {token}' & sleep 30"]


@pytest.mark.parametrize("mode", REACHING, indirect=True)
def test_walltime_reaches_a_setsid_child(moded: Session) -> None:
    token = _token()
    job = moded.submit({"command": _escapee(token), "resources": {"walltime": 2}})
    (record,) = moded.wait(job, timeout=40)
    assert (record.state, record.reason) == (S.FAILED, "walltime exceeded")
    assert _gone(token), "a setsid'd grandchild outlived the walltime"


@pytest.mark.parametrize("mode", REACHING, indirect=True)
def test_kill_reaches_a_setsid_child(moded: Session) -> None:
    token = _token()
    job = moded.submit({"command": _escapee(token)})
    assert _wait_for(lambda: bool(_alive(token)))
    moded.kill(job)
    (record,) = moded.wait(job, timeout=40)
    assert record.state == S.KILLED
    assert _gone(token), "a setsid'd grandchild outlived the kill"


@pytest.mark.parametrize("mode", REACHING, indirect=True)
def test_what_a_job_leaves_behind_dies_with_it(moded: Session) -> None:
    token = _token()
    job = moded.submit({"command": ["sh", "-c", f"setsid sleep {token} & exit 0"]})
    (record,) = moded.wait(job, timeout=40)
    assert record.state == S.COMPLETED
    assert _gone(token)


def test_a_walltime_reaches_a_jobs_children_in_every_mode(moded: Session) -> None:
    token = _token()
    job = moded.submit(
        {"command": ["sh", "-c", f"sleep {token} & sleep 30"], "resources": {"walltime": 2}}
    )
    assert _wait_for(lambda: bool(_alive(token)))
    (record,) = moded.wait(job, timeout=40)
    assert (record.state, record.reason) == (S.FAILED, "walltime exceeded")
    assert _gone(token), "a child of the job outlived its walltime"


@pytest.mark.parametrize("walltime", [None, 60])
def test_jobs_get_sigint_and_sigquit_at_their_default(moded: Session, walltime: int | None) -> None:
    """Not ignored as a shell's background job has them: a job's own ``timeout -s INT`` works."""
    interrupted = moded.submit(
        {
            "command": ["timeout", "-s", "INT", "1", "sleep", "300"],
            "resources": {"walltime": walltime},
        }
    )
    shown = moded.submit(
        {"command": ["grep", "SigIgn", "/proc/self/status"], "resources": {"walltime": walltime}}
    )
    first, second = moded.wait([interrupted, shown], timeout=60)
    assert (first.state, first.exit_code) == (S.FAILED, 124)
    assert second.state == S.COMPLETED
    ignored = int(moded.peek(shown).split()[1], 16)
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE):
        assert not ignored & (1 << (number - 1)), f"signal {number} is ignored in the job"


def test_every_mode_runs_jobs_kills_and_walltimes(moded: Session, mode: str) -> None:
    done = moded.submit({"command": ["sh", "-c", "echo $$ > /dev/null; echo ok"]})
    slow = moded.submit({"command": ["sleep", "30"], "resources": {"walltime": 1}})
    victim = moded.submit({"command": ["sleep", "30"]})
    assert _wait_for(lambda: moded.get(victim).state == S.RUNNING)
    moded.kill(victim)
    by_id = {r.id: r for r in moded.wait([done, slow, victim], timeout=40)}
    assert by_id[done].state == S.COMPLETED, by_id[done].reason
    assert moded.peek(done).strip() == "ok"
    assert by_id[slow].reason == "walltime exceeded"
    assert by_id[victim].state == S.KILLED


@pytest.mark.skipif("cgroup" not in SUPPORTED, reason="no writable cgroup2 here")
def test_cgroup_memory_limit_is_an_oom_kill(home: Path) -> None:
    control = detect("cgroup")
    if control.v1_memory_base is None:
        pytest.skip("no memory controller here")
    hog = "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    with _session(home, "cgroup") as sess:
        job = sess.submit({"command": ["python3", "-c", hog], "resources": {"memory_mb": 64}})
        (record,) = sess.wait(job, timeout=40)
    assert (record.state, record.reason) == (S.FAILED, "memory limit exceeded")


def test_cgroups_are_removed_after_the_job(home: Path) -> None:
    if "cgroup" not in SUPPORTED:
        pytest.skip("no writable cgroup2 here")
    with _session(home, "cgroup") as sess:
        job = sess.submit({"command": ["true"], "resources": {"memory_mb": 64}})
        (record,) = sess.wait(job, timeout=30)
        base = detect("cgroup")
    assert base.v2_base is not None
    assert not (base.v2_base / record.uuid).exists()
    if base.v1_memory_base is not None:
        assert not (base.v1_memory_base / record.uuid).exists()


@pytest.mark.skipif("cgroup" not in SUPPORTED, reason="no writable cgroup2 here")
def test_walking_cgroup_procs_kills_without_cgroup_kill() -> None:
    import subprocess

    control = detect("cgroup")
    assert control.v2_base is not None
    group = control.v2_base / f"walk-{uuid.uuid4().hex}"
    group.mkdir()
    token = _token()
    script = f"echo $$ > {group}/cgroup.procs; setsid sleep {token} & exec sleep {token}"
    with subprocess.Popen(["sh", "-c", script]) as proc:
        try:
            assert _wait_for(lambda: len(_alive(token)) == 2)
            local_control.walk_kill(group)
            assert _gone(token)
        finally:
            proc.kill()
    local_control._rmdir(group)
    assert not group.exists()


@pytest.mark.skipif("cgroup" not in SUPPORTED, reason="no writable cgroup2 here")
def test_empty_cgroups_left_by_a_killed_monitor_are_swept() -> None:
    control = detect("cgroup")
    assert control.v2_base is not None
    old, young = (control.v2_base / f"left-{uuid.uuid4().hex}" for _ in range(2))
    old.mkdir()
    young.mkdir()
    control.sweep(older_than=3600)
    assert old.exists() and young.exists()  # both young for that threshold
    time.sleep(1.1)
    control.sweep(older_than=1)
    assert not old.exists() and not young.exists()


def test_a_forced_mode_that_cannot_work_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_control, "_mounts", lambda kind: [])
    with pytest.raises(ControlUnavailable, match="no cgroup2"):
        detect("cgroup")
    assert detect("auto").mode in ("pidns", "pgroup")


def test_process_control_setting_is_checked(home: Path) -> None:
    from corral.errors import CorralError

    with pytest.raises(CorralError, match="process_control"), _session(home, "bogus") as sess:
        sess.submit({"command": ["true"]})


# ---------------------------------------------------------------- hostile status files
SABOTAGE = {
    "mkdir": "mkdir ../run-exit.0",
    "mkfifo": "mkfifo ../run-exit.0",
    "symlink": "ln -s /etc/passwd ../run-exit.0",
    "huge": "head -c 100000 /dev/zero > ../run-exit.0",
    "forged": "echo '0 0' > ../run-exit.0; exit 3",
    "marker dir": "rm -f ../.corral-run; mkdir ../.corral-run",
    "marker fifo": "rm -f ../.corral-run; mkfifo ../.corral-run",
    "marker other": "echo someone-else > ../.corral-run",
}


@pytest.mark.parametrize("how", list(SABOTAGE))
def test_a_job_sabotaging_its_status_files_ends_failed(moded: Session, how: str) -> None:
    job = moded.submit({"command": ["sh", "-c", SABOTAGE[how]], "resources": {"walltime": 20}})
    started = time.monotonic()
    (record,) = moded.wait(job, timeout=40)
    assert record.state == S.FAILED, record.reason
    assert time.monotonic() - started < 15  # never wedged until the walltime
    after = moded.submit({"command": ["true"]})  # the backend still works for everyone else
    (ok,) = moded.wait(after, timeout=30)
    assert ok.state == S.COMPLETED


def test_sabotage_before_a_restart_is_read_safely(home: Path, settings: Settings) -> None:
    """A monitor that re-attaches after a restart reads the same hostile files."""
    with Session(settings, monitor="off") as sess:
        job = sess.submit({"command": ["true"]})
        record = sess.get(job)
    assert record.attempt_dir is not None
    record.attempt_dir.mkdir(parents=True)
    (record.attempt_dir / ".corral-run").write_text("")
    (record.attempt_dir / "run-start.0").mkdir()
    os.mkfifo(record.attempt_dir / "run-exit.0")
    from corral.backends.local import _inspect
    from corral.backends.local_control import Control
    from corral.records import Attempt

    attempt = Attempt(record.id, record.uuid, 1, record.spec, record.attempt_dir, S.SUBMITTED)
    pid, obs = _inspect(attempt, Control("pgroup"))
    assert pid is None and obs is not None and obs.state == S.FAILED
    assert "FIFO" in obs.reason


def test_a_monitor_stop_does_not_hang_on_a_fifo(home: Path, mode: str) -> None:
    with _session(home, mode) as sess:
        job = sess.submit({"command": ["sh", "-c", "mkfifo ../run-exit.0 ../stdout.x; sleep 1"]})
        sess.wait(job, timeout=30)
        started = time.monotonic()
    assert time.monotonic() - started < 10


def _wait_for(predicate: object, timeout: float = 20) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)
