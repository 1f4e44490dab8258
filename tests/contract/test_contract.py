"""The backend contract, the same tests over every backend (as psij-python runs every test over
every executor): submit, status, cancel, reconcile after a crash between submit and commit,
output fetching, the error budget, a backend that cannot start, a refused submit.

They drive each backend the way a user's jobs meet it: through the Session and the monitor (the
crash test through the daemon), except the refused submit, which calls the backend's own submit
to get past the checks that refuse such a job at the CLI.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from corral import JobState, Session, load_settings
from corral import backends as registry
from corral.backends.base import AsyncBackend, Submitted
from corral.errors import TransientBackendError
from corral.lock import holder
from corral.records import Attempt, JobId, JobRecord, Observation
from corral.spec import parse_spec
from tests.cli.conftest import wait_until
from tests.contract.cases import PARAMS, BackendCase
from tests.crashkit import start_monitor

pytestmark = pytest.mark.timeout(180)
S = JobState


@pytest.fixture(params=PARAMS)
def case(request: pytest.FixtureRequest, home: Path) -> BackendCase:
    backend_case: BackendCase = request.param
    (home / "config.toml").write_text("autostart = false\n" + backend_case.config)
    return backend_case


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "witness"


def submit_all(session: Session, specs: Sequence[dict[str, Any]]) -> list[JobId]:
    return [session.submit(spec) for spec in specs]


def test_jobs_run_report_their_exit_code_and_outputs_are_fetched(
    case: BackendCase, witness: Path
) -> None:
    with Session(load_settings()) as session:
        ids = submit_all(
            session,
            [case.job(0, witness=witness), case.job(1, code=3, witness=witness, seconds=1.0)],
        )
        ok, bad = session.wait(ids, timeout=120)
        assert (ok.state, ok.exit_code) == (S.COMPLETED, 0), ok.reason
        assert (bad.state, bad.exit_code, bad.reason) == (S.FAILED, 3, "exit code 3")
        assert ok.output_dir is not None and (ok.output_dir / "out.txt").is_file()
        seen = {t.new for t in session.history(bad.id) if t.applied}
        assert {S.SUBMITTING, S.SUBMITTED, S.RUNNING, S.COMPLETING, S.FAILED} <= seen
        case.ran_once(session.settings.work_dir, witness, [ok, bad])


def test_a_running_job_is_cancelled(case: BackendCase, witness: Path) -> None:
    with Session(load_settings()) as session:
        (job,) = submit_all(session, [case.job(0, seconds=60, witness=witness)])
        assert wait_until(lambda: session.get(job).state == S.RUNNING, 60), session.get(job)
        session.kill(job)
        (record,) = session.wait(job, timeout=60)
        assert record.state == S.KILLED


def test_a_crash_between_submit_and_commit_is_reconciled(
    case: BackendCase, home: Path, witness: Path
) -> None:
    with Session(load_settings(), monitor="off") as session:
        ids = submit_all(session, [case.job(i, seconds=0.2, witness=witness) for i in range(4)])
    crashed = start_monitor(home, "after_submit")  # the backend has them, the registry does not
    crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    with Session(load_settings(), monitor="off") as session:
        assert {session.get(i).state for i in ids} == {S.SUBMITTING}
    monitor = start_monitor(home)
    try:
        assert wait_until(lambda: holder(home / "monitor.lock") == monitor.pid, 30)
        with Session(load_settings(), monitor="off") as session:
            records = session.wait(ids, timeout=120)
    finally:
        monitor.send_signal(signal.SIGTERM)
        _, err = monitor.communicate(timeout=30)
    assert [r.state for r in records] == [S.COMPLETED] * 4, [(r.id, r.reason) for r in records]
    case.ran_once(load_settings().work_dir, witness, records)
    assert monitor.returncode == 0, err[-2000:]


class _HalfBroken(AsyncBackend):
    """Any backend, with every other status call failing."""

    def __init__(self, inner: AsyncBackend) -> None:  # no super(): the inner one is configured
        self.inner, self.config, self.options = inner, inner.config, inner.options
        self.calls = 0

    async def start(self, report: Any) -> None:
        await self.inner.start(report)

    async def serve(self) -> None:
        await self.inner.serve()

    async def stop(self) -> None:
        await self.inner.stop()

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        return await self.inner.submit(attempts)

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        self.calls += 1
        if self.calls % 2:
            raise TransientBackendError("status failed (injected)")
        return await self.inner.status(attempts)

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        await self.inner.cancel(attempts)

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        return await self.inner.reconcile(attempts)

    async def fetch_outputs(self, attempt: Attempt) -> None:
        await self.inner.fetch_outputs(attempt)


@pytest.fixture
def half_broken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_HalfBroken]]:
    made: list[_HalfBroken] = []
    real = registry.build

    def build(config: Any) -> AsyncBackend:
        made.append(_HalfBroken(real(config)))
        return made[-1]

    monkeypatch.setattr(registry, "build", build)
    yield made


def test_status_failing_half_the_time_fails_no_job(
    case: BackendCase, witness: Path, half_broken: list[_HalfBroken]
) -> None:
    with Session(load_settings()) as session:
        ids = submit_all(session, [case.job(i, seconds=1.0, witness=witness) for i in range(3)])
        records = session.wait(ids, timeout=120)
        monitor = session.aio.monitor
        assert monitor is not None
        (status,) = [s for s in monitor.statuses() if s.name == case.backend]
    assert [r.state for r in records] == [S.COMPLETED] * 3, [r.reason for r in records]
    assert status.errors >= 1 and half_broken[0].calls >= 2


def test_a_backend_that_cannot_start_is_down_and_fails_no_job(
    case: BackendCase,
    witness: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    home: Path,
) -> None:
    if not case.breakable:
        pytest.skip(f"{case.id} needs nothing outside this process that could go missing")
    case.break_start(monkeypatch, tmp_path, home)
    with Session(load_settings()) as session:
        (job,) = submit_all(session, [case.job(0, witness=witness)])
        monitor = session.aio.monitor
        assert monitor is not None

        def down() -> bool:
            assert monitor is not None
            return any(s.name == case.backend and s.state == "down" for s in monitor.statuses())

        assert wait_until(down, 30)
        (status,) = [s for s in monitor.statuses() if s.name == case.backend]
        assert status.reason
        time.sleep(1.0)  # it is retried: still no verdict on the job
        record: JobRecord = session.get(job)
        assert record.state in (S.NEW, S.SUBMITTING), record
        assert monitor.alive


def test_a_refused_job_is_reported_refused(case: BackendCase, tmp_path: Path) -> None:
    settings = load_settings()
    spec = parse_spec(case.refused())
    attempt = Attempt(
        JobId(1),
        "c0ffee00-0000-4000-8000-000000000001",
        1,
        spec,
        tmp_path / "job" / "attempt-1",
        S.SUBMITTING,
    )
    from corral import sandbox

    sandbox.prepare(spec, attempt.attempt_dir)

    async def go() -> Submitted:
        backend = registry.build(settings.backend_config(case.backend))
        await backend.start(lambda obs: None)
        try:
            return await backend.submit([attempt])
        finally:
            await backend.stop()

    result = asyncio.run(go())
    assert attempt.uuid in result.refused and attempt.uuid not in result.accepted
    assert result.refused[attempt.uuid]
