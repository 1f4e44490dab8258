"""``corral ls`` reads the registry through the lean summary: same jobs, same order, valid JSON."""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from corral.records import JobId
from corral.registry import Registry
from corral.registry.engine import open_engines
from corral.registry.schema import TOP, jobs
from corral.registry.summary import connect, summaries
from corral.selection import Selection
from corral.spec import JobSpec
from corral.states import FINAL, JobState
from tests.cli.conftest import run_corral

STATES = [s.value for s in JobState]


def seed(home: Path, count: int = 300) -> None:
    """Jobs with mixed names, tags, backends, states and ages, stored in shuffled id order."""
    rng = random.Random(7)
    spec = JobSpec(command=("true",)).to_json()
    now = time.time()
    rows: list[dict[str, Any]] = []
    for job_id in rng.sample(range(1, count + 1), count):
        subjobs = 3 if job_id % 5 == 0 else 0
        base = {
            "job_id": job_id,
            "spec": spec,
            "attempt": 1,
            "reason": "",
            "kill_requested": False,
            "created_at": now - job_id * 60,
            "updated_at": now,
            "name": rng.choice(["fit", "fit-long", "scan", 'we"ird\\name']),
            "backend": rng.choice(["local", "slurm"]),
            "tags": rng.choice(["", ",a,", ",a,b,", ',q"uote,']),
            "job_dir": str(home / "jobs" / str(job_id)),
        }
        rows.append(
            dict(base, sub=TOP, state=rng.choice(STATES), uuid=str(uuid.uuid4()), subjobs=subjobs)
        )
        rows += [
            dict(base, sub=i, state=rng.choice(STATES), uuid=str(uuid.uuid4()), subjobs=0)
            for i in range(subjobs)
        ]
    writer, reader = open_engines(home / "registry.db")
    try:
        with writer.begin() as conn:
            conn.execute(jobs.insert(), rows)
    finally:
        writer.dispose()
        reader.dispose()


FILTERS = [
    Selection(),
    Selection(states=(JobState.RUNNING, JobState.FAILED)),
    Selection(names=("fit*",)),
    Selection(tags=("a",)),
    Selection(tags=("b", 'q"uote')),
    Selection(backends=("slurm",), states=tuple(sorted(FINAL))),
    Selection(older_than=3600),
    Selection(newer_than=3600, names=("scan",)),
    Selection(ids=(JobId(5), JobId(5, 2), JobId(7))),
    Selection(ids=(JobId(10), JobId(11)), states=(JobState.NEW,)),
]


@pytest.mark.parametrize("filt", FILTERS, ids=range(len(FILTERS)))
def test_the_lean_filter_selects_what_selection_selects(home: Path, filt: Selection) -> None:
    seed(home)
    registry = Registry(home / "registry.db", home / "jobs")
    conn = connect(home / "registry.db")
    assert conn is not None
    try:
        # (Registry.select also hands a master's counts to its subjobs when both are selected:
        # compare what a count means, a master's subjobs or the job itself.)
        expected = [
            (r.id, r.state, r.counts if r.is_master else {r.state: 1})
            for r in registry.select(filt)
        ]
        lean = [(s.id, s.state, s.counts) for s in summaries(conn, filt)]
    finally:
        registry.close()
        conn.close()
    assert lean == expected and (lean or filt.ids)


def test_ls_lists_every_job_in_id_order_with_counts(home: Path) -> None:
    seed(home)
    listed = run_corral(home, "ls", "--json")
    assert listed.code == 0
    found = listed.json()["jobs"]  # valid JSON although names and tags hold quotes
    assert [j["id"] for j in found] == [str(i) for i in range(1, 301)]
    assert {tuple(j["tags"]) for j in found} == {(), ("a",), ("a", "b"), ('q"uote',)}
    assert 'we"ird\\name' in {j["name"] for j in found}
    assert all(sum(j["counts"].values()) == (j["subjobs"] or 1) for j in found)
    text = run_corral(home, "ls").out.splitlines()
    assert len(text) == 301
    assert [line.split()[0] for line in text[1:]] == [str(i) for i in range(1, 301)]
    master = next(line for line in text if line.startswith("5 "))
    assert "/3" in master
    failed = run_corral(home, "ls", "--state", "failed", "--json").json()["jobs"]
    assert failed and all(j["state"] == "failed" for j in failed)


def test_ls_cuts_long_names_and_shows_subjobs(home: Path) -> None:
    registry = Registry(home / "registry.db", home / "jobs")
    try:
        registry.add(JobSpec(command=("true",), name="n" * 80), [])
        sweep = JobSpec(command=("echo",), name="sweep")
        registry.add(sweep, [sweep, sweep])
    finally:
        registry.close()
    lines = run_corral(home, "ls").out.splitlines()
    assert "n" * 39 + "…" in lines[1] and "n" * 41 not in lines[1]
    subjobs = run_corral(home, "ls", "2.0", "2.1").out.splitlines()
    assert [line.split()[0] for line in subjobs[1:]] == ["2.0", "2.1"]
    assert json.loads(run_corral(home, "ls", "--json", "2").out)["jobs"][0]["counts"] == {"new": 2}


def test_ls_without_a_registry(home: Path) -> None:
    result = run_corral(home, "ls")
    assert result.code == 0 and result.out.split()[:3] == ["ID", "NAME", "STATE"]
    assert run_corral(home, "ls", "--json").json() == {"schema": 1, "jobs": []}
    assert not (home / "registry.db").exists()
