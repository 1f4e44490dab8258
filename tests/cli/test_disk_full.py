"""A full disk is transient: commands say so in one line and exit 3, nothing half-stored; the
daemon backs off instead of dying, and every job goes on once space returns.

The end-to-end tests mount a 1 MiB tmpfs, so they need root: they are skipped without it,
unless ``CORRAL_REQUIRE_ROOT`` is set (``make test`` sets it, so CI never skips them).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.errors import StorageFull
from corral.lock import holder
from corral.registry.driver import sqlite3
from corral.registry.engine import open_engines, storage_full
from tests.cli.conftest import run_corral, snapshot, stop_monitor, wait_until

FINAL = {"completed", "failed", "killed"}


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        if os.environ.get("CORRAL_REQUIRE_ROOT"):
            pytest.fail("CORRAL_REQUIRE_ROOT is set, but the tests do not run as root")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount
    finally:
        # Lazily if a job's process still has its cwd there: it goes when that process ends.
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def tiny_home(tiny_disk: Path) -> Iterator[Path]:
    """CORRAL_HOME (registry, job dirs, log) on the tiny disk; a daemon that stays up."""
    home = tiny_disk / "home"
    home.mkdir()
    (home / "config.toml").write_text("idle_exit = 120\n[backends.local]\nmax_cpus = 4\n")
    try:
        yield home
    finally:
        stop_monitor(home)


def fill(disk: Path) -> Path:
    """Write zeros until the device is full; the file to delete to free the space again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(64 * 1024))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def state(home: Path, job: str) -> str:
    shown = run_corral(home, "show", job, "--json")
    assert shown.code == 0, shown
    return str(shown.json()["job"]["state"])


def daemon_of(home: Path) -> int:
    assert wait_until(lambda: holder(home / "monitor.lock") is not None, 10)
    pid = holder(home / "monitor.lock")
    assert pid is not None
    return pid


def test_a_full_registry_disk_is_exit_3_and_the_daemon_survives(tiny_home: Path) -> None:
    home = tiny_home
    assert run_corral(home, "submit", "-q", "--", "sleep", "60").code == 0
    daemon = daemon_of(home)
    assert wait_until(lambda: state(home, "1") == "running")
    filler = fill(home.parent)
    full_at = time.monotonic()
    before = snapshot(home)
    refused = run_corral(home, "submit", "--", "true")
    assert refused.code == 3, refused
    registry = home / "registry.db"
    assert refused.err == f"corral: no space left on device for the registry at {registry}\n"
    assert snapshot(home) == before  # nothing stored, no job dir
    listed = run_corral(home, "ls")
    assert listed.code == 0, listed
    assert "running" in listed.out
    time.sleep(max(0.0, full_at + 6 - time.monotonic()))  # the daemon writes (health) every 5 s
    assert holder(home / "monitor.lock") == daemon
    filler.unlink()
    accepted = run_corral(home, "submit", "-q", "--", "echo", "ok")
    assert accepted.code == 0, accepted
    assert run_corral(home, "wait", "2", "--timeout", "30").code == 0
    assert run_corral(home, "peek", "2").out == "ok\n"
    assert run_corral(home, "kill", "1").code == 0
    assert run_corral(home, "wait", "1", "--timeout", "30").code == 1  # killed, as asked
    assert holder(home / "monitor.lock") == daemon  # the same daemon all along


def test_a_full_work_dir_delays_a_job_and_fails_none(tiny_disk: Path, cli_home: Path) -> None:
    """The registry has room, the job dirs have none: submit is accepted, the job waits."""
    work = tiny_disk / "jobs"
    (cli_home / "config.toml").write_text(
        f'idle_exit = 120\nwork_dir = "{work}"\n[backends.local]\nmax_cpus = 4\n'
    )
    first = run_corral(cli_home, "submit", "-q", "--wait", "--", "echo", "first")
    assert first.code == 0, first
    daemon = daemon_of(cli_home)
    filler = fill(tiny_disk)
    accepted = run_corral(cli_home, "submit", "-q", "--", "echo", "ok")
    assert accepted.code == 0, accepted
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # it cannot be prepared, and that fails nothing
        assert state(cli_home, "2") not in FINAL
        time.sleep(0.5)
    assert holder(cli_home / "monitor.lock") == daemon
    filler.unlink()
    waited = run_corral(cli_home, "wait", "2", "--timeout", "30")
    assert waited.code == 0, (waited, run_corral(cli_home, "show", "2"))
    assert run_corral(cli_home, "peek", "2").out == "ok\n"
    assert holder(cli_home / "monitor.lock") == daemon


# ---------------------------------------------------------------- which errors mean "full"
def _sqlite_error(code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (_sqlite_error(13), True),  # SQLITE_FULL
        (_sqlite_error(5), False),  # SQLITE_BUSY: locked, not full
        (_sqlite_error(778), False),  # SQLITE_IOERR_WRITE on a disk with room: a real I/O error
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), False),
    ],
)
def test_which_errors_mean_a_full_disk(error: BaseException, full: bool, tmp_path: Path) -> None:
    found = storage_full(error, tmp_path / "registry.db")
    assert (found is not None) == full
    if found is not None:
        assert isinstance(found, StorageFull) and found.transient
        assert str(found) == f"no space left on device for the registry at {tmp_path}/registry.db"


def test_every_registry_statement_translates_a_full_database(tmp_path: Path) -> None:
    """Through SQLAlchemy's handle_error hook, on any statement of the registry's engines."""
    writer, reader = open_engines(tmp_path / "registry.db")
    try:
        with writer.connect() as conn:
            # SQLite refuses to grow a database past max_page_count with SQLITE_FULL, just as
            # when the disk is full.
            count = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            conn.exec_driver_sql(f"PRAGMA max_page_count = {count}")
            conn.commit()
            with pytest.raises(StorageFull) as raised:
                for i in range(100):
                    conn.exec_driver_sql(f"CREATE TABLE filler{i} (x)")
                    conn.commit()
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert str(raised.value).endswith(f"for the registry at {tmp_path}/registry.db")
    finally:
        writer.dispose()
        reader.dispose()
