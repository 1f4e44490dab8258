"""The sim verbs, once (``SimCore``), and the two backends that drive them: ``SimBackend`` on
the event loop (file I/O in ``asyncio.to_thread``) and ``BlockingSimBackend`` in its limiter."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from corral import sandbox
from corral.backends.base import (
    AsyncBackend,
    BackendBase,
    BackendConfig,
    BlockingBackend,
    Report,
    Submitted,
)
from corral.backends.sim import model
from corral.backends.sim.model import BlockingSimOptions, SimJobOptions, SimOptions
from corral.backends.sim.store import VERBS, SimJob, Store, sim_dir
from corral.errors import BackendUnavailable, InvalidSpec, TransientBackendError
from corral.records import Attempt, Observation
from corral.states import JobState


class SimCore:
    """The verbs as plain blocking functions, shared by both modes; the status latency is left
    to each mode (a coroutine sleeps, a thread blocks). Thread-safe: verbs hold a lock while
    they touch the files, status computes its answer outside it."""

    def __init__(self, config: BackendConfig, options: SimOptions) -> None:
        self.name = config.name
        self.options = options
        self.store = Store(sim_dir(config.work_dir, config.name))
        self._lock = threading.Lock()
        self._plans: dict[str, model.Plan] = {}

    def call_counts(self) -> dict[str, int]:
        # no lock: called on the event loop, and reading a few ints is safe under the GIL
        return {verb: self.store.calls[verb] for verb in VERBS}

    def start(self) -> None:
        self._check_up()
        try:
            with self._lock:
                self.store.create()
                self.store.refresh()
        except OSError as exc:
            raise BackendUnavailable(f"sim {self.name}: {_describe(exc)}") from exc

    def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        with self._verb("submit", len(attempts)):
            refused = {a.uuid: why for a in attempts if (why := _refusal(a))}
            fresh = [a for a in attempts if a.uuid not in refused]
            accepted = self.store.accept(fresh, time.time()) if fresh else {}
        return Submitted(accepted, refused)

    def status(self, attempts: Sequence[Attempt]) -> dict[str, Observation]:
        with self._verb("status", len(attempts)) as call:
            if model.status_fails(self.options.seed, call, self.options.status_failure_rate):
                raise TransientBackendError(f"sim {self.name}: status call {call} failed")
            jobs, cancelled = self.store.jobs, self.store.cancelled
            found = [(a, jobs.get(a.uuid), cancelled.get(a.uuid)) for a in attempts]
        now = time.time()
        return {a.uuid: self._observe(a, job, at, now) for a, job, at in found}

    def cancel(self, attempts: Sequence[Attempt]) -> None:
        with self._verb("cancel", len(attempts)):
            self.store.cancel([a.uuid for a in attempts], time.time())

    def reconcile(self, attempts: Sequence[Attempt]) -> dict[str, str]:
        with self._verb("reconcile", len(attempts)):
            by_label = self.store.by_label
            return {a.uuid: by_label[a.label].native_id for a in attempts if a.label in by_label}

    def fetch_outputs(self, attempt: Attempt) -> None:
        with self._verb("fetch", 1):
            if not attempt.attempt_dir.is_dir():
                return
            # What a real job would have left: its stdout, and each declared output that names
            # one file (a pattern has no single name to invent), in the dir the job ran in.
            _write(attempt.attempt_dir / "stdout", f"sim job {attempt.uuid}\n")
            run_dir = sandbox.run_dir(attempt.spec, attempt.attempt_dir)
            for name in attempt.spec.outputs:
                if not any(c in name for c in "*?[") and run_dir.is_dir():
                    target = run_dir / name
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    _write(target, f"sim output of {attempt.uuid}\n")

    def _check_up(self) -> None:
        if self.options.unavailable:
            raise BackendUnavailable(self.options.unavailable)

    @contextlib.contextmanager
    def _verb(self, verb: str, jobs: int) -> Iterator[int]:
        """Hold the lock, log the call first (it counts even if it then fails) and yield its
        number; a file that cannot be read or written (a full disk) is a transient error."""
        self._check_up()
        with self._lock:
            try:
                yield self.store.record_call(verb, jobs, time.time())
            except OSError as exc:
                raise TransientBackendError(f"sim {self.name}: {_describe(exc)}") from exc

    def _observe(
        self, attempt: Attempt, job: SimJob | None, cancelled_at: float | None, now: float
    ) -> Observation:
        if job is None:
            return Observation(attempt.uuid, JobState.UNKNOWN, f"sim has no job {attempt.label}")
        plan = self._plans.get(attempt.uuid)
        if plan is None:
            try:
                options = model.job_options(attempt.spec.backend_options)
            except InvalidSpec as exc:  # checked at submit: only a changed spec gets here
                return Observation(attempt.uuid, JobState.FAILED, str(exc))
            walltime = attempt.spec.resources.walltime
            plan = self._plans[attempt.uuid] = model.plan(
                attempt.uuid, self.options, options, walltime
            )
        cancelled = None if cancelled_at is None else cancelled_at - job.accepted_at
        return model.observe(
            attempt.uuid,
            plan,
            now - job.accepted_at,
            cancelled=cancelled,
            native_id=job.native_id,
        )


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _refusal(attempt: Attempt) -> str:
    try:
        return model.job_options(attempt.spec.backend_options).refuse
    except InvalidSpec as exc:  # a spec that skipped check_job is refused, not a failed call
        return str(exc)


def _describe(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


class _OnCore(BackendBase):
    """What both modes share: their checked options feed one ``SimCore``."""

    JobOptions = SimJobOptions
    options: SimOptions

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.core = SimCore(config, self.options)

    def call_counts(self) -> Mapping[str, int]:
        return self.core.call_counts()


class SimBackend(_OnCore, AsyncBackend):
    """The simulated backend on the event loop (entry point ``sim``)."""

    Options = SimOptions

    async def start(self, report: Report) -> None:
        await asyncio.to_thread(self.core.start)

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        return await asyncio.to_thread(self.core.submit, attempts)

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        await asyncio.sleep(self.options.status_latency)
        return await asyncio.to_thread(self.core.status, attempts)

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        await asyncio.to_thread(self.core.cancel, attempts)

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        return await asyncio.to_thread(self.core.reconcile, attempts)

    async def fetch_outputs(self, attempt: Attempt) -> None:
        await asyncio.to_thread(self.core.fetch_outputs, attempt)


class BlockingSimBackend(_OnCore, BlockingBackend):
    """The simulated backend as a blocking client library (entry point ``sim-blocking``): the
    core runs it in its own limiter of ``threads`` threads."""

    Options = BlockingSimOptions
    options: BlockingSimOptions

    def start(self, report: Report) -> None:
        self.core.start()

    def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        return self.core.submit(attempts)

    def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        # holds one of this instance's limiter threads, as a slow blocking client would
        time.sleep(self.options.status_latency)
        return self.core.status(attempts)

    def cancel(self, attempts: Sequence[Attempt]) -> None:
        self.core.cancel(attempts)

    def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        return self.core.reconcile(attempts)

    def fetch_outputs(self, attempt: Attempt) -> None:
        self.core.fetch_outputs(attempt)
