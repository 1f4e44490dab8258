"""Monitor behaviour that needs a backend we control: blocking backends run in the thread pool,
failing status calls back off without failing jobs, and one bulk status call per cycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from corral import JobState, Session, load_settings
from corral import backends as backend_registry
from corral.backends.base import BackendConfig, BlockingBackend, Report, Submitted
from corral.errors import InvalidSpec, TransientBackendError
from corral.records import Attempt, Observation


class ToyBlockingBackend(BlockingBackend):
    """A blocking backend: jobs "run" for one status call, then complete. Records its calls."""

    instances: ClassVar[list[ToyBlockingBackend]] = []
    fail_status: ClassVar[int] = 0
    partial_submit: ClassVar[bool] = False

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.status_calls: list[int] = []
        self.threads: set[str] = set()
        self.seen: set[str] = set()
        self.submitted: list[str] = []
        self.batches: list[int] = []
        ToyBlockingBackend.instances.append(self)

    def _note(self) -> None:
        self.threads.add(threading.current_thread().name)

    def start(self, report: Report) -> None:
        self._note()

    def stop(self) -> None:
        self._note()

    def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        self._note()
        self.batches.append(len(attempts))
        accepted = {a.uuid: f"toy-{a.uuid}" for a in attempts}
        if ToyBlockingBackend.partial_submit:  # the second half of the batch hits a timeout
            ToyBlockingBackend.partial_submit = False
            accepted = dict(list(accepted.items())[: len(attempts) // 2])
            self.submitted += list(accepted)
            raise TransientBackendError("sbatch timed out", accepted=accepted)
        self.submitted += list(accepted)
        return Submitted(accepted)

    def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        self._note()
        self.status_calls.append(len(attempts))
        if ToyBlockingBackend.fail_status > 0:
            ToyBlockingBackend.fail_status -= 1
            raise TransientBackendError("scheduler timed out")
        result = {}
        for a in attempts:
            state = JobState.COMPLETING if a.uuid in self.seen else JobState.RUNNING
            self.seen.add(a.uuid)
            result[a.uuid] = Observation(
                a.uuid, state, exit_code=0 if state == JobState.COMPLETING else None
            )
        return result

    def cancel(self, attempts: Sequence[Attempt]) -> None:
        self._note()

    def fetch_outputs(self, attempt: Attempt) -> None:
        self._note()

    def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        return {}


@pytest.fixture
def toy(home: Path, monkeypatch: pytest.MonkeyPatch) -> type[ToyBlockingBackend]:
    ToyBlockingBackend.instances = []
    ToyBlockingBackend.fail_status = 0
    ToyBlockingBackend.partial_submit = False
    real_load = backend_registry.load

    def load(kind: str) -> type[Any]:
        return ToyBlockingBackend if kind == "toy" else real_load(kind)

    monkeypatch.setattr(backend_registry, "load", load)
    real_available, real_known = backend_registry.available, backend_registry.known
    monkeypatch.setattr(backend_registry, "available", lambda: [*real_available(), "toy"])
    monkeypatch.setattr(backend_registry, "known", lambda kind: kind == "toy" or real_known(kind))
    (home / "config.toml").write_text(
        "autostart = false\n[backends.toy]\nmin_interval = 0.05\nmax_interval = 0.2\n"
    )
    return ToyBlockingBackend


def sweep(n: int) -> dict[str, object]:
    return {
        "command": ["true"],
        "backend": "toy",
        "splitter": {"kind": "args", "args": [[str(i)] for i in range(n)]},
    }


def test_blocking_backend_runs_in_the_thread_pool_with_bulk_status(
    toy: type[ToyBlockingBackend],
) -> None:
    with Session(load_settings()) as session:
        job = session.submit(sweep(50))
        (master,) = session.wait(job, timeout=30)
    assert master.state == JobState.COMPLETED
    (backend,) = toy.instances
    assert backend.threads and all(t.startswith("corral-toy") for t in backend.threads)
    # one call per cycle for all jobs, never one per job
    assert max(backend.status_calls) == 50
    assert len(backend.status_calls) < 10


def test_one_at_a_time_submits_within_the_window_reach_the_backend_together(
    toy: type[ToyBlockingBackend], home: Path
) -> None:
    """A submit from this process kicks the backend's loop, which waits ``flush_window`` for
    more: a loop of single submits is one backend call per window, not one per job."""
    settings = load_settings(overrides={"flush_window": 2.0})
    with Session(settings) as session:
        ids = [session.submit({"command": ["true"], "backend": "toy"}) for _ in range(20)]
        records = session.wait(ids, timeout=60)
    assert all(r.state == JobState.COMPLETED for r in records)
    (backend,) = toy.instances
    assert sum(backend.batches) == 20
    assert len(backend.batches) <= 4, backend.batches  # (20 submits take far less than 2 s)


def test_failing_status_backs_off_and_never_fails_jobs(toy: type[ToyBlockingBackend]) -> None:
    toy.fail_status = 4
    with Session(load_settings()) as session:
        job = session.submit(sweep(3))
        deadline = time.monotonic() + 10
        statuses = []
        while time.monotonic() < deadline:
            monitor = session.aio.monitor
            assert monitor is not None
            statuses = monitor.statuses()
            if statuses and statuses[0].errors >= 4:
                break
            time.sleep(0.02)
        assert statuses[0].errors >= 4
        assert statuses[0].last_error == "scheduler timed out"
        assert JobState.FAILED not in session.get(job).counts
        (master,) = session.wait(job, timeout=30)
    assert master.state == JobState.COMPLETED


def test_unknown_backend_is_refused_before_anything_is_stored(session: Session) -> None:
    with pytest.raises(InvalidSpec, match="unknown backend 'nosuch'"):
        session.submit({"command": ["true"], "backend": "nosuch"})
    assert session.select() == []


def test_bad_slurm_option_is_refused_before_anything_is_stored(session: Session) -> None:
    with pytest.raises(InvalidSpec, match=r"backend_options\.partitoin: unknown option"):
        session.submit(
            {"command": ["true"], "backend": "slurm", "backend_options": {"partitoin": "x"}}
        )
    assert session.select() == []


def test_partial_submit_keeps_what_went_through_and_retries_the_rest(
    toy: type[ToyBlockingBackend],
) -> None:
    toy.partial_submit = True
    with Session(load_settings()) as session:
        job = session.submit(sweep(10))
        (master,) = session.wait(job, timeout=30)
    assert master.state == JobState.COMPLETED
    (backend,) = toy.instances
    assert sorted(backend.submitted) == sorted(set(backend.submitted))  # none twice
    assert len(backend.submitted) == 10
