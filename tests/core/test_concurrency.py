"""Separate processes, not threads: the invariant is proven where SQLite locking really happens."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral import Session, Settings, load_settings
from corral.errors import MonitorBusy
from corral.lock import holder
from corral.monitor import Monitor
from corral.registry import Registry, Selection
from corral.registry.aio import AsyncRegistry
from corral.states import JobState
from tests.conftest import env_with_home

WRITER = Path(__file__).with_name("_writer.py")
PROCS, TXNS = 10, 40


@pytest.mark.timeout(180)
def test_ten_writer_processes_and_a_monitor_lose_nothing(home: Path) -> None:
    (home / "config.toml").write_text("idle_exit = 0\n[backends.local]\nmax_cpus = 4\n")
    env = env_with_home(home)
    Registry(home / "registry.db", home / "jobs").close()  # migrate once, up front
    monitor = subprocess.Popen(
        [sys.executable, "-m", "corral.monitor"], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while holder(home / "monitor.lock") != monitor.pid and time.monotonic() < deadline:
        time.sleep(0.02)  # the monitor drives the registry before the writers start
    try:
        writers = [
            subprocess.Popen(
                [sys.executable, str(WRITER), str(home), str(TXNS), f"w{i}"],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(PROCS)
        ]
        errors = [w.communicate(timeout=150)[1] for w in writers]
        assert [w.returncode for w in writers] == [0] * PROCS, errors
        assert not any("locked" in e for e in errors)
        # the monitor claims, runs and records every job while the writers add theirs
        with Session(load_settings(), monitor="off") as session:
            session.wait(Selection(names=("job",)), timeout=120)
    finally:
        monitor.send_signal(signal.SIGTERM)
        _, monitor_err = monitor.communicate(timeout=60)
    assert monitor.returncode == 0, monitor_err
    assert "database is locked" not in monitor_err
    registry = Registry(home / "registry.db", home / "jobs")
    jobs = registry.select(Selection())
    registry.close()
    assert sorted(r.id.job for r in jobs) == list(range(1, PROCS * TXNS + 1))
    assert {r.state for r in jobs} == {JobState.COMPLETED}
    for i in range(PROCS):
        assert sum(1 for r in jobs if r.tags == (f"w{i}",)) == TXNS


async def _hold_and_try_second(settings: Settings) -> str:
    async with AsyncRegistry(settings.registry, settings.work_dir) as reg, Monitor(settings, reg):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio, corral\n"
            "from corral.monitor import Monitor\n"
            "from corral.registry.aio import AsyncRegistry\n"
            "async def main():\n"
            "    s = corral.load_settings()\n"
            "    async with AsyncRegistry(s.registry, s.work_dir) as r, Monitor(s, r):\n"
            "        pass\n"
            "asyncio.run(main())\n",
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        return err.decode()


def test_a_second_monitor_is_refused_clearly(settings: Settings) -> None:
    err = asyncio.run(_hold_and_try_second(settings))
    assert "MonitorBusy: another monitor (pid" in err
    assert "already drives" in err


def test_monitor_busy_in_process(settings: Settings) -> None:
    async def main() -> None:
        async with (
            AsyncRegistry(settings.registry, settings.work_dir) as reg,
            Monitor(settings, reg),
        ):
            with pytest.raises(MonitorBusy):
                async with Monitor(settings, reg):
                    pass

    asyncio.run(main())
