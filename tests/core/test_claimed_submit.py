"""A submit from the monitor's own process is claimed in the transaction that stores it
(``Registry.add_claimed``): the rows, history and attempts are what ``add`` then ``claim_new``
would have left, and the lease fences it like every monitor write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from corral import JobState, Session, Settings
from corral.errors import LeaseLost
from corral.identity_files import job_root
from corral.records import Attempt, JobId
from corral.registry import Registry
from corral.spec import JobSpec, parse_spec
from corral.splitters import split

S = JobState


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(tmp_path / "registry.db", tmp_path / "jobs")
    yield registry
    registry.close()


def sweep(n: int) -> JobSpec:
    return parse_spec({"command": ["true"], "splitter": {"kind": "args", "args": [[]] * n}})


def history(reg: Registry, job: JobId) -> list[tuple[str | None, str, str]]:
    return [(t.old.value if t.old else None, t.new.value, t.reason) for t in reg.history(job)]


def key(a: Attempt) -> tuple[object, ...]:
    return (a.id, a.uuid, a.attempt, a.spec, a.attempt_dir, a.state, a.native_id, a.problem)


@pytest.mark.parametrize(
    "spec", [parse_spec({"command": ["true"]}), sweep(3)], ids=["one", "sweep"]
)
def test_claimed_add_leaves_what_add_then_claim_leaves(tmp_path: Path, spec: JobSpec) -> None:
    a = Registry(tmp_path / "a" / "registry.db", tmp_path / "a" / "jobs")
    b = Registry(tmp_path / "b" / "registry.db", tmp_path / "b" / "jobs")
    try:
        epoch_a, epoch_b = a.acquire_lease(1, "t"), b.acquire_lease(1, "t")
        job = a.add(spec, split(spec))
        via_intake = a.claim_new(epoch_a)
        same, claimed = b.add_claimed(spec, split(spec), epoch_b)
        assert same == job
        assert b.claim_new(epoch_b) == []  # nothing is left for the intake
        assert history(a, job) == history(b, job)
        mine, theirs = a.get(job), b.get(job)
        assert (mine.state, mine.counts, mine.reason) == (
            theirs.state,
            theirs.counts,
            theirs.reason,
        )
        subs = [(r.id, r.state, r.reason) for r in a.subjobs(job.job)]
        assert subs == [(r.id, r.state, r.reason) for r in b.subjobs(job.job)]
        for sub in a.subjobs(job.job):
            assert history(a, sub.id) == history(b, sub.id)
        # the attempts handed to the monitor are the ones read back from the rows
        reread = {x.uuid: x for x in b.active_attempts()}
        assert [key(x) for x in claimed] == [key(reread[x.uuid]) for x in claimed]
        assert len(claimed) == len(via_intake)
        root_a = job_root(tmp_path / "a" / "jobs", a.registry_uuid)
        root_b = job_root(tmp_path / "b" / "jobs", b.registry_uuid)
        assert [x.attempt_dir.relative_to(root_b) for x in claimed] == [
            x.attempt_dir.relative_to(root_a) for x in via_intake
        ]
    finally:
        a.close()
        b.close()


def test_a_stale_epoch_stores_nothing(reg: Registry) -> None:
    old = reg.acquire_lease(1, "t")
    reg.acquire_lease(2, "t")  # a newer monitor took over
    spec = parse_spec({"command": ["true"]})
    with pytest.raises(LeaseLost):
        reg.add_claimed(spec, [], old)
    assert reg.count_active() == 0
    assert reg.add(spec, []).job == 1  # (the id was not used up either: rolled back)


def test_in_process_submits_and_sweeps_complete(settings: Settings) -> None:
    with Session(settings) as session:
        assert session.aio.monitor is not None
        ids = [session.submit({"command": ["true"]}) for _ in range(5)]
        ids.append(session.submit(sweep(4)))
        session.wait(ids, timeout=60)
        assert all(session.get(i).state == S.COMPLETED for i in ids)
        reasons = [t.reason for t in session.history(ids[0])]
        assert reasons[:2] == ["created", "claimed by monitor"]
