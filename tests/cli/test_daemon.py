"""Jobs keep moving without the user starting anything, and never get stranded.

The background monitor is started by the first submitting command, survives the terminal that
started it, is started once by ten racing submits, and exits when idle (``idle_exit = 2`` here)
without losing a submit that races its exit.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from corral.lock import holder
from corral.registry import Registry
from tests.cli.conftest import IDLE_EXIT, run_corral, wait_until


def lease_epoch(home: Path) -> int:
    registry = Registry(home / "registry.db", home / "jobs")
    try:
        return registry.lease_info().epoch
    finally:
        registry.close()


def daemon_starts(home: Path) -> int:
    return (home / "monitor.log").read_text().count("monitor started")


def test_closing_the_terminal_does_not_strand_jobs(cli_home: Path) -> None:
    """SIGHUP (and then SIGKILL) the submitting terminal's whole session: the jobs finish."""
    out = cli_home / "terminal.out"
    command = (
        f"{sys.executable} -m corral.cli submit -q --sweep n=1..4 -- sh -c "
        "'sleep 1.5; echo done $N' > " + str(out) + "; sleep 60"
    )
    terminal = subprocess.Popen(
        ["sh", "-c", command],
        start_new_session=True,
        env=dict(os.environ, CORRAL_HOME=str(cli_home)),
    )
    try:
        assert wait_until(lambda: out.exists() and out.read_text().strip() == "1")
        daemon = holder(cli_home / "monitor.lock")
        assert daemon is not None and os.getsid(daemon) != terminal.pid
        os.killpg(terminal.pid, signal.SIGHUP)
        os.killpg(terminal.pid, signal.SIGKILL)
    finally:
        terminal.wait(timeout=10)
    waited = run_corral(cli_home, "wait", "1", "--json", "--timeout", "30")
    assert waited.code == 0, waited
    assert waited.json()["counts"] == {"completed": 4}
    assert [run_corral(cli_home, "peek", f"1.{i}").out for i in range(4)] == [
        f"done {n}\n" for n in range(1, 5)
    ]
    assert daemon_starts(cli_home) == 1


def test_ten_parallel_submits_start_one_daemon(cli_home: Path) -> None:
    env = dict(os.environ, CORRAL_HOME=str(cli_home))
    submits = [
        subprocess.Popen(
            [sys.executable, "-m", "corral.cli", "submit", "-q", "--", "echo", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(10)
    ]
    results = [(*p.communicate(timeout=60), p.returncode) for p in submits]
    assert [code for _, _, code in results] == [0] * 10, results
    assert sorted(int(out) for out, _, _ in results) == list(range(1, 11))
    assert run_corral(cli_home, "wait", "--all", "--timeout", "30").code == 0
    assert run_corral(cli_home, "wait", *map(str, range(1, 11))).out == "10 jobs: 10 completed\n"
    assert daemon_starts(cli_home) == 1
    assert lease_epoch(cli_home) == 1


def test_the_daemon_exits_when_idle_and_status_shows_it(cli_home: Path, corral: Any) -> None:
    # a job that runs while the status is read: a loaded machine can take longer than the idle
    # exit between two CLI calls, so the daemon must have work until the status has been seen
    assert corral("submit", "--", "sleep", "120").code == 0
    assert wait_until(lambda: holder(cli_home / "monitor.lock") is not None, 30)
    status = corral("monitor", "--status", "--json").json()
    assert status["running"] and status["pid"] == holder(cli_home / "monitor.lock")
    assert status["lease"]["pid"] == status["pid"] and status["idle_exit"] == IDLE_EXIT
    assert "monitor running: pid" in corral("monitor", "--status").out
    assert corral("kill", "1").code == 0
    assert wait_until(lambda: holder(cli_home / "monitor.lock") is None, IDLE_EXIT + 30)
    # (the daemon logs its idle exit after releasing the lock)
    assert wait_until(lambda: "idle" in (cli_home / "monitor.log").read_text(), 30)
    assert corral("monitor", "--status", "--json").json()["running"] is False


def test_a_submit_racing_the_idle_exit_is_picked_up(cli_home: Path, corral: Any) -> None:
    """Submit at moments around the daemon's idle exit; every job still completes."""
    assert corral("submit", "--wait", "-q", "--", "true").code == 0
    for offset in (IDLE_EXIT - 0.3, IDLE_EXIT, IDLE_EXIT + 0.2, IDLE_EXIT + 0.45):
        time.sleep(offset)  # after the previous job ended: the daemon is about to exit, or is
        new = corral("submit", "-q", "--", "echo", "late").out.strip()
        waited = corral("wait", new, "--timeout", "20")
        assert waited.code == 0, (offset, waited)
    assert wait_until(lambda: holder(cli_home / "monitor.lock") is None, IDLE_EXIT + 5)


def test_stop_restart_and_autostart_off(cli_home: Path, corral: Any) -> None:
    # a job that runs until the test lets it end: still active when the monitor is stopped
    gate = ["sh", "-c", f"while [ ! -e {cli_home}/go ]; do sleep 0.1; done"]
    assert corral("submit", "-q", "--", *gate).code == 0
    pid = holder(cli_home / "monitor.lock")
    assert pid is not None
    stopped = corral("monitor", "--stop")
    assert stopped.code == 0 and f"stopped the monitor (pid {pid})" in stopped.out
    assert "1 active jobs wait for the next monitor" in stopped.out
    assert holder(cli_home / "monitor.lock") is None
    assert "no monitor is running (1 active jobs" in corral("monitor", "--status").out
    (cli_home / "go").touch()
    assert corral("wait", "1", "--timeout", "60").code == 0  # wait starts a monitor again
    assert corral("submit", "-q", "--", "sleep", "30").code == 0
    assert corral("monitor", "--stop").code == 0
    assert corral("kill", "2").code == 0  # a kill needs a monitor: one is started for it
    assert corral("wait", "2", "--timeout", "60").code == 1
    assert corral("monitor", "--stop").code == 0
    assert corral("monitor", "--stop").out == "no monitor is running\n"
    off = corral("--set", "autostart=false", "submit", "--", "echo", "no daemon")
    assert off.code == 0 and "autostart is off" in off.err
    assert holder(cli_home / "monitor.lock") is None
    # `wait` with autostart off runs the monitor in its own process
    waited = corral("--set", "autostart=false", "wait", "3", "--timeout", "60")
    assert waited.code == 0, waited
    assert holder(cli_home / "monitor.lock") is None


def test_foreground_monitor_once_and_live(cli_home: Path, corral: Any) -> None:
    (cli_home / "config.toml").write_text("autostart = false\n")
    assert corral("submit", "-q", "--", "echo", "fg").code == 0
    once = corral("monitor", "--once")
    assert once.code == 0 and "local" in once.out
    live = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", "monitor"],
        env=dict(os.environ, CORRAL_HOME=str(cli_home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: holder(cli_home / "monitor.lock") == live.pid)
        busy = corral("monitor", "--once")
        assert busy.code == 3 and f"pid {live.pid}" in busy.err
        assert corral("wait", "1", "--timeout", "20").code == 0
        assert corral("submit", "-q", "--", "echo", "two").code == 0
        assert corral("wait", "2", "--timeout", "20").code == 0
    finally:
        live.send_signal(signal.SIGTERM)
        _, err = live.communicate(timeout=20)
    assert live.returncode == 0, err
    assert "monitor running" in err


def test_the_daemon_and_its_jobs_keep_no_fd_of_the_submitting_process(cli_home: Path) -> None:
    """A caller that waits for the end of a pipe it gave ``corral submit`` (a CI runner, a
    script reading a command's output through an fd of its own) sees the end when the submit
    exits: neither the detached monitor nor the job holds the pipe open."""
    read_end, write_end = os.pipe()
    gate = ["sh", "-c", f"while [ ! -e {cli_home}/go ]; do sleep 0.1; done"]
    submit = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", "submit", "-q", "--", *gate],
        env=dict(os.environ, CORRAL_HOME=str(cli_home)),
        stdout=subprocess.DEVNULL,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    try:
        assert submit.wait(timeout=60) == 0
        ready, _, _ = select.select([read_end], [], [], 30)
        assert ready and os.read(read_end, 1) == b""  # the end, with the job still running
        daemon = holder(cli_home / "monitor.lock")
        assert daemon is not None
        assert wait_until(
            lambda: run_corral(cli_home, "show", "1", "--json").json()["job"]["state"] == "running"
        )
    finally:
        os.close(read_end)
        (cli_home / "go").touch()
    assert run_corral(cli_home, "wait", "1", "--timeout", "30").code == 0
