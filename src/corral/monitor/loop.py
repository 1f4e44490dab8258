"""One poll loop per backend instance: submit, cancel, reconcile and one bulk status call per
cycle, never two overlapping calls, adaptive interval, and an error budget that backs off
instead of failing jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from corral import sandbox
from corral.backends.base import Backend
from corral.errors import BackendError, CorralError, TransientBackendError
from corral.records import Attempt, JobId, Observation
from corral.states import JobState

log = logging.getLogger("corral.monitor")


@dataclass(slots=True)
class BackendStatus:
    """What ``corral monitor`` shows per backend."""

    name: str
    active: int = 0
    interval: float = 0.0
    last_poll: float | None = None
    polls: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str = ""


class BackendLoop:
    """Drives one backend instance for the monitor."""

    def __init__(self, name: str, backend: Backend, report: Callable[[Observation], None]) -> None:
        self.name = name
        self.backend = backend
        self._report = report
        self.tracked: dict[JobId, Attempt] = {}
        self._last: dict[str, JobState] = {}
        self._to_submit: list[Attempt] = []
        self._to_reconcile: list[Attempt] = []
        self._to_cancel: dict[str, Attempt] = {}
        self._kick = asyncio.Event()
        self._changed = False
        self.status = BackendStatus(name)

    # ----------------------------------------------------------- fed by the monitor
    def submit(self, attempts: Sequence[Attempt]) -> None:
        self._to_submit.extend(attempts)
        self.kick()

    def reconcile(self, attempts: Sequence[Attempt]) -> None:
        self._to_reconcile.extend(attempts)
        self.kick()

    def track(self, attempt: Attempt) -> None:
        self.tracked[attempt.id] = attempt

    def cancel(self, attempts: Sequence[Attempt]) -> None:
        fresh = [a for a in attempts if a.uuid not in self._to_cancel]
        self._to_cancel.update({a.uuid: a for a in fresh})
        if fresh:
            self.kick()

    def forget(self, job_id: JobId) -> None:
        attempt = self.tracked.pop(job_id, None)
        if attempt is not None:
            self._last.pop(attempt.uuid, None)
            self._to_cancel.pop(attempt.uuid, None)

    def kick(self) -> None:
        self._kick.set()

    def report(self, obs: Observation) -> None:
        if self._last.get(obs.uuid) != obs.state:
            self._last[obs.uuid] = obs.state
            self._changed = True
        self._report(obs)

    # ----------------------------------------------------------- the loop
    async def run(self) -> None:
        await self.backend.start(self.report)
        try:
            async with asyncio.TaskGroup() as tg:
                serve = getattr(self.backend, "serve", None)
                if serve is not None:
                    tg.create_task(serve())
                tg.create_task(self._cycles())
        finally:
            with contextlib.suppress(Exception):
                await self.backend.stop()

    async def _cycles(self) -> None:
        config = self.backend.config
        interval = config.min_interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._kick.wait()
            self._kick.clear()
            self._changed = False
            ok = await self._cycle()
            if not ok:
                backoff = config.min_interval * 2 ** min(self.status.consecutive_errors, 8)
                interval = min(backoff, config.max_interval)
            elif self._changed:
                interval = config.min_interval
            else:
                interval = min(interval * 2, config.max_interval)
            self.status.interval = interval

    async def _cycle(self) -> bool:
        """One cycle; False if a backend call failed (the jobs are untouched)."""
        try:
            await self._do_reconcile()
            await self._do_cancel()
            await self._do_submit()
            await self._do_status()
        except Exception as exc:  # the loop must survive anything a backend throws
            self.status.errors += 1
            self.status.consecutive_errors += 1
            self.status.last_error = str(exc) or type(exc).__name__
            log.warning(
                "backend %s: %s",
                self.name,
                self.status.last_error,
                exc_info=not isinstance(exc, CorralError),
            )
            return False
        self.status.consecutive_errors = 0
        return True

    async def _do_reconcile(self) -> None:
        if not self._to_reconcile:
            return
        batch = self._to_reconcile
        found = await self.backend.reconcile(batch)
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
        await self.backend.cancel(batch)
        for attempt in batch:
            self.report(Observation(attempt.uuid, JobState.KILLED, "killed by user"))

    async def _do_submit(self) -> None:
        if not self._to_submit:
            return
        batch, self._to_submit = self._to_submit, []
        ready = await asyncio.to_thread(_prepare_all, batch)
        failed = [(a, why) for a, why in ready if why]
        for attempt, why in failed:
            self.report(Observation(attempt.uuid, JobState.FAILED, why))
        batch = [a for a, why in ready if not why]
        try:
            native = await self.backend.submit(batch)
        except TransientBackendError as exc:
            for attempt in batch:
                if attempt.uuid in exc.accepted:
                    self._accepted(attempt, exc.accepted[attempt.uuid], "submitted")
            self._to_submit = [a for a in batch if a.uuid not in exc.accepted] + self._to_submit
            raise
        except BackendError as exc:
            for attempt in batch:
                self.report(Observation(attempt.uuid, JobState.FAILED, f"submit failed: {exc}"))
            return
        except Exception:
            self._to_submit = batch + self._to_submit
            raise
        for attempt in batch:
            if attempt.uuid in native:
                self._accepted(attempt, native[attempt.uuid], "submitted")
            else:
                self.report(
                    Observation(attempt.uuid, JobState.FAILED, "the backend refused the job")
                )

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
        observations = await self.backend.status(list(self.tracked.values()))
        self.status.last_poll = time.time()
        self.status.polls += 1
        for obs in observations.values():
            self.report(obs)


def _prepare_all(batch: Sequence[Attempt]) -> list[tuple[Attempt, str]]:
    result = []
    for attempt in batch:
        try:
            sandbox.prepare(attempt.spec, attempt.attempt_dir)
            result.append((attempt, ""))
        except (OSError, CorralError) as exc:
            result.append((attempt, f"cannot prepare the job dir: {exc}"))
    return result
