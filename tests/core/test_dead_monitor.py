"""A waiting session notices a monitor that is gone: it starts one (autostart) or raises
``MonitorUnavailable``; never a hang, never a timeout (see ``corral.watch``)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from corral import Session, Settings, load_settings
from corral.daemon import last_error
from corral.errors import MonitorUnavailable
from corral.lock import try_lock, unlock
from corral.registry import Registry
from corral.watch import MonitorWatch, describe


def test_wait_raises_when_the_in_process_monitor_dies(settings: Settings) -> None:
    with Session(settings) as session:  # autostart is off in these tests
        monitor = session.aio.monitor
        assert monitor is not None and monitor.alive
        usurper = Registry(settings.registry, settings.work_dir)
        try:
            usurper.acquire_lease(os.getpid(), "0.0.test")  # fences the session's monitor out
        finally:
            usurper.close()
        job = session.submit({"command": ["sleep", "1"]})  # its claim meets the fence
        started = time.monotonic()
        with pytest.raises(MonitorUnavailable, match=r"monitor in this process stopped.*newer"):
            session.wait(job, timeout=30)
        assert time.monotonic() - started < 5
        assert not monitor.alive and monitor.error is not None
    # ... and the session still closes without an error


def test_wait_raises_when_no_monitor_runs_and_autostart_is_off(settings: Settings) -> None:
    with Session(settings, monitor="off") as session:
        job = session.submit({"command": ["true"]})
        started = time.monotonic()
        with pytest.raises(MonitorUnavailable, match=r"autostart is off\): run 'corral monitor'"):
            session.wait(job, timeout=30)
        assert time.monotonic() - started < 5


def test_the_watch_looks_twice_before_it_believes_the_lock(settings: Settings) -> None:
    """A free lock seen once may be an idle daemon leaving as the awaited jobs end."""
    fd = try_lock(settings.lock_path)  # this process "is" the monitor
    assert fd is not None
    watch = MonitorWatch(settings, every=0)

    async def scenario() -> None:
        await watch.check()
        unlock(fd)
        await watch.check()  # once: not yet
        with pytest.raises(MonitorUnavailable, match="autostart is off"):
            await watch.check()

    asyncio.run(scenario())


def autostarting(home: Path) -> Settings:
    return load_settings(env={"CORRAL_HOME": str(home)})


def test_a_daemon_that_never_comes_up_is_reported_with_its_last_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = autostarting(home)
    settings.log_path.write_text("old ERROR from an earlier daemon, not this one\n")

    def failing_start(settings: Settings) -> int | None:
        with settings.log_path.open("a") as log:
            log.write("Traceback (most recent call last):\n  File ...\n")
            log.write("ValueError: max_cpus: not a number\n")
        return None

    monkeypatch.setattr("corral.watch.ensure_daemon", failing_start)
    watch = MonitorWatch(settings, every=0)
    with pytest.raises(MonitorUnavailable) as raised:
        asyncio.run(_check(watch, 2))
    text = str(raised.value)
    assert text.startswith("the monitor did not start (last error: ValueError: max_cpus")
    assert text.endswith(f"; see {settings.log_path}") and "\n" not in text


def test_a_restarted_daemon_that_dies_again_soon_is_given_up_on(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[float] = []

    def short_lived(settings: Settings) -> int | None:
        starts.append(time.monotonic())
        return 4242  # "came up" and, as the lock shows, is gone at once

    monkeypatch.setattr("corral.watch.ensure_daemon", short_lived)
    settings = autostarting(home)
    patient = MonitorWatch(settings, every=0, restart_window=0)
    asyncio.run(_check(patient, 6))  # every death is long after its start: restart each time
    assert patient.starts == len(starts) == 3
    watch = MonitorWatch(settings, every=0)
    with pytest.raises(MonitorUnavailable, match=r"died again within 10 s of its start; see "):
        asyncio.run(_check(watch, 4))
    assert watch.starts == 1


async def _check(watch: MonitorWatch, times: int) -> None:
    for _ in range(times):
        await watch.check()


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (None, "no error recorded"),
        (ExceptionGroup("unhandled", [ValueError("bad value")]), "ValueError: bad value"),
        (MonitorUnavailable("no\n  monitor"), "no monitor"),
        (KeyError(), "KeyError"),
    ],
)
def test_describe_is_one_line(error: Any, text: str) -> None:
    assert describe(error) == text


@pytest.mark.parametrize(
    ("log", "line"),
    [
        (
            "09:32:39 4385 INFO monitor started (epoch 1)\n"
            "09:32:40 4385 ERROR monitor died: ValueError: boom\n"
            'Traceback (most recent call last):\n  File "x", line 1, in y\nValueError: boom\n',
            "monitor died: ValueError: boom",
        ),
        (
            "  + Exception Group Traceback (most recent call last):\n"
            "    | corral.errors.BackendUnavailable: sbatch not found\n    +------------\n",
            "corral.errors.BackendUnavailable: sbatch not found",
        ),
        ("corral monitor: cannot open registry /x: locked\n", "corral monitor: cannot open"),
        ("09:32:39 4385 INFO idle for 2 s; exiting\n", None),
    ],
)
def test_the_last_error_of_a_daemon_log(tmp_path: Path, log: str, line: str | None) -> None:
    path = tmp_path / "monitor.log"
    path.write_text("09:00:00 1 ERROR an older daemon's error\n")
    since = path.stat().st_size
    path.write_text(path.read_text() + log)
    found = last_error(path, since)  # only what this daemon wrote, after ``since``
    if line is None:
        assert found is None
    else:
        assert found is not None and found.startswith(line)
