"""Holds through the core (session, registry, monitor) on an in-memory scheduler that holds:
the reasons recorded while a job stays submitted, the scheduler's own words taking over, a
release, a final job refused, and a backend that cannot hold refused with exit 2's kind."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from corral import JobState, Session, load_settings
from corral import backends as backend_registry
from corral.backends.base import BackendConfig, BlockingBackend, Report, Submitted
from corral.errors import HoldUnsupported, InvalidInput
from corral.records import Attempt, Observation


class HoldToy(BlockingBackend):
    """Jobs wait while ``gate`` is closed; held ones wait until released, then complete."""

    can_hold: ClassVar[bool] = True
    gate: ClassVar[bool] = False
    held: ClassVar[dict[str, str]] = {}
    hold_calls: ClassVar[int] = 0

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)

    def start(self, report: Report) -> None:
        return None

    def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        return Submitted({a.uuid: f"toy-{a.uuid}" for a in attempts})

    def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        out = {}
        for a in attempts:
            if a.uuid in HoldToy.held:
                why = HoldToy.held[a.uuid]
                out[a.uuid] = Observation(a.uuid, JobState.SUBMITTED, f"held: {why}", held=why)
            elif HoldToy.gate:
                out[a.uuid] = Observation.ended(a.uuid, 0)
            else:
                out[a.uuid] = Observation(a.uuid, JobState.SUBMITTED, "queued")
        return out

    def cancel(self, attempts: Sequence[Attempt]) -> None:
        return None

    def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        return {}

    def hold(self, attempts: Sequence[Attempt], reason: str) -> Mapping[str, str]:
        HoldToy.hold_calls += 1
        HoldToy.held.update({a.uuid: f"{reason} (by toy)" for a in attempts})
        return {}

    def release(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        for a in attempts:
            HoldToy.held.pop(a.uuid, None)
        return {}


@pytest.fixture
def toy(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    HoldToy.gate, HoldToy.held, HoldToy.hold_calls = False, {}, 0
    real_load, real_known = backend_registry.load, backend_registry.known
    monkeypatch.setattr(
        backend_registry, "load", lambda k: HoldToy if k == "htoy" else real_load(k)
    )
    monkeypatch.setattr(backend_registry, "known", lambda k: k == "htoy" or real_known(k))
    (home / "config.toml").write_text(
        "autostart = false\n[backends.htoy]\nmin_interval = 0.05\nmax_interval = 0.2\n"
    )


def until(predicate: Any, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_held_sweep_stays_submitted_and_runs_once_released(toy: None) -> None:
    with Session(load_settings()) as session:
        job = session.submit(
            {"command": ["true"], "backend": "htoy",
             "splitter": {"kind": "args", "args": [["a"], ["b"], ["c"]]}}
        )  # fmt: skip
        subs = lambda: session.subjobs(job.job)  # noqa: E731
        assert until(lambda: all(s.state == JobState.SUBMITTED for s in subs()))
        result = session.hold(job, reason="not yet")
        assert [str(i) for i in result.done] == ["1.0", "1.1", "1.2"] and not result.refused
        assert HoldToy.hold_calls == 1  # one call for the whole sweep
        assert until(lambda: {s.reason for s in subs()} == {"held: not yet (by toy)"})
        HoldToy.gate = True
        time.sleep(0.5)  # open gate, still held: nothing runs
        assert {s.state for s in subs()} == {JobState.SUBMITTED}
        assert len(session.release(job).done) == 3
        (master,) = session.wait(job, timeout=30)
        assert master.state == JobState.COMPLETED
        events = [t for t in session.history(subs()[0].id) if t.reason.startswith("held: ")]
        assert events and all(not t.applied for t in events)


def test_a_final_job_is_refused_without_a_scheduler_call(toy: None) -> None:
    HoldToy.gate = True
    with Session(load_settings()) as session:
        job = session.submit({"command": ["true"], "backend": "htoy"})
        session.wait(job, timeout=30)
        result = session.hold(job)
        assert result.refused == {job: "already completed"} and HoldToy.hold_calls == 0


def test_a_backend_that_cannot_hold_and_a_bad_reason_are_refused(home: Path) -> None:
    (home / "config.toml").write_text("autostart = false\n[backends.sim]\nqueue_time = 60\n")
    with Session(load_settings()) as session:
        job = session.submit({"command": ["true"], "backend": "sim"})
        assert until(lambda: session.get(job).state == JobState.SUBMITTED)
        with pytest.raises(HoldUnsupported, match="backend sim cannot hold jobs"):
            session.hold(job)
        with pytest.raises(InvalidInput, match="hold reason"):
            session.hold(job, reason="two\nlines")
