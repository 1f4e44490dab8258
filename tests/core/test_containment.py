"""One broken backend never stops the others: the reproductions of issue 7, item 3.

A backend that cannot load, start or answer is *down*: its jobs keep their state, nothing is
failed for it, and every other backend keeps running. These run through the sync Session and its
in-process monitor, as an API user would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from corral import JobState, Session, load_settings
from corral import backends as registry
from corral.backends.base import AsyncBackend, Submitted
from corral.errors import BackendUnavailable, ConfigError, InvalidSpec
from corral.monitor.loop import BackendStatus, _news
from corral.records import Attempt, Observation
from tests.cli.conftest import wait_until

S = JobState


@pytest.fixture
def no_slurm_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with what a local job needs and none of Slurm's tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "echo", "true", "timeout"):
        (bin_dir / tool).symlink_to(f"/bin/{tool}")
    monkeypatch.setenv("PATH", str(bin_dir))


def status_of(session: Session, name: str) -> BackendStatus | None:
    monitor = session.aio.monitor
    assert monitor is not None
    return next((s for s in monitor.statuses() if s.name == name), None)


def test_missing_slurm_tools_put_slurm_down_and_local_jobs_still_run(
    home: Path, no_slurm_path: None
) -> None:
    (home / "config.toml").write_text("autostart = false\n[backends.slurm]\nmax_interval = 1\n")
    with Session(load_settings()) as session:
        stuck = session.submit({"command": ["true"], "backend": "slurm"})
        assert wait_until(
            lambda: (st := status_of(session, "slurm")) is not None and st.state == "down", 15
        )
        status = status_of(session, "slurm")
        assert status is not None and "sbatch" in status.reason
        job = session.submit({"command": ["echo", "hi"]})
        (record,) = session.wait(job, timeout=20)
        assert record.state == S.COMPLETED
        assert session.peek(job).strip() == "hi"
        time.sleep(1.5)  # a few retries of the down backend: still no verdict on its job
        assert session.get(stuck).state in (S.NEW, S.SUBMITTING)
        registry = session.aio.registry.sync  # what `corral monitor --status` reads

        def written() -> bool:
            health = {h.name: h for h in registry.backend_health()}
            return "slurm" in health and health["slurm"].down and "sbatch" in health["slurm"].reason

        assert wait_until(written, 10)
        assert JobState.FAILED not in {t.new for t in session.history(stuck)}


class _Crashing(AsyncBackend):
    """Starts, then its event-driven part dies: the backend is down and restarted."""

    starts = 0

    async def start(self, report: Any) -> None:
        type(self).starts += 1

    async def serve(self) -> None:
        raise RuntimeError("serve blew up")

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        return Submitted({a.uuid: "x" for a in attempts})

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        return {}

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        return None

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        return {}


@pytest.fixture
def crashing(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Crashing]]:
    real_load, real_known = registry.load, registry.known
    monkeypatch.setattr(registry, "load", lambda k: _Crashing if k == "crash" else real_load(k))
    monkeypatch.setattr(registry, "known", lambda k: k == "crash" or real_known(k))
    (home / "config.toml").write_text(
        "autostart = false\n[backends.crash]\nmin_interval = 0.05\nmax_interval = 0.2\n"
    )
    _Crashing.starts = 0
    yield _Crashing


def test_a_backend_whose_serve_dies_is_restarted_and_others_run(
    crashing: type[_Crashing],
) -> None:
    with Session(load_settings()) as session:
        waiting = session.submit({"command": ["true"], "backend": "crash"})
        job = session.submit({"command": ["true"]})
        (record,) = session.wait(job, timeout=20)
        assert record.state == S.COMPLETED
        assert wait_until(lambda: crashing.starts >= 3, 15)  # retried with back-off, never given up
        status = status_of(session, "crash")
        # (between two crashes it is up again: the last error is what stays)
        assert status is not None and status.last_error == "serve blew up", status
        assert status.errors >= 2 and status.reason in ("", "serve blew up"), status
        assert session.get(waiting).state != S.FAILED
        monitor = session.aio.monitor
        assert monitor is not None and monitor.alive


def test_a_backend_whose_extra_is_missing_is_refused_at_submit_and_down_in_the_monitor(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point = EntryPoint("fancy", "corral_no_such_module:Backend", registry.GROUP)
    real = registry._entry_points()
    monkeypatch.setattr(registry, "_entry_points", lambda: {**real, "fancy": point})
    registry.load.cache_clear()
    monkeypatch.setattr(registry, "load", registry.load.__wrapped__)
    (home / "config.toml").write_text("autostart = false\n")
    with Session(load_settings()) as session:
        with pytest.raises(BackendUnavailable, match=r"pip install 'corral\[fancy\]'"):
            session.submit({"command": ["true"], "backend": "fancy"})
        assert session.select() == []  # nothing stored


def test_a_stored_job_whose_backend_is_gone_fails_with_the_reason(
    home: Path, crashing: type[_Crashing], monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text("autostart = false\n")
    with Session(load_settings(), monitor="off") as session:
        job = session.submit({"command": ["true"], "backend": "crash"})
    monkeypatch.setattr(registry, "known", lambda k: k != "crash")  # no longer configured
    with Session(load_settings()) as session:
        (record,) = session.wait(job, timeout=20)
    assert record.state == S.FAILED
    assert "not configured" in record.reason


def test_bad_option_values_are_refused_before_anything_is_stored(home: Path) -> None:
    (home / "config.toml").write_text('autostart = false\n[backends.local]\nmax_cpus = "abc"\n')
    with Session(load_settings()) as session:
        with pytest.raises(ConfigError, match=r"backends\.local\.max_cpus: .*'abc'"):
            session.submit({"command": ["true"]})
        assert session.select() == []


def test_a_job_the_local_backend_cannot_run_is_refused(home: Path) -> None:
    (home / "config.toml").write_text("autostart = false\n[backends.local]\nmax_cpus = 2\n")
    with Session(load_settings()) as session:
        with pytest.raises(InvalidSpec, match="asks for 4 cpus"):
            session.submit({"command": ["true"], "resources": {"cpus": 4}})
        with pytest.raises(InvalidSpec, match=r"backend_options\.queue: unknown option"):
            session.submit({"command": ["true"], "backend_options": {"queue": "x"}})
        assert session.select() == []


def test_the_poll_loop_keeps_only_news() -> None:
    def obs(uuid: str, state: JobState, **kw: Any) -> Observation:
        return Observation(uuid, state, **kw)

    seen: dict[str, tuple[S | None, str]] = {
        "a": (S.RUNNING, ""), "b": (S.RUNNING, ""), "c": (S.SUBMITTED, ""),
        "h": (S.SUBMITTED, ""), "r": (S.SUBMITTED, "x"), "k": (S.SUBMITTED, "x"),
    }  # fmt: skip
    answer = {
        "a": obs("a", S.RUNNING),  # unchanged
        "b": obs("b", S.SUBMITTED, requeue=True),  # requeued: back to submitted
        "c": obs("c", S.RUNNING),
        "h": obs("h", S.SUBMITTED, held="x"),  # held while queued: same state, news all the same
        "r": obs("r", S.SUBMITTED),  # released
        "k": obs("k", S.SUBMITTED, held="x"),  # still held: nothing new
        "z": obs("z", S.RUNNING),  # nobody tracks it
    }
    assert [o.uuid for o in _news(answer, seen)] == ["b", "c", "h", "r"]


def test_exit_status_is_decoded_once() -> None:
    assert Observation.ended("u", 0).state == S.COMPLETING
    sig = Observation.ended("u", 137)
    assert (sig.state, sig.signal, sig.reason) == (S.COMPLETING, 9, "killed by signal 9")
    assert Observation.ended("u", 124, walltime=True).reason == "walltime exceeded"
    assert Observation.ended("u", 137, oom=True).state == S.FAILED
    assert Observation.ended("u", 143, killed=True).state == S.KILLED
    assert Observation.ended("u", 3).reason == "exit code 3"
