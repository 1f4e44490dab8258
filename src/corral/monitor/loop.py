"""One poll loop per backend instance: it builds and starts the backend, then runs submit,
cancel, reconcile and one bulk status call per cycle, never two overlapping calls, with an
adaptive interval and an error budget that backs off instead of failing jobs.

Failures stay inside the loop (the contract's rules, see ``corral.backends.base``): a backend that
cannot load, start or answer is *down*: its jobs keep their state, work for it waits, and it is
retried with back-off while every other backend's loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from corral import faults, sandbox
from corral.backends.base import AsyncBackend, Submitted
from corral.errors import (
    BackendUnavailable,
    CorralError,
    StorageFull,
    TransientBackendError,
)
from corral.records import Attempt, BackendHealth, JobId, Observation
from corral.states import JobState

log = logging.getLogger("corral.monitor")
DOWN_AFTER = 3
"""Consecutive failed cycles after which a backend that still starts is shown as down."""


@dataclass(slots=True)
class BackendStatus:
    """What ``corral monitor`` shows per backend (and the monitor writes to the registry)."""

    name: str
    kind: str = ""
    state: str = "starting"
    reason: str = ""
    since: float = field(default_factory=time.time)
    active: int = 0
    interval: float = 0.0
    last_poll: float | None = None
    polls: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str = ""
    calls: dict[str, int] = field(default_factory=dict)

    def set_state(self, state: str, reason: str = "") -> bool:
        """True if the state changed (the monitor then writes the health at once)."""
        changed = state != self.state
        if changed:
            self.since = time.time()
        self.state, self.reason = state, reason
        return changed

    def record(self) -> BackendHealth:
        """The plain record the monitor writes (the same fields, frozen, with the time)."""
        shared = {
            f.name: getattr(self, f.name) for f in fields(BackendHealth) if f.name != "updated_at"
        }
        return BackendHealth(**{**shared, "calls": dict(self.calls), "updated_at": time.time()})


Factory = Callable[[], AsyncBackend]


class BackendLoop:
    """Drives one backend instance for the monitor."""

    def __init__(
        self,
        name: str,
        factory: Factory,
        report: Callable[[Observation], None],
        *,
        kind: str = "",
        min_interval: float = 0.5,
        max_interval: float = 30.0,
        window: float = 0.0,
        on_health: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.window = window
        self._factory = factory
        self._report = report
        self._on_health = on_health
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.backend: AsyncBackend | None = None
        self.tracked: dict[JobId, Attempt] = {}
        self._seen: dict[str, Seen] = {}  # what the registry was last told, per uuid
        self._to_submit: list[Attempt] = []
        self._to_reconcile: list[Attempt] = []
        self._to_cancel: dict[str, Attempt] = {}
        self._kick = asyncio.Event()
        self._changed = False
        self._counted: dict[str, int] = {}
        self.status = BackendStatus(name, kind=kind)

    @property
    def up(self) -> bool:
        return self.status.state == "up"

    # ----------------------------------------------------------- fed by the monitor
    def submit(self, attempts: Sequence[Attempt]) -> None:
        self._to_submit.extend(attempts)
        self.kick()

    def reconcile(self, attempts: Sequence[Attempt]) -> None:
        self._to_reconcile.extend(attempts)
        self.kick()

    def track(self, attempt: Attempt) -> None:
        self.tracked[attempt.id] = attempt
        self._seen.setdefault(attempt.uuid, (attempt.state, ""))

    def cancel(self, attempts: Sequence[Attempt]) -> None:
        fresh = [a for a in attempts if a.uuid not in self._to_cancel]
        self._to_cancel.update({a.uuid: a for a in fresh})
        if fresh:
            self.kick()

    def forget(self, job_id: JobId) -> None:
        attempt = self.tracked.pop(job_id, None)
        if attempt is not None:
            self._seen.pop(attempt.uuid, None)
            self._to_cancel.pop(attempt.uuid, None)

    def kick(self) -> None:
        self._kick.set()

    def report(self, obs: Observation) -> None:
        if self._seen.get(obs.uuid, (None, ""))[0] != obs.state:
            self._changed = True
        self._seen[obs.uuid] = (obs.state, obs.held)
        self._report(obs)

    async def fetch_outputs(self, attempt: Attempt) -> None:
        if self.backend is None or not self.up:
            raise BackendUnavailable(f"backend {self.name} is down: {self.status.reason}")
        await self.backend.fetch_outputs(attempt)

    # ----------------------------------------------------------- the loop
    async def run(self) -> None:
        """Build, start and serve the backend; while it cannot, it is down and retried."""
        failures = 0
        while True:
            try:
                await self._serve_once()
            except Exception as exc:  # the loop must survive anything a backend throws
                was_up = self.up
                failures = 1 if was_up else failures + 1  # it was up: retry soon
                self._down(exc, starting=not was_up)
            delay = min(self.min_interval * 2 ** min(failures, 8), self.max_interval)
            self.status.interval = delay
            await asyncio.sleep(delay)

    async def _serve_once(self) -> None:
        backend = self._factory()
        self.backend = backend
        try:
            await backend.start(self.report)
            self._counted = dict(backend.call_counts())
            if self.status.set_state("up"):
                self._on_health()
            log.info("backend %s is up", self.name)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(backend.serve())
                tg.create_task(self._cycles())
        finally:
            self.backend = None
            with contextlib.suppress(Exception):
                await backend.stop()

    def _down(self, exc: BaseException, *, starting: bool = False) -> None:
        reason = _describe(exc)
        self.status.errors += 1
        self.status.last_error = reason
        if self.status.set_state("down", reason):
            self._on_health()
            log.warning(
                "backend %s is down%s: %s",
                self.name,
                " (cannot start)" if starting else "",
                reason,
                exc_info=not isinstance(exc, CorralError | ExceptionGroup),
            )

    async def _cycles(self) -> None:
        interval = self.min_interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._kick.wait()
                    # A kick is a submit or a kill in this process, and one-at-a-time submits
                    # come in bursts: what arrives within the window joins this cycle (one
                    # staging, one launch, one flush for many jobs, not one each: a third of
                    # the CPU of a loop of submits).
                    await asyncio.sleep(self.window)
            self._kick.clear()
            self._changed = False
            ok = await self._cycle()
            if not ok:
                backoff = self.min_interval * 2 ** min(self.status.consecutive_errors, 8)
                interval = min(backoff, self.max_interval)
            elif self._changed:
                interval = self.min_interval
            else:
                interval = min(interval * 2, self.max_interval)
            self.status.interval = interval

    async def _cycle(self) -> bool:
        """One cycle; False if a backend call failed (the jobs are untouched)."""
        try:
            await self._do_reconcile()
            await self._do_cancel()
            await self._do_submit()
            await self._do_status()
        except Exception as exc:  # the loop must survive anything a backend throws
            self.status.consecutive_errors += 1
            unavailable = isinstance(exc, BackendUnavailable | StorageFull)
            if unavailable or self.status.consecutive_errors >= DOWN_AFTER:
                self._down(exc)
            else:
                self.status.errors += 1
                self.status.last_error = _describe(exc)
                log.warning(
                    "backend %s: %s",
                    self.name,
                    self.status.last_error,
                    exc_info=not isinstance(exc, CorralError),
                )
            return False
        self.status.consecutive_errors = 0
        if self.status.set_state("up"):
            log.info("backend %s is up again", self.name)
            self._on_health()
        return True

    def _backend(self) -> AsyncBackend:
        if self.backend is None:
            raise BackendUnavailable(f"backend {self.name} is not started")
        return self.backend

    async def _do_reconcile(self) -> None:
        if not self._to_reconcile:
            return
        batch = self._to_reconcile
        found = await self._backend().reconcile(batch)
        self._to_reconcile = []
        for attempt in batch:
            if attempt.uuid in found:
                self._accepted(attempt, found[attempt.uuid], "found again after a restart")
            else:
                self._to_submit.append(attempt)

    async def _do_cancel(self) -> None:
        if not self._to_cancel:
            return
        batch = list(self._to_cancel.values())
        await self._backend().cancel(batch)
        for attempt in batch:
            self.report(Observation(attempt.uuid, JobState.KILLED, "killed by user"))

    async def _do_submit(self) -> None:
        if not self._to_submit:
            return
        batch, self._to_submit = self._to_submit, []
        size = self._backend().submit_chunk or len(batch)
        for start in range(0, len(batch), size):
            try:
                await self._submit_chunk(batch[start : start + size])
            except BaseException:
                self._to_submit = batch[start + size :] + self._to_submit  # not tried yet
                raise

    async def _submit_chunk(self, batch: list[Attempt]) -> None:
        try:
            ready = await asyncio.to_thread(_prepare_all, batch)
        except BaseException:
            self._to_submit = batch + self._to_submit
            raise
        for attempt, why in ready:
            if why:
                self.report(Observation(attempt.uuid, JobState.FAILED, why))
        batch = [a for a, why in ready if not why]
        try:
            result = await self._backend().submit(batch)
        except TransientBackendError as exc:
            self._settle(batch, Submitted(exc.accepted, exc.refused), retry_rest=True)
            raise
        except BaseException:
            self._to_submit = batch + self._to_submit  # nothing went through: try again later
            raise
        faults.point("after_submit")  # the backend has the jobs, the registry does not know yet
        self._settle(batch, result, retry_rest=False)

    def _settle(self, batch: Sequence[Attempt], result: Submitted, *, retry_rest: bool) -> None:
        rest: list[Attempt] = []
        for attempt in batch:
            if attempt.uuid in result.accepted:
                self._accepted(attempt, result.accepted[attempt.uuid], "submitted")
            elif attempt.uuid in result.refused:
                reason = f"refused by {self.name}: {result.refused[attempt.uuid]}"
                self.report(Observation(attempt.uuid, JobState.FAILED, reason))
            elif retry_rest:
                rest.append(attempt)
            else:
                reason = f"{self.name} neither accepted nor refused the job (a backend bug)"
                self.report(Observation(attempt.uuid, JobState.FAILED, reason))
        self._to_submit = rest + self._to_submit

    def _accepted(self, attempt: Attempt, native_id: str, reason: str) -> None:
        attempt = replace(
            attempt, native_id=native_id or attempt.native_id, state=JobState.SUBMITTED
        )
        self.tracked[attempt.id] = attempt
        self.report(
            Observation(attempt.uuid, JobState.SUBMITTED, reason, native_id=native_id or None)
        )

    async def _do_status(self) -> None:
        self.status.active = len(self.tracked)
        if not self.tracked:
            return
        backend = self._backend()
        observations = await backend.status(list(self.tracked.values()))
        self.status.last_poll = time.time()
        self.status.polls += 1
        self.status.calls = self._calls_since_last(backend.call_counts())
        for obs in _news(observations, self._seen):
            self.report(obs)

    def _calls_since_last(self, counts: Mapping[str, int]) -> dict[str, int]:
        delta = {k: n - self._counted.get(k, 0) for k, n in counts.items()}
        self._counted = dict(counts)
        return {k: n for k, n in delta.items() if n}


Seen = tuple[JobState | None, str]
"""What the registry was last told of an attempt: its state and hold reason ("" if not held)."""


def _news(observed: Mapping[str, Observation], seen: Mapping[str, Seen]) -> list[Observation]:
    """What a status answer says that is new: a state other than the one last reported (a
    requeue is a move back to submitted, so it differs too), or a hold put on or taken off a
    queued job. Uuids nobody tracks are dropped."""
    return [
        obs
        for uuid, obs in observed.items()
        if uuid in seen and (obs.state, obs.held) != seen[uuid]
    ]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return str(exc) or type(exc).__name__


def _prepare_all(batch: Sequence[Attempt]) -> list[tuple[Attempt, str]]:
    """Stage each attempt's dir; ``StorageFull`` (nothing failed: retry later) on a full disk."""
    result = []
    for attempt in batch:
        try:
            sandbox.prepare(attempt.spec, attempt.attempt_dir, attempt.uuid)
            result.append((attempt, ""))
        except OSError as exc:
            if exc.errno in sandbox.NO_SPACE:
                raise StorageFull(f"no space left in the job dirs ({exc.filename})") from exc
            result.append((attempt, f"cannot prepare the job dir: {exc}"))
        except CorralError as exc:
            result.append((attempt, f"cannot prepare the job dir: {exc}"))
    return result
