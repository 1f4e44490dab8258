"""Backend health and the last monitor's death, as every reader shows them: ``monitor --status``,
``plugins``, ``show``, ``ls`` and ``submit``; and the daemon leaving its fatal error behind.

Health rows are written here as the monitor writes them (``Registry.put_backend_health`` under a
lease); a monitor that "runs" is this test process holding the monitor lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.config import load_settings
from corral.errors import LeaseLost, MonitorUnavailable
from corral.lock import try_lock, unlock
from corral.records import BackendHealth
from corral.registry import Registry
from corral.registry.aio import AsyncRegistry
from corral.spec import JobSpec
from tests.cli.conftest import run_corral

SLURM_DOWN = BackendHealth(
    name="slurm",
    kind="slurm",
    state="down",
    reason="sbatch not found",
    since=1.0,
    active=1,
    interval=30.0,
    errors=3,
    consecutive_errors=3,
    calls={"squeue": 1},
)
LOCAL_UP = BackendHealth(
    name="local", kind="local", state="up", active=2, interval=0.5, polls=9, calls={"ps": 2}
)


@contextlib.contextmanager
def registry(home: Path) -> Iterator[Registry]:
    reg = Registry(home / "registry.db", home / "jobs")
    try:
        yield reg
    finally:
        reg.close()


@contextlib.contextmanager
def monitor_lock(home: Path) -> Iterator[None]:
    """This process holds the monitor lock, as a running monitor would (released before the
    fixture's teardown, which stops whatever holds it)."""
    fd = try_lock(home / "monitor.lock")
    assert fd is not None
    try:
        yield
    finally:
        unlock(fd)


def write_health(home: Path, *rows: BackendHealth, release: bool = False) -> int:
    with registry(home) as reg:
        epoch = reg.acquire_lease(os.getpid(), "test")
        reg.put_backend_health(epoch, list(rows))
        if release:
            reg.release_lease(epoch)
    return epoch


def add_job(home: Path, backend: str) -> None:
    with registry(home) as reg:
        reg.add(JobSpec(command=("true",), backend=backend), [])


# ---------------------------------------------------------------- monitor --status
def test_status_shows_each_backend_and_marks_an_older_monitors_rows_stale(
    cli_home: Path, corral: Any
) -> None:
    with monitor_lock(cli_home):
        write_health(cli_home, LOCAL_UP, SLURM_DOWN)
        status = corral("monitor", "--status", "--json").json()
        assert status["running"] and status["pid"] == os.getpid()
        assert status["last_error"] is None
        local, slurm = status["backends"]
        assert (local["name"], local["state"], local["stale"], local["calls"]) == (
            "local",
            "up",
            False,
            {"ps": 2},
        )
        assert slurm["state"] == "down" and slurm["reason"] == "sbatch not found"
        assert slurm["consecutive_errors"] == 3 and not slurm["stale"]

        text = corral("monitor", "--status").out
        line = next(x for x in text.splitlines() if x.startswith("slurm"))
        for word in ("slurm", "down", "sbatch not found", "30.0 s", "3 (3 in a row)", "squeue 1"):
            assert word in line, (word, line)

        with registry(cli_home) as reg:
            reg.acquire_lease(os.getpid(), "test")  # a new monitor that has not written yet
        status = corral("monitor", "--status", "--json").json()
        assert [b["stale"] for b in status["backends"]] == [True, True]
        assert "up (stale)" in corral("monitor", "--status").out


def test_status_says_how_the_last_monitor_died(cli_home: Path, corral: Any) -> None:
    epoch = write_health(cli_home, SLURM_DOWN, release=True)
    with registry(cli_home) as reg:
        reg.record_monitor_error(epoch, "ValueError: invalid literal for int(): 'abc'", pid=4242)
    status = corral("monitor", "--status", "--json").json()
    assert status["running"] is False
    error = status["last_error"]
    assert (error["error"], error["pid"], error["stale"]) == (
        "ValueError: invalid literal for int(): 'abc'",
        4242,
        False,
    )
    assert status["lease"]["last_error"] == error["error"]
    assert status["backends"][0]["stale"]  # no monitor runs: its "down" is history
    text = corral("monitor", "--status").out
    assert "the last monitor (pid 4242) died at" in text
    assert "invalid literal for int(): 'abc'" in text
    assert "as the last monitor left them" in text

    with registry(cli_home) as reg:  # a newer monitor started (and was then SIGKILLed)
        reg.acquire_lease(5151, "test")
    status = corral("monitor", "--status", "--json").json()
    assert status["last_error"]["stale"]
    text = corral("monitor", "--status").out
    assert "died at" not in text
    assert "the last monitor (pid 5151) ended without releasing its lease (killed?)" in text


# ---------------------------------------------------------------- plugins and config show
def test_plugins_checks_each_instance_and_shows_its_health(cli_home: Path, corral: Any) -> None:
    write_health(cli_home, SLURM_DOWN)
    found = corral("plugins", "--json")
    assert found.code == 0, found.err
    shown = found.json()
    kinds = {k["name"]: k for k in shown["backends"]}
    assert kinds["local"]["ok"] and "max_cpus" in kinds["local"]["options"]
    fields = {f["name"]: f for f in kinds["local"]["option_fields"]}
    assert fields["max_cpus"]["default"] is None and not fields["max_cpus"]["required"]
    instances = {i["name"]: i for i in shown["instances"]}
    local = instances["local"]
    assert local["ok"] and local["valid"] and local["configured"]
    assert local["options"]["max_cpus"] == 4 and local["health"] is None
    slurm = instances["slurm"]  # not configured, but the monitor wrote its health
    assert slurm["kind"] == "slurm" and not slurm["configured"]
    assert slurm["health"]["state"] == "down" and slurm["health"]["reason"] == "sbatch not found"
    text = corral("plugins").out
    assert "sbatch not found" in text and "max_cpus=4" in text


def test_a_bad_backend_value_is_exit_2_in_plugins_and_config_show(cli_home: Path) -> None:
    (cli_home / "config.toml").write_text("[backends.local]\nmax_cpus = 'abc'\n")
    plugins = run_corral(cli_home, "plugins", "--json")
    assert plugins.code == 2, plugins
    local = next(i for i in plugins.json()["instances"] if i["name"] == "local")
    assert not local["valid"] and not local["ok"] and "max_cpus" in local["error"]
    assert plugins.err.startswith("corral: backends.local.max_cpus")
    assert len(plugins.err.strip().splitlines()) == 1
    human = run_corral(cli_home, "plugins")
    assert human.code == 2 and "INVALID" in human.out
    shown = run_corral(cli_home, "config", "show")
    assert shown.code == 2 and "backends.local.max_cpus" in shown.err
    assert "backends.local.max_cpus" in shown.out  # printed first: the source shows where


# ---------------------------------------------------------------- show and ls
def test_show_says_an_active_job_waits_for_its_down_backend(cli_home: Path, corral: Any) -> None:
    add_job(cli_home, "slurm")
    add_job(cli_home, "local")
    with monitor_lock(cli_home):
        write_health(cli_home, LOCAL_UP, SLURM_DOWN)
        text = corral("show", "1").out
        assert "waiting for backend slurm: sbatch not found" in text
        assert "no monitor is running" not in text
        assert "waiting for backend" not in corral("show", "2").out
        shown = corral("show", "1", "--json").json()
        assert shown["backend_health"]["state"] == "down" and not shown["backend_health"]["stale"]
        assert corral("show", "2", "--json").json()["backend_health"]["state"] == "up"
    text = corral("show", "1").out
    assert "waiting for backend slurm: sbatch not found" in text
    assert "no monitor is running" in text
    assert corral("show", "1", "--json").json()["backend_health"]["stale"]


def test_show_of_a_backend_without_health_has_null(cli_home: Path, corral: Any) -> None:
    add_job(cli_home, "local")
    assert corral("show", "1", "--json").json()["backend_health"] is None


def test_ls_marks_a_down_backend(cli_home: Path, corral: Any) -> None:
    add_job(cli_home, "slurm")
    add_job(cli_home, "local")
    write_health(cli_home, LOCAL_UP, SLURM_DOWN)
    lines = corral("ls").out.splitlines()
    header, slurm, local = lines
    assert "slurm (down)" in slurm and "(down)" not in local
    assert header.index("BACKEND") == slurm.index("slurm (down)") == local.index("local")
    listed = corral("ls", "--json").json()
    assert listed["backends_down"] == {"slurm": "sbatch not found"}
    assert [j["backend"] for j in listed["jobs"]] == ["slurm", "local"]
    with registry(cli_home) as reg:
        reg.acquire_lease(os.getpid(), "test")  # a newer monitor: the old "down" is history
    assert "(down)" not in corral("ls").out
    assert corral("ls", "--json").json()["backends_down"] == {}


# ---------------------------------------------------------------- submit
def test_submit_warns_of_a_down_backend_and_of_the_last_monitors_death(
    cli_home: Path, corral: Any
) -> None:
    down = BackendHealth(name="local", kind="local", state="down", reason="no /proc here")
    epoch = write_health(cli_home, down, release=True)
    with registry(cli_home) as reg:
        reg.record_monitor_error(epoch, "RuntimeError: boom", pid=777)
    submitted = corral("--set", "autostart=false", "submit", "--", "true")
    assert submitted.code == 0, submitted.err
    err = submitted.err
    assert "warning: backend local is down: no /proc here" in err
    assert "job 1 will wait for it" in err
    assert "the last monitor (pid 777) died at" in err and "RuntimeError: boom" in err
    assert str(cli_home / "monitor.log") in err
    assert "autostart is off" in err


# ---------------------------------------------------------------- the daemon's death
class _DiesAfterStart:
    """Takes the lease as a monitor does, then stops by itself with an error (``error`` set,
    lease released), the way ``Monitor`` reports a death to its owner."""

    def __init__(self, settings: Any, reg: AsyncRegistry) -> None:
        self._reg = reg
        self.epoch = 0
        self.error: BaseException | None = None
        self.idle_since: float | None = None

    async def __aenter__(self) -> _DiesAfterStart:
        self.epoch = await self._reg.call(self._reg.sync.acquire_lease, os.getpid(), "test")
        asyncio.get_running_loop().call_later(0.05, self._die)
        return self

    def _die(self) -> None:
        self.error = ValueError("invalid literal for int() with base 10: 'abc'")

    async def __aexit__(self, *exc: object) -> None:
        await self._reg.call(self._reg.sync.release_lease, self.epoch)


class _FailsToStart(_DiesAfterStart):
    async def __aenter__(self) -> _DiesAfterStart:
        self.epoch = await self._reg.call(self._reg.sync.acquire_lease, os.getpid(), "test")
        await self._reg.call(self._reg.sync.release_lease, self.epoch)
        raise MonitorUnavailable("the monitor could not start: KeyError: 'slurm'")


class _FailsBeforeTheLease(_DiesAfterStart):
    async def __aenter__(self) -> _DiesAfterStart:
        raise RuntimeError("no lease for you")


class _FencedOut(_DiesAfterStart):
    def _die(self) -> None:
        with registry(Path(os.environ["CORRAL_HOME"])) as reg:
            reg.acquire_lease(1, "newer")
        self.error = ExceptionGroup("monitor", [LeaseLost("taken over")])


def _run_daemon(monkeypatch: pytest.MonkeyPatch, home: Path, fake: type[Any]) -> int:
    import corral.monitor.__main__ as daemon

    monkeypatch.setattr(daemon, "Monitor", fake)
    settings = load_settings(env={"CORRAL_HOME": str(home)})
    return asyncio.run(daemon.run_daemon(settings, idle_exit=0))


def test_a_daemon_that_dies_records_its_error_and_status_reports_it(
    cli_home: Path, corral: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="corral.monitor")
    assert _run_daemon(monkeypatch, cli_home, _DiesAfterStart) == 70  # a bug, not bad input
    with registry(cli_home) as reg:
        info = reg.lease_info()
    assert info.last_error == "ValueError: invalid literal for int() with base 10: 'abc'"
    assert info.last_error_pid == os.getpid() and info.error_is_latest
    died = [r for r in caplog.records if r.getMessage().startswith("monitor died")]
    assert died and died[-1].exc_info is not None  # the traceback is in the log
    text = corral("monitor", "--status").out
    assert f"the last monitor (pid {os.getpid()}) died at" in text
    assert "ValueError: invalid literal for int() with base 10: 'abc'" in text
    assert corral("monitor", "--status", "--json").json()["last_error"]["stale"] is False


def test_a_daemon_that_cannot_start_records_why(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run_daemon(monkeypatch, cli_home, _FailsToStart) == 3
    with registry(cli_home) as reg:
        info = reg.lease_info()
    assert info.last_error == "the monitor could not start: KeyError: 'slurm'"
    assert info.epoch == 1 and info.error_is_latest


def test_a_daemon_without_a_lease_records_unfenced(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registry(cli_home) as reg:
        epoch = reg.acquire_lease(1, "older")
    assert _run_daemon(monkeypatch, cli_home, _FailsBeforeTheLease) == 70
    with registry(cli_home) as reg:
        info = reg.lease_info()
    assert info.epoch == epoch and info.last_error == "RuntimeError: no lease for you"
    assert info.last_error_pid == os.getpid()


def test_a_fenced_out_daemon_records_nothing(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_HOME", str(cli_home))
    assert _run_daemon(monkeypatch, cli_home, _FencedOut) == 3
    with registry(cli_home) as reg:
        info = reg.lease_info()
    assert info.last_error is None and info.version == "newer"


def test_a_daemon_whose_registry_cannot_open_logs_and_exits_3(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import corral.monitor.__main__ as daemon

    (cli_home / "registry.db").mkdir()  # not a database
    monkeypatch.setenv("CORRAL_HOME", str(cli_home))
    assert daemon.main(["--idle-exit", "0"]) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("monitor died: cannot open registry") for m in messages), messages
    assert any(m.startswith("could not record the error") for m in messages), messages
