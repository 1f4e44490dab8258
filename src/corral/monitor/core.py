"""The monitor: an async context manager owning one task group.

Inside it: an intake loop (new jobs and kill requests from any process, noticed through
``PRAGMA data_version``), one ``BackendLoop`` per backend instance, a flusher that applies all
observations of a short window in one fenced transaction, and a bounded pool of finalisers that
collect outputs off the poll path. Only one monitor per registry: it holds the ``flock`` and the
lease epoch that fences its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from corral import __version__, backends, faults, sandbox
from corral.backends.base import Backend, ThreadedBackend
from corral.config import Settings
from corral.errors import BackendUnavailable, CorralError, MonitorBusy
from corral.lock import holder, try_lock, unlock
from corral.monitor.loop import BackendLoop, BackendStatus
from corral.records import Attempt, JobId, Observation, Transition
from corral.registry.aio import AsyncRegistry
from corral.states import JobState

log = logging.getLogger("corral.monitor")
TransitionCallback = Callable[[Sequence[Transition]], None]
INTAKE_POLL = 0.2  # how soon a submit or kill from another process is noticed
HEARTBEAT = 10.0


class Monitor:
    """Drives every active job of one registry until the context exits."""

    def __init__(
        self,
        settings: Settings,
        registry: AsyncRegistry,
        on_transitions: TransitionCallback | None = None,
    ) -> None:
        self.settings = settings
        self._reg = registry
        self._on_transitions = on_transitions
        self._lock_fd: int | None = None
        self.epoch = 0
        self._loops: dict[str, BackendLoop] = {}
        self._owner: dict[JobId, BackendLoop] = {}
        self._pending: list[Observation] = []
        self._flush_needed = asyncio.Event()
        self._intake_kick = asyncio.Event()
        self._finalise: asyncio.Queue[Attempt] = asyncio.Queue()
        self._exits: dict[str, Observation] = {}
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="corral-backend")
        self._tg: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._inner: asyncio.TaskGroup | None = None
        self.idle_since: float | None = None

    # ----------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Monitor:
        fd = try_lock(self.settings.lock_path)
        if fd is None:
            pid = holder(self.settings.lock_path)
            raise MonitorBusy(
                f"another monitor (pid {pid}) already drives {self.settings.registry}"
            )
        self._lock_fd = fd
        try:
            self.epoch = await self._reg.call(
                self._reg.sync.acquire_lease, os.getpid(), __version__
            )
            self._tg = asyncio.TaskGroup()
            await self._tg.__aenter__()
            ready = asyncio.Event()
            self._runner = self._tg.create_task(self._serve(ready))
            await ready.wait()
        except BaseException:
            unlock(fd)
            self._lock_fd = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._runner is not None and not self._runner.done():
                with contextlib.suppress(CorralError):
                    await self._flush()
                self._runner.cancel()
            if self._tg is not None:
                await self._tg.__aexit__(None, None, None)
            with contextlib.suppress(CorralError):
                await self._reg.call(self._reg.sync.release_lease, self.epoch)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._lock_fd is not None:
                unlock(self._lock_fd)
                self._lock_fd = None

    async def _serve(self, ready: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            self._inner = tg
            await self._startup()
            tg.create_task(self._flusher())
            tg.create_task(self._intake())
            tg.create_task(self._heartbeat())
            for _ in range(self.settings.finalisers):
                tg.create_task(self._finaliser())
            ready.set()

    async def _startup(self) -> None:
        """Re-attach everything a previous monitor left active."""
        for attempt in await self._reg.call(self._reg.sync.active_attempts):
            loop = self._loop_for(attempt)
            if loop is None:
                continue
            if attempt.state == JobState.SUBMITTING:
                loop.reconcile([attempt])
            else:
                loop.track(attempt)
                if attempt.state == JobState.COMPLETING:
                    self._finalise.put_nowait(attempt)
            loop.kick()

    # ----------------------------------------------------------------- public
    def kick(self) -> None:
        """Look at the registry now (a submit or kill happened in this process)."""
        self._intake_kick.set()

    def statuses(self) -> list[BackendStatus]:
        return [loop.status for loop in self._loops.values()]

    @property
    def active(self) -> int:
        return len(self._owner)

    def report(self, obs: Observation) -> None:
        if obs.state == JobState.COMPLETING:
            self._exits[obs.uuid] = obs
        self._pending.append(obs)
        self._flush_needed.set()

    # ----------------------------------------------------------------- backends
    def _loop_for(self, attempt: Attempt) -> BackendLoop | None:
        name = attempt.spec.backend
        loop = self._loops.get(name)
        if loop is None:
            try:
                backend = self._make_backend(name)
            except BackendUnavailable as exc:
                self.report(Observation(attempt.uuid, JobState.FAILED, str(exc)))
                return None
            loop = BackendLoop(name, backend, self.report)
            self._loops[name] = loop
            assert self._inner is not None
            self._inner.create_task(loop.run())
        self._owner[attempt.id] = loop
        return loop

    def _make_backend(self, name: str) -> Backend:
        cls = backends.load(self.settings.backend_kind(name))
        instance: Any = cls(self.settings.backend_config(name))
        if getattr(cls, "blocking", False):
            return ThreadedBackend(instance, self._executor)
        backend: Backend = instance
        return backend

    # ----------------------------------------------------------------- tasks
    async def _intake(self) -> None:
        sync = self._reg.sync
        version = -1
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INTAKE_POLL):
                    await self._intake_kick.wait()
            kicked = self._intake_kick.is_set()
            self._intake_kick.clear()
            self.idle_since = None if self._owner else (self.idle_since or time.monotonic())
            now_version = await self._reg.call(sync.data_version)
            if not kicked and now_version == version:
                continue
            version = now_version
            claimed = await self._reg.call(sync.claim_new, self.epoch)
            if claimed:
                faults.point("after_claim")  # 'submitting' is stored, nothing launched yet
            by_loop: dict[str, list[Attempt]] = {}
            for attempt in claimed:
                loop = self._loop_for(attempt)
                if loop is not None:
                    by_loop.setdefault(loop.name, []).append(attempt)
            for name, batch in by_loop.items():
                self._loops[name].submit(batch)
            for attempt in await self._reg.call(sync.kill_requests):
                loop = self._owner.get(attempt.id) or self._loop_for(attempt)
                if loop is not None:
                    loop.cancel([attempt])

    async def _flusher(self) -> None:
        while True:
            await self._flush_needed.wait()
            await asyncio.sleep(self.settings.flush_window)  # coalesce a burst into one transaction
            await self._flush()

    async def _flush(self) -> None:
        self._flush_needed.clear()
        if not self._pending:
            return
        updates, self._pending = self._pending, []
        applied = await self._reg.call(self._reg.sync.apply, self.epoch, updates)
        self._dispatch(applied)

    def _dispatch(self, applied: Sequence[Transition]) -> None:
        renewed = False
        for change in applied:
            if not change.applied:
                continue
            loop = self._owner.get(change.id)
            if loop is None:
                continue
            if change.new == JobState.COMPLETING and change.id in loop.tracked:
                self._finalise.put_nowait(loop.tracked[change.id])
            elif change.new.final or change.new == JobState.NEW:
                loop.forget(change.id)
                self._owner.pop(change.id, None)
                renewed = renewed or change.new == JobState.NEW
        if renewed:
            self.kick()
        if self._on_transitions is not None and applied:
            try:
                self._on_transitions(applied)
            except Exception:
                log.exception("a transition callback failed")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            await self._reg.call(self._reg.sync.heartbeat, self.epoch)

    async def _finaliser(self) -> None:
        while True:
            attempt = await self._finalise.get()
            try:
                self.report(await self._finalise_one(attempt))
            except Exception as exc:  # one bad job must not stop finalisation of the others
                log.exception("finalising %s failed", attempt.id)
                self.report(
                    Observation(attempt.uuid, JobState.FAILED, f"finalisation failed: {exc}")
                )

    async def _finalise_one(self, attempt: Attempt) -> Observation:
        loop = self._owner.get(attempt.id)
        if loop is not None:
            await loop.backend.fetch_outputs(attempt)
        output_dir = attempt.attempt_dir.parent / "output"
        missing = await asyncio.to_thread(
            sandbox.collect_outputs, attempt.spec, attempt.attempt_dir, output_dir
        )
        exit_obs = self._exits.pop(attempt.uuid, None)
        if exit_obs is None:
            record = await self._reg.call(self._reg.sync.get, attempt.id)
            code, sig = record.exit_code, record.signal
        else:
            code, sig = exit_obs.exit_code, exit_obs.signal
        if sig:
            return Observation(attempt.uuid, JobState.FAILED, f"killed by signal {sig}")
        if code not in (0, None):
            return Observation(attempt.uuid, JobState.FAILED, f"exit code {code}")
        if missing:
            return Observation(
                attempt.uuid, JobState.FAILED, "missing declared output: " + ", ".join(missing)
            )
        return Observation(attempt.uuid, JobState.COMPLETED, "exit code 0")
