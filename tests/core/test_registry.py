from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from corral.errors import LeaseLost, NotFound, StateConflict
from corral.records import JobId
from corral.registry import Registry, Selection, Update
from corral.registry.schema import SCHEMA_REVISION
from corral.spec import JobSpec, parse_spec
from corral.splitters import split
from corral.states import JobState

S = JobState


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry.db", tmp_path / "jobs")
    yield registry
    registry.close()


def add_sweep(reg: Registry, n: int, **extra: object) -> JobId:
    spec = parse_spec(
        {
            "command": ["true"],
            "splitter": {"kind": "args", "args": [[str(i)] for i in range(n)]},
            **extra,
        }
    )
    return reg.add(spec, split(spec))


def test_ids_count_up_and_subjobs_are_stored(reg: Registry) -> None:
    assert reg.add(parse_spec({"command": ["true"]}), []) == JobId(1)
    master = add_sweep(reg, 3)
    assert master == JobId(2)
    record = reg.get(master)
    assert record.subjobs == 3
    assert record.counts == {S.NEW: 3}
    assert [r.id for r in reg.subjobs(2)] == [JobId(2, 0), JobId(2, 1), JobId(2, 2)]
    assert reg.get(JobId(2, 1)).spec.arguments == ("1",)


def test_not_found(reg: Registry) -> None:
    with pytest.raises(NotFound):
        reg.get(JobId(7))


def test_claim_apply_and_master_derivation(reg: Registry) -> None:
    master = add_sweep(reg, 2)
    epoch = reg.acquire_lease(1, "test")
    claimed = reg.claim_new(epoch)
    assert {a.state for a in claimed} == {S.SUBMITTING}
    assert reg.claim_new(epoch) == []
    changes = reg.apply(epoch, [Update(claimed[0].uuid, S.RUNNING, native_id="n1")])
    assert [(c.id, c.old, c.new) for c in changes] == [
        (JobId(2 - 1, 0), S.SUBMITTING, S.RUNNING),
        (JobId(1), S.SUBMITTING, S.RUNNING),
    ]
    assert reg.get(JobId(1, 0)).native_id == "n1"
    reg.apply(epoch, [Update(a.uuid, S.COMPLETED) for a in claimed])
    assert reg.get(master).state == S.COMPLETED


def test_late_observation_is_an_event_not_a_change(reg: Registry) -> None:
    reg.add(parse_spec({"command": ["true"]}), [])
    epoch = reg.acquire_lease(1, "test")
    (attempt,) = reg.claim_new(epoch)
    reg.apply(epoch, [Update(attempt.uuid, S.COMPLETED), Update(attempt.uuid, S.RUNNING, "late")])
    assert reg.get(JobId(1)).state == S.COMPLETED
    history = reg.history(JobId(1))
    assert history[-1].applied is False and history[-1].new == S.RUNNING


def test_first_final_observation_wins(reg: Registry) -> None:
    reg.add(parse_spec({"command": ["true"]}), [])
    epoch = reg.acquire_lease(1, "test")
    (attempt,) = reg.claim_new(epoch)
    reg.apply(epoch, [Update(attempt.uuid, S.KILLED, "killed"), Update(attempt.uuid, S.COMPLETED)])
    record = reg.get(JobId(1))
    assert (record.state, record.reason) == (S.KILLED, "killed")


def test_automatic_resubmission_starts_a_new_attempt(reg: Registry) -> None:
    reg.add(parse_spec({"command": ["false"], "max_attempts": 2}), [])
    epoch = reg.acquire_lease(1, "test")
    (first,) = reg.claim_new(epoch)
    reg.apply(epoch, [Update(first.uuid, S.FAILED, "exit code 1", exit_code=1)])
    record = reg.get(JobId(1))
    assert (record.state, record.attempt) == (S.NEW, 2)
    assert record.uuid != first.uuid
    (second,) = reg.claim_new(epoch)
    reg.apply(epoch, [Update(second.uuid, S.FAILED, "exit code 1", exit_code=1)])
    record = reg.get(JobId(1))
    assert (record.state, record.attempt, record.exit_code) == (S.FAILED, 2, 1)
    attempts = {t.attempt for t in reg.history(JobId(1))}
    assert attempts == {1, 2}


def test_resubmit_touches_failed_subjobs_only_by_default(reg: Registry) -> None:
    add_sweep(reg, 3)
    epoch = reg.acquire_lease(1, "test")
    claimed = reg.claim_new(epoch)
    reg.apply(
        epoch,
        [
            Update(claimed[0].uuid, S.COMPLETED),
            Update(claimed[1].uuid, S.FAILED),
            Update(claimed[2].uuid, S.COMPLETED),
        ],
    )
    assert reg.resubmit([JobId(1)]) == [JobId(1, 1)]
    assert reg.get(JobId(1)).counts == {S.COMPLETED: 2, S.NEW: 1}
    assert len(reg.resubmit([JobId(1)], include_all=True)) == 2


def test_kill_new_job_is_immediate_and_active_job_is_flagged(reg: Registry) -> None:
    reg.add(parse_spec({"command": ["true"]}), [])
    reg.add(parse_spec({"command": ["true"]}), [])
    epoch = reg.acquire_lease(1, "test")
    reg.claim_new(epoch, limit=1)
    reg.request_kill([JobId(1), JobId(2)])
    assert reg.get(JobId(2)).state == S.KILLED
    assert reg.get(JobId(1)).kill_requested
    assert [a.id for a in reg.kill_requests()] == [JobId(1)]


def test_remove_refuses_active_jobs_without_force(reg: Registry) -> None:
    add_sweep(reg, 2)
    with pytest.raises(StateConflict, match="active"):
        reg.remove([JobId(1)])
    removal = reg.remove([JobId(1)], force=True)  # (its units were new: killed, so gone now)
    assert [r.id for r in removal.removed] == [JobId(1)] and removal.pending == []
    with pytest.raises(NotFound):
        reg.get(JobId(1))


def test_selection_filters(reg: Registry) -> None:
    reg.add(parse_spec({"name": "alpha", "command": ["true"], "tags": ["x", "y"]}), [])
    reg.add(parse_spec({"name": "beta", "command": ["true"], "tags": ["xy"]}), [])
    assert [r.name for r in reg.select(Selection(tags=("x",)))] == ["alpha"]
    assert [r.name for r in reg.select(Selection(names=("b*",)))] == ["beta"]
    assert [r.name for r in reg.select(Selection(states=(S.NEW,)))] == ["alpha", "beta"]
    assert reg.select(Selection(backends=("slurm",))) == []


def test_a_fenced_out_monitor_cannot_write(reg: Registry) -> None:
    reg.add(parse_spec({"command": ["true"]}), [])
    old = reg.acquire_lease(1, "test")
    (attempt,) = reg.claim_new(old)
    reg.acquire_lease(2, "test")  # a newer monitor took over
    with pytest.raises(LeaseLost):
        reg.apply(old, [Update(attempt.uuid, S.COMPLETED)])
    assert reg.get(JobId(1)).state == S.SUBMITTING


def test_fresh_registry_is_migrated_and_alembic_stays_unimported_afterwards(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    Registry(path, tmp_path).close()
    code = (
        "import sys; from pathlib import Path; from corral.registry import Registry;"
        f"Registry(Path({str(path)!r}), Path({str(tmp_path)!r})).close();"
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from corral.registry.driver import sqlite3

    with sqlite3.connect(path) as conn:
        assert (
            conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == SCHEMA_REVISION
        )


def test_a_registry_from_a_newer_corral_is_refused_clearly(tmp_path: Path) -> None:
    from corral.errors import RegistryError
    from corral.registry.driver import sqlite3

    path = tmp_path / "r.db"
    Registry(path, tmp_path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(RegistryError, match="upgrade corral"):
        Registry(path, tmp_path)


def test_subjob_records_carry_no_master_counts(reg: Registry) -> None:
    add_sweep(reg, 2)
    found = reg.select(Selection(ids=(JobId(1), JobId(1, 0))))
    assert [(r.id, r.counts) for r in found] == [(JobId(1), {S.NEW: 2}), (JobId(1, 0), {})]


def _describe_schema(path: Path) -> dict[str, object]:
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(f"sqlite:///{path}")
    inspector = inspect(engine)
    shape: dict[str, object] = {}
    with warnings.catch_warnings():  # it skips expression indexes: "index sql" compares them
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        for table in sorted(inspector.get_table_names()):
            shape[table] = (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                sorted(
                    (i["name"], tuple(i["column_names"]), i["unique"])
                    for i in inspector.get_indexes(table)
                ),
                sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
                [
                    (f["referred_table"], f["constrained_columns"])
                    for f in inspector.get_foreign_keys(table)
                ],
                inspector.get_pk_constraint(table)["constrained_columns"],
            )
    with engine.connect() as conn:
        shape["lease rows"] = conn.execute(text("SELECT id, epoch, released FROM lease")).all()
        indexes = text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql != ''")
        shape["index sql"] = sorted((n, " ".join(sql.split())) for n, sql in conn.execute(indexes))
    engine.dispose()
    return shape


def test_fresh_schema_equals_the_migrations(tmp_path: Path) -> None:
    """A new registry is created from schema.py in one step; the versioned migrations must
    build exactly the same thing (so upgrades of old registries and new ones agree)."""
    from corral.registry.engine import _sqlite_engine, upgrade_with_alembic

    fresh = tmp_path / "fresh.db"
    Registry(fresh, tmp_path).close()
    migrated = tmp_path / "migrated.db"
    engine = _sqlite_engine(migrated, "BEGIN IMMEDIATE")
    upgrade_with_alembic(engine, migrated)
    engine.dispose()
    assert _describe_schema(fresh) == _describe_schema(migrated)


def test_ids_are_never_reused_after_rm_of_the_newest(tmp_path: Path) -> None:
    from corral.registry.store import Registry

    reg = Registry(tmp_path / "registry.db", tmp_path / "jobs")
    try:
        spec = JobSpec(command=("true",))
        first, second = reg.add(spec, []), reg.add(spec, [])
        reg.remove([second], force=True)
        assert reg.add(spec, []).job == second.job + 1 == first.job + 2
        uuid = reg.registry_uuid
        assert len(uuid) == 32 and int(uuid, 16) >= 0
    finally:
        reg.close()
    again = Registry(tmp_path / "registry.db", tmp_path / "jobs")
    try:
        assert again.registry_uuid == uuid  # made once, kept
    finally:
        again.close()


def test_get_many_mixes_jobs_and_subjobs_in_the_order_asked(reg: Registry) -> None:
    plain = [reg.add(parse_spec({"command": ["true"], "name": f"j{i}"}), []) for i in range(250)]
    master = add_sweep(reg, 2)
    asked = [JobId(master.job, 1), plain[249], master, *plain[:230], JobId(master.job, 0)]
    found = reg.get_many(asked)
    assert [r.id for r in found] == asked
    assert [r.spec.name for r in found[1:4]] == ["j249", "job", "j0"]
    assert found[2].counts == {S.NEW: 2} and found[0].counts == {}
    with pytest.raises(NotFound, match=r"no job 1\.0"):
        reg.get_many([plain[0], JobId(1, 0)])  # a plain job has no subjob 0
