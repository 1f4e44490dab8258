"""Driving ``corral`` as a user does: a subprocess per command, in a hermetic CORRAL_HOME.

Every test that may start the background monitor uses ``cli_home``, whose teardown stops any
monitor still holding the home's lock, so no daemon outlives its test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.lock import holder
from tests.dbdump import dump

IDLE_EXIT = 2


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_corral(
    home: Path,
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    full_env = dict(os.environ, CORRAL_HOME=str(home), NO_COLOR="1")
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "corral.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or home,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def stop_monitor(home: Path, timeout: float = 20) -> None:
    """Stop whatever monitor holds ``home``'s lock, until the lock stays free."""
    deadline = time.monotonic() + timeout
    while (pid := holder(home / "monitor.lock")) is not None:
        sig = signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        time.sleep(0.1)


@pytest.fixture
def cli_home(home: Path) -> Iterator[Path]:
    """A CORRAL_HOME whose daemon idles out after 2 s; no monitor survives the test."""
    (home / "config.toml").write_text(f"idle_exit = {IDLE_EXIT}\n[backends.local]\nmax_cpus = 4\n")
    try:
        yield home
    finally:
        stop_monitor(home)
        assert holder(home / "monitor.lock") is None


@pytest.fixture
def corral(cli_home: Path) -> Any:
    """``corral("ls", "--json")`` -> Result, run in ``cli_home``."""

    def call(*args: str, **kwargs: Any) -> Result:
        return run_corral(cli_home, *args, **kwargs)

    return call


def snapshot(home: Path) -> tuple[list[str], list[str]]:
    """Everything a command could have changed: the registry's rows and the job files."""
    registry = home / "registry.db"
    rows = dump(registry) if registry.exists() else []
    jobs = home / "jobs"
    files = sorted(str(p.relative_to(home)) for p in jobs.rglob("*")) if jobs.exists() else []
    return rows, files


def wait_until(predicate: Any, timeout: float = 20, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
