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
from corral.registry.summary import open_reader
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
    reader = open_reader(home / "registry.db")
    assert reader is not None
    try:
        # (Registry.select also hands a master's counts to its subjobs when both are selected:
        # compare what a count means, a master's subjobs or the job itself.)
        expected = [
            (r.id, r.state, r.counts if r.is_master else {r.state: 1})
            for r in registry.select(filt)
        ]
        lean = [(s.id, s.state, s.counts) for s in reader.summaries(filt)]
    finally:
        registry.close()
        reader.close()
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


def test_stored_names_tags_and_backends_cannot_forge_rows_or_drive_the_terminal(
    home: Path,
) -> None:
    """Rows stored before the entry checks refused such text still print as one safe line."""
    from corral.registry.driver import sqlite3

    registry = Registry(home / "registry.db", home / "jobs")
    try:
        for name in ("plain", "other", "third"):
            registry.add(JobSpec(command=("true",), name=name, tags=("t",)), [])
    finally:
        registry.close()
    with sqlite3.connect(home / "registry.db") as conn:  # as an older corral may have stored them
        conn.execute(
            "UPDATE jobs SET name = ?, tags = ? WHERE job_id = 1",
            ("x\n99  forged  completed\x1b[2J", ",a\x1b]0;title\x07,b\u202e,"),
        )
        conn.execute("UPDATE jobs SET backend = ? WHERE job_id = 2", ("lo\x9bcal\r",))
    conn.close()
    out = run_corral(home, "ls").out
    lines = out.splitlines()
    assert len(lines) == 4 and [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]
    assert out.count("\n") == 4 and all(line.isprintable() for line in lines)
    assert "x\\n99  forged  completed\\x" in lines[1]  # (cut to the NAME column)
    assert "a\\x1b]0;title\\x07,b\\u202e" in lines[1]
    assert "lo\\x9bcal\\r" in lines[2]
    assert lines[3].split()[1:3] == ["third", "new"]  # the clean rows are as before
    # --json carries the text as stored (JSON escapes control characters itself)
    found = run_corral(home, "ls", "--json").json()["jobs"]
    assert found[0]["name"] == "x\n99  forged  completed\x1b[2J"


def test_ls_colours_the_state_column_only() -> None:
    from corral.cli.listing import STATE_COLORS, colour_states
    from corral.registry.summary import Widths

    w = Widths(id=2, name=8, state=10, backend=7, count=4)
    body = "1   failed    failed      0s  local    \n2   new       new         0s  local    "
    coloured = colour_states(body, w).split("\n")
    pre, post = STATE_COLORS["failed"]
    assert coloured[0] == f"1   failed    {pre}failed    {post}  0s  local    "
    assert coloured[1] == body.split("\n")[1]  # a state without a colour is left alone
