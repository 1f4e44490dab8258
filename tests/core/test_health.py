"""Backend health and the monitor's last error in the registry: fenced writes, the lean reader,
and the 0001 -> 0002 migration (an existing registry gains the table on open)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from corral.errors import LeaseLost
from corral.records import BackendHealth
from corral.registry import Registry, summary
from corral.registry.driver import sqlite3
from corral.registry.schema import SCHEMA_REVISION

UP = BackendHealth(
    name="local",
    kind="local",
    state="up",
    since=100.0,
    active=2,
    interval=0.5,
    last_poll=200.0,
    polls=7,
    calls={"ps": 1},
)
DOWN = BackendHealth(
    name="slurm",
    kind="slurm",
    state="down",
    reason="sbatch not found",
    since=150.0,
    active=1,
    interval=30.0,
    errors=3,
    consecutive_errors=3,
    calls={"squeue": 1, "sacct": 1},
)


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(tmp_path / "registry.db", tmp_path / "jobs")
    yield registry
    registry.close()


def _lean(path: Path) -> summary.ListingReader:
    conn = summary.open_reader(path)
    assert conn is not None
    return conn


def _same_but_time(found: BackendHealth, written: BackendHealth) -> None:
    assert found.updated_at > 0  # the registry stamps the time of the write
    assert found == replace(written, updated_at=found.updated_at)


def test_health_round_trip_and_upsert(reg: Registry) -> None:
    epoch = reg.acquire_lease(1, "test")
    reg.put_backend_health(epoch, [UP, DOWN])
    first = reg.backend_health()
    assert [h.name for h in first] == ["local", "slurm"]
    for found, written in zip(first, (UP, DOWN), strict=True):
        _same_but_time(found, written)
    assert first[1].down and not first[0].down

    recovered = replace(DOWN, state="up", reason="", calls={})
    reg.put_backend_health(epoch, [recovered])  # one row replaced, the other kept
    second = reg.backend_health()
    assert len(second) == 2
    _same_but_time(second[0], UP)
    _same_but_time(second[1], recovered)

    conn = _lean(reg.path)  # the CLI's reader sees exactly what SQLAlchemy sees
    try:
        assert conn.backend_health() == second
        assert conn.down_backends() == {}
    finally:
        conn.close()


def test_a_fenced_out_monitor_cannot_write_health_or_errors(reg: Registry) -> None:
    old = reg.acquire_lease(1, "test")
    new = reg.acquire_lease(2, "test")
    with pytest.raises(LeaseLost):
        reg.put_backend_health(old, [DOWN])
    with pytest.raises(LeaseLost):
        reg.record_monitor_error(old, "RuntimeError: boom")
    assert reg.backend_health() == []
    assert reg.lease_info().last_error is None
    reg.put_backend_health(new, [DOWN])
    assert [h.name for h in reg.backend_health()] == ["slurm"]


def test_the_last_error_outlives_the_next_monitor(reg: Registry) -> None:
    epoch = reg.acquire_lease(11, "test")
    reg.release_lease(epoch)  # a dying monitor releases its lease on the way out, then records
    reg.record_monitor_error(epoch, "ValueError: bad max_cpus", pid=11)
    info = reg.lease_info()
    assert (info.last_error, info.last_error_pid, info.released) == (
        "ValueError: bad max_cpus",
        11,
        True,
    )
    assert info.last_error_at is not None and info.error_is_latest

    reg.acquire_lease(12, "test")
    after = reg.lease_info()
    assert after.last_error == "ValueError: bad max_cpus"  # kept, with its time
    assert after.last_error_at == info.last_error_at
    assert not after.error_is_latest  # older than the monitor that holds the lease now


def test_an_unfenced_error_is_for_a_daemon_that_never_held_a_lease(reg: Registry) -> None:
    epoch = reg.acquire_lease(1, "test")
    reg.record_monitor_error(None, "RegistryError: disk full", pid=99)
    info = reg.lease_info()
    assert (info.epoch, info.last_error, info.last_error_pid) == (
        epoch,
        "RegistryError: disk full",
        99,
    )
    assert info.error_is_latest
    conn = _lean(reg.path)
    try:
        assert conn.lease_info() == info
    finally:
        conn.close()


def test_down_backends_only_counts_rows_of_the_latest_monitor(reg: Registry) -> None:
    epoch = reg.acquire_lease(1, "test")
    reg.put_backend_health(epoch, [UP, DOWN])
    conn = _lean(reg.path)
    try:
        assert conn.down_backends() == {"slurm": "sbatch not found"}
        lease = conn.lease_info()
        assert all(summary.from_latest_monitor(h, lease) for h in conn.backend_health())
        reg.acquire_lease(2, "test")  # a new monitor that has not written yet
        lease = conn.lease_info()
        assert conn.down_backends() == {}
        assert not any(summary.from_latest_monitor(h, lease) for h in conn.backend_health())
    finally:
        conn.close()


# ---------------------------------------------------------------- migration from 0001
def _alembic(engine: Engine, action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    import corral.registry.engine as engine_module

    config = Config()
    config.set_main_option(
        "script_location", str(Path(engine_module.__file__).parent / "migrations")
    )
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)
        conn.commit()


def _registry_at_0001(path: Path) -> None:
    """A registry as corral 0001 left it: the first migration only, a job and a used lease."""
    from corral.registry.engine import _sqlite_engine

    engine = _sqlite_engine(path, "BEGIN IMMEDIATE")
    try:
        _alembic(engine, "upgrade", "0001")
    finally:
        engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE lease SET epoch = 4, pid = 77, acquired_at = 10.0, heartbeat = 11.0, "
            "released = 0 WHERE id = 1"
        )
        conn.execute(
            "INSERT INTO jobs (job_id, sub, name, spec, backend, tags, state, attempt, uuid, "
            "reason, subjobs, kill_requested, created_at, updated_at) VALUES (1, -1, 'old', "
            "'{\"command\": [\"true\"]}', 'local', '', 'new', 1, 'u-1', '', 0, 0, 1.0, 1.0)"
        )
    conn.close()


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        found = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    return found


def _revision(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        found = str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    conn.close()
    return found


def test_a_0001_registry_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    _registry_at_0001(path)
    assert "backend_status" not in _tables(path)
    reg = Registry(path, tmp_path / "jobs")
    try:
        assert "backend_status" in _tables(path)
        assert _revision(path) == SCHEMA_REVISION
        info = reg.lease_info()  # the old lease is kept, with no error yet
        assert (info.epoch, info.pid, info.released, info.last_error) == (4, 77, False, None)
        assert reg.count_active() == 1
        epoch = reg.acquire_lease(1, "test")
        assert epoch == 5
        reg.put_backend_health(epoch, [DOWN])
        reg.record_monitor_error(epoch, "boom")
        assert [h.name for h in reg.backend_health()] == ["slurm"]
        assert reg.lease_info().last_error == "boom"
    finally:
        reg.close()


def test_the_lean_reader_copes_with_a_0001_registry_without_migrating_it(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    _registry_at_0001(path)
    conn = _lean(path)
    try:
        assert conn.backend_health() == []
        assert conn.down_backends() == {}
        info = conn.lease_info()
        assert info is not None
        assert (info.epoch, info.pid, info.last_error, info.last_error_at) == (4, 77, None, None)
        assert not info.error_is_latest
    finally:
        conn.close()
    assert _revision(path) == "0001"  # read-only readers never migrate


def test_the_lean_reader_copes_with_a_file_without_tables(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    sqlite3.connect(path).close()
    conn = _lean(path)
    try:
        assert conn.lease_info() is None
        assert conn.backend_health() == []
        assert conn.down_backends() == {}
    finally:
        conn.close()


def test_0002_downgrades_to_0001(tmp_path: Path) -> None:
    from corral.registry.engine import _sqlite_engine

    path = tmp_path / "registry.db"
    _registry_at_0001(path)
    Registry(path, tmp_path / "jobs").close()
    engine = _sqlite_engine(path, "BEGIN IMMEDIATE")
    try:
        _alembic(engine, "downgrade", "0001")
    finally:
        engine.dispose()
    assert "backend_status" not in _tables(path)
    assert _revision(path) == "0001"
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(lease)")]
        epoch = conn.execute("SELECT epoch FROM lease").fetchone()[0]
    conn.close()
    assert "last_error" not in columns and epoch == 4
