"""The session verbs the surfaces share: paging with counts, progress, status, gc, follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import JobState, Session, Settings, load_settings
from corral.errors import ConfigError
from corral.records import JobId
from corral.selection import Selection

S = JobState


def test_pages_are_keyset_paged_with_counts_of_the_whole_selection(settings: Settings) -> None:
    with Session(settings, monitor="off") as s:
        ids = [s.submit({"command": ["true"], "tags": ["x"] if i % 2 else []}) for i in range(7)]
        s.kill(ids[:2])  # new jobs: killed at once
        first = s.page(limit=3)
        assert [r.id for r in first.jobs] == ids[:3]
        assert first.counts == {S.KILLED: 2, S.NEW: 5} and first.next_after == ids[2]
        rest = s.page(after=first.next_after, limit=10)
        assert [r.id for r in rest.jobs] == ids[3:] and rest.next_after is None
        tagged = s.page(Selection(tags=("x",)), limit=10)
        assert [r.id for r in tagged.jobs] == ids[1::2] and tagged.counts == {S.KILLED: 1, S.NEW: 2}


def test_progress_counts_units(settings: Settings) -> None:
    with Session(settings, monitor="off") as s:
        sweep = s.submit(
            {
                "command": ["echo", "{i}"],
                "splitter": {"kind": "sweep", "parameters": {"i": ["1", "2"]}},
            }
        )
        plain = s.submit({"command": ["true"]})
        s.kill(JobId(sweep.job, 0))
        assert s.progress([sweep, plain]) == {S.KILLED: 1, S.NEW: 2}


def test_monitor_status_and_gc(settings: Settings) -> None:
    with Session(settings) as s:
        job = s.submit({"command": ["true"]})
        s.wait(job, timeout=60)
        status = s.monitor_status()
        assert status.running and status.pid is not None and status.active == 0
        assert [h.name for h in s.backend_status()] in ([], ["local"])
        assert s.gc(3600) == []
        assert [r.id for r in s.gc(0, dry_run=True)] == [job]
        assert [r.id for r in s.gc(0)] == [job] and s.select() == []


def test_follow_yields_output_until_the_job_ends(session: Session) -> None:
    job = session.submit({"command": ["sh", "-c", "echo one; sleep 0.5; echo two"]})
    assert "".join(session.follow(job, poll=0.05)) == "one\ntwo\n"


def test_the_registry_setting_takes_a_sqlite_url(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "reg.db"
    settings = load_settings(
        overrides={"registry": f"sqlite:///{target}"}, env={"CORRAL_HOME": str(home)}
    )
    assert settings.registry == target
    plain = load_settings(overrides={"registry": str(target)}, env={"CORRAL_HOME": str(home)})
    assert plain.registry == target
    with pytest.raises(ConfigError, match="unsupported registry URL scheme 'postgresql'"):
        load_settings(
            overrides={"registry": "postgresql://db/corral"}, env={"CORRAL_HOME": str(home)}
        )


def test_wait_reports_progress_in_units_until_all_are_final(settings: Settings) -> None:
    reports: list[dict[JobState, int]] = []
    with Session(settings) as s:
        sweep = s.submit(
            {
                "command": ["sh", "-c", "sleep 0.3; test {i} != 2"],
                "splitter": {"kind": "sweep", "parameters": {"i": ["1", "2", "3"]}},
            }
        )
        plain = s.submit({"command": ["true"]})
        done = s.wait([sweep, plain], timeout=60, on_progress=lambda c: reports.append(dict(c)))
    assert [r.state for r in done] == [S.FAILED, S.COMPLETED]
    assert all(sum(r.values()) == 4 for r in reports)  # 3 subjobs + 1 job, every time
    assert reports[-1] == {S.COMPLETED: 3, S.FAILED: 1}
    assert len(reports) >= 2 and reports[0] != reports[-1]  # the start, the end (and between)
