"""``stop_monitor`` and ``create=False``: the session verbs behind ``corral monitor --stop`` and
``--status``, against a real background daemon (started by a submit, as a user's is)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral import Session, load_settings
from corral.errors import InvalidInput, MonitorNotStopped, NotFound
from corral.lock import holder
from tests.cli.conftest import run_corral, wait_until

STUBBORN = """
import signal, sys
from pathlib import Path
from corral.lock import try_lock
signal.signal(signal.SIGTERM, signal.SIG_IGN)
assert try_lock(Path(sys.argv[1])) is not None
print("locked", flush=True)
sys.stdin.read()
"""


def test_stop_monitor_stops_the_daemon_and_leaves_its_jobs_waiting(cli_home: Path) -> None:
    settings = load_settings(env={"CORRAL_HOME": str(cli_home)})
    gate = f"while [ ! -e {cli_home}/go ]; do sleep 0.1; done"
    try:
        with Session(settings, monitor="daemon") as s:
            job = s.submit({"command": ["sh", "-c", gate]})
            daemon = holder(settings.lock_path)
            assert daemon is not None and daemon != os.getpid()
            assert s.monitor_status().pid == daemon
            assert s.stop_monitor() == daemon
            assert holder(settings.lock_path) is None
            status = s.monitor_status()
            assert (status.running, status.pid, status.active) == (False, None, 1)
            assert status.lease is not None and status.lease.released
            assert s.stop_monitor() is None  # none runs now
            assert not s.get(job).state.final
        assert not wait_until(lambda: holder(settings.lock_path) is not None, timeout=1)
    finally:
        (cli_home / "go").touch()  # the job's own process ends (no monitor needed for that)
    waited = run_corral(cli_home, "wait", str(job), "--timeout", "60")  # starts a monitor
    assert waited.code == 0, waited


def test_a_monitor_that_ignores_sigterm_is_reported_not_stopped(cli_home: Path) -> None:
    settings = load_settings(env={"CORRAL_HOME": str(cli_home)})
    stubborn = subprocess.Popen(
        [sys.executable, "-c", STUBBORN, str(settings.lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "locked\n"
        with Session(settings, monitor="off", create=False) as s:
            with pytest.raises(InvalidInput, match="timeout"):
                s.stop_monitor(timeout=-1)
            with pytest.raises(
                MonitorNotStopped, match=rf"monitor pid {stubborn.pid} did not stop within 0.3 s"
            ):
                s.stop_monitor(timeout=0.3)
        assert stubborn.poll() is None and holder(settings.lock_path) == stubborn.pid
        stopped = run_corral(cli_home, "monitor", "--stop", "--json", timeout=90)
        assert stopped.code == 3 and "did not stop within 20 s" in stopped.err
    finally:
        stubborn.kill()
        stubborn.communicate(timeout=10)


def test_a_read_without_a_registry_creates_nothing(cli_home: Path) -> None:
    settings = load_settings(env={"CORRAL_HOME": str(cli_home)})
    before = sorted(p.name for p in cli_home.iterdir())
    with Session(settings, monitor="inprocess", create=False) as s:
        status = s.monitor_status()
        assert (status.running, status.pid, status.lease, status.active) == (False, None, None, 0)
        assert status.backends == [] and s.backend_status() == []
        assert s.stop_monitor() is None
        assert s.aio.monitor is None  # nothing a monitor could drive
        for verb in (s.select, lambda: s.get(1), s.last_seq, lambda: s.kill(1)):
            with pytest.raises(NotFound, match="there are no jobs yet"):
                verb()
    assert sorted(p.name for p in cli_home.iterdir()) == before
    assert not settings.registry.exists()
    for argv in (("monitor", "--stop"), ("monitor", "--stop", "--json"), ("plugins",)):
        assert run_corral(cli_home, *argv).code == 0, argv
    assert run_corral(cli_home, "monitor", "--stop", "--json").json() == {
        "schema": 1,
        "stopped": None,
    }
    assert sorted(p.name for p in cli_home.iterdir()) == before
