"""``corral wait`` outlives the monitor it depends on: a SIGKILLed daemon is restarted within
seconds; one that keeps dying, or no monitor at all with autostart off, is exit 3 with one line.
Never a hang, never a timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corral.lock import holder
from tests.cli.conftest import Result, wait_until


def daemon_of(home: Path) -> int:
    assert wait_until(lambda: holder(home / "monitor.lock") is not None, 10)
    pid = holder(home / "monitor.lock")
    assert pid is not None
    return pid


def running(corral: Any, job: str) -> bool:
    return bool(corral("show", job, "--json").json()["job"]["state"] == "running")


@contextmanager
def corral_in_background(home: Path, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-m", "corral.cli", *args],
        env=dict(os.environ, CORRAL_HOME=str(home), NO_COLOR="1", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def finish(proc: subprocess.Popen[str], timeout: float) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err)


def following(proc: subprocess.Popen[str], home: Path) -> bool:
    """``wait`` has the registry open twice: its lean reader and its session, which has tried
    the lock by then (a kill before that would only test a wait that starts a monitor)."""
    registry = str(home / "registry.db")
    opened = 0
    try:
        for fd in Path(f"/proc/{proc.pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                opened += os.readlink(fd) == registry
    except OSError:
        return False
    return opened >= 2


def following_steadily(proc: subprocess.Popen[str], home: Path, hold: float = 1.5) -> bool:
    """``following`` for ``hold`` seconds in a row. With autostart off, ``wait`` first resolves
    its ids in a short session of its own (no monitor), then opens the session that tries the
    lock: a kill between the two would let the wait take the lock and run the monitor itself,
    which is what a wait started with no monitor does. The brief first session cannot pass."""
    since: float | None = None

    def steady() -> bool:
        nonlocal since
        if not following(proc, home):
            since = None
            return False
        since = time.monotonic() if since is None else since
        return time.monotonic() - since >= hold

    return wait_until(steady, 30)


def gated(home: Path) -> list[str]:
    """A job that runs until the test lets it end (``release``): however loaded the machine,
    it is still running when the monitor is killed."""
    return ["sh", "-c", f"while [ ! -e {home}/go ]; do sleep 0.1; done"]


def release(home: Path) -> None:
    (home / "go").touch()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("corral: "), err
    return lines[0]


def test_wait_restarts_a_sigkilled_daemon(corral: Any, cli_home: Path) -> None:
    assert corral("submit", "-q", "--", *gated(cli_home)).code == 0
    first = daemon_of(cli_home)
    assert wait_until(lambda: running(corral, "1"))
    with corral_in_background(cli_home, "wait", "1", "--json") as waiting:
        assert wait_until(lambda: following(waiting, cli_home))
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_until(lambda: holder(cli_home / "monitor.lock") not in (None, first), 10)
        assert time.monotonic() - killed < 10
        release(cli_home)
        result = finish(waiting, 60)
    assert result.code == 0, result
    assert result.json()["counts"] == {"completed": 1}
    assert (cli_home / "monitor.log").read_text().count("monitor started") == 2


def test_wait_gives_up_on_a_daemon_that_dies_at_start(corral: Any, cli_home: Path) -> None:
    """The restarted daemon inherits CORRAL_FAULT from wait and SIGKILLs itself at start."""
    assert corral("submit", "-q", "--", *gated(cli_home)).code == 0
    first = daemon_of(cli_home)
    assert wait_until(lambda: running(corral, "1"))
    with corral_in_background(cli_home, "wait", "1", CORRAL_FAULT="daemon_start") as waiting:
        assert wait_until(lambda: following(waiting, cli_home))
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        result = finish(waiting, 30)
    assert result.code == 3, result
    assert time.monotonic() - killed < 15
    line = one_line(result.err)
    assert "the monitor did not start" in line and str(cli_home / "monitor.log") in line
    release(cli_home)
    assert corral("wait", "1", "--timeout", "60").code == 0  # without the fault it recovers


def test_wait_gives_up_on_a_daemon_killed_again_soon(corral: Any, cli_home: Path) -> None:
    """Something kills every daemon as soon as it holds the lock."""
    assert corral("submit", "-q", "--", *gated(cli_home)).code == 0
    first = daemon_of(cli_home)
    assert wait_until(lambda: running(corral, "1"))
    stop = threading.Event()
    victims: list[int] = []

    def killer() -> None:
        while not stop.is_set():
            pid = holder(cli_home / "monitor.lock")
            if pid is not None and pid != first and pid not in victims:
                victims.append(pid)
                time.sleep(0.5)  # it came up (wait saw it start), then it dies
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    with corral_in_background(cli_home, "wait", "1") as waiting:
        thread.start()
        try:
            assert wait_until(lambda: following(waiting, cli_home))
            os.kill(first, signal.SIGKILL)
            killed = time.monotonic()
            result = finish(waiting, 30)
        finally:
            stop.set()
            thread.join()
    assert result.code == 3, result
    assert time.monotonic() - killed < 15
    assert len(victims) == 1  # restarted once, then given up on
    line = one_line(result.err)
    assert "the monitor died again within 10 s of its start; see " in line
    release(cli_home)
    assert corral("wait", "1", "--timeout", "60").code == 0


def test_wait_exits_3_when_the_monitor_goes_and_autostart_is_off(
    corral: Any, cli_home: Path
) -> None:
    (cli_home / "config.toml").write_text("autostart = false\n")
    with corral_in_background(cli_home, "monitor") as foreground:
        monitor = daemon_of(cli_home)
        assert monitor == foreground.pid
        assert corral("submit", "-q", "--", *gated(cli_home)).code == 0
        assert wait_until(lambda: running(corral, "1"))
        with corral_in_background(cli_home, "wait", "1") as waiting:
            assert following_steadily(waiting, cli_home)
            os.kill(monitor, signal.SIGKILL)
            killed = time.monotonic()
            result = finish(waiting, 30)
    assert result.code == 3, result
    assert time.monotonic() - killed < 5
    assert one_line(result.err) == (
        "corral: no monitor drives the registry (autostart is off): run 'corral monitor'"
    )
    assert holder(cli_home / "monitor.lock") is None  # nothing was started
    # wait with autostart off runs the monitor in its own process once the lock is free
    release(cli_home)
    assert corral("wait", "1", "--timeout", "60").code == 0
