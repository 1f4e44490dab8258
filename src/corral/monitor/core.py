"""The monitor: an async context manager owning one task group.

Inside it: an intake loop (new jobs and kill requests from any process, noticed through the
registry's ``watch()``), one ``BackendLoop`` per backend instance, a flusher that applies all
observations of a short window in one fenced transaction, a bounded pool of finalisers that
collect outputs off the poll path, and a health writer that records each backend's state in the
registry. Only one monitor per registry: it holds the ``flock`` and the lease epoch that fences
its writes.

What may fail, and what it does: a backend is contained in its loop (down, retried; see
``corral.monitor.loop``). A registry step that fails (a full disk, a locked or broken file) backs
off and is retried, keeping what it had not written. Only ``LeaseLost`` (a newer monitor took
over) or a bug that escapes those boundaries stops the monitor: it then records ``error``,
releases its lease and lock (so a watcher can start another) and never cancels the task that
entered it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

from corral import __version__, backends, faults, sandbox
from corral.config import Settings
from corral.errors import (
    BackendError,
    BackendUnavailable,
    CorralError,
    LeaseLost,
    MonitorBusy,
    MonitorUnavailable,
    StorageFull,
)
from corral.jobfiles import delete_dirs
from corral.lock import holder, try_lock, unlock
from corral.monitor.loop import BackendLoop, BackendStatus
from corral.records import Attempt, JobId, Observation, Transition
from corral.registry.aio import AsyncRegistry
from corral.states import JobState
from corral.watch import describe

log = logging.getLogger("corral.monitor")
TransitionCallback = Callable[[Sequence[Transition]], None]
INTAKE_POLL = 0.2  # how soon a submit or kill from another process is noticed
INTAKE_COALESCE = 0.005  # after a kick from this process, so that a burst is one claim
HEARTBEAT = 10.0
HEALTH_EVERY = 5.0  # backend health is written at least this often (and at once on a change)
RETRY_FINALISE = 5.0  # a finalisation that hit a down backend or a full disk is tried again


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
        self._health_kick = asyncio.Event()
        self._intake_watch = registry.watch(INTAKE_POLL, self._intake_kick)
        self._intake_due = True  # the first step always looks
        self._finalise: asyncio.Queue[Attempt] = asyncio.Queue()
        self._finalise_later: list[Attempt] = []
        self._exits: dict[str, Observation] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._inner: asyncio.TaskGroup | None = None
        self.idle_since: float | None = None
        self.error: BaseException | None = None
        """Why the monitor stopped by itself (None while it runs or after a clean exit)."""
        self.step_errors = 0

    @property
    def alive(self) -> bool:
        return self.error is None and self._runner is not None and not self._runner.done()

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
            await self._release()
            raise
        if self.error is not None:
            error = self.error
            await self.__aexit__(None, None, None)
            raise MonitorUnavailable(f"the monitor could not start: {describe(error)}") from error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._runner is not None and not self._runner.done():
                with contextlib.suppress(Exception):
                    await self._flush()
                self._runner.cancel()
            if self._tg is not None:
                await self._tg.__aexit__(None, None, None)
                self._tg = None
        finally:
            await self._release()

    async def _release(self) -> None:
        """Give up the lease and the lock (once; also when the monitor dies by itself)."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(Exception):
            await self._reg.call(self._reg.sync.release_lease, self.epoch)
        unlock(self._lock_fd)
        self._lock_fd = None

    async def _serve(self, ready: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._inner = tg
                await self._startup()
                tg.create_task(self._forever("flush", self._flush_step))
                tg.create_task(self._forever("intake", self._intake_step))
                tg.create_task(self._forever("heartbeat", self._heartbeat_step))
                tg.create_task(self._forever("health", self._health_step))
                for _ in range(self.settings.finalisers):
                    tg.create_task(self._finaliser())
                ready.set()
        except Exception as exc:  # the monitor stops, but never takes its caller's task with it
            self.error = exc
            log.error("the monitor stopped: %s", describe(exc), exc_info=exc)
            await self._release()
        finally:
            ready.set()

    async def _forever(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` again and again. A failing step (a full disk, a locked registry) backs
        off and is retried; only a lost lease ends the monitor."""
        failures = 0
        while True:
            try:
                await step()
                failures = 0
            except LeaseLost:
                raise
            except Exception as exc:  # the one boundary where a monitor task must survive
                failures += 1
                self.step_errors += 1
                delay = min(0.25 * 2 ** min(failures, 7), 30.0)
                log.warning(
                    "monitor %s: %s (retrying in %.1f s)",
                    name,
                    exc,
                    delay,
                    exc_info=not isinstance(exc, CorralError),
                )
                await asyncio.sleep(delay)

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

    def accept(self, claimed: Sequence[Attempt]) -> None:
        """Submit attempts claimed for this monitor: by its intake or a submit in this process."""
        if not claimed:
            return
        faults.point("after_claim")  # 'submitting' is stored, nothing launched yet
        by_loop: dict[str, list[Attempt]] = {}
        for attempt in claimed:
            loop = self._loop_for(attempt)
            if loop is not None:
                by_loop.setdefault(loop.name, []).append(attempt)
        for name, batch in by_loop.items():
            self._loops[name].submit(batch)

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
        if attempt.problem and attempt.state in (JobState.NEW, JobState.SUBMITTING):
            # Its stored spec no longer validates (corral.spec.read_stored_spec): never submit
            # the placeholder; fail the job with the reason, so it can be seen and removed.
            self.report(Observation(attempt.uuid, JobState.FAILED, attempt.problem))
            return None
        name = attempt.spec.backend
        loop = self._loops.get(name)
        if loop is None:
            kind = self.settings.backend_kind(name)
            if not backends.known(kind):
                reason = f"backend {name!r} is not configured (no backend type {kind!r})"
                self.report(Observation(attempt.uuid, JobState.FAILED, reason))
                return None
            section = self.settings.backends.get(name)
            config = self.settings.backend_config(name, registry_uuid=self._reg.sync.registry_uuid)
            loop = BackendLoop(
                name,
                lambda: backends.build(config),
                self.report,
                kind=kind,
                min_interval=section.min_interval if section else config.min_interval,
                max_interval=section.max_interval if section else config.max_interval,
                window=self.settings.flush_window,
                on_health=self._health_kick.set,
            )
            self._loops[name] = loop
            assert self._inner is not None
            self._inner.create_task(loop.run())
        self._owner[attempt.id] = loop
        return loop

    # ----------------------------------------------------------------- steps
    async def _intake_step(self) -> None:
        sync = self._reg.sync
        look = await self._intake_watch.next()
        self.idle_since = None if self._owner else (self.idle_since or time.monotonic())
        if look == "kick":  # a burst of one-at-a-time submits kicks often: claim them together
            await asyncio.sleep(INTAKE_COALESCE)
            self._intake_kick.clear()
        self._intake_due = self._intake_due or bool(look)
        if not self._intake_due:
            return
        claimed, kills, removed = await self._reg.call(sync.intake, self.epoch)
        self.accept(claimed)
        for attempt in kills:
            loop = self._owner.get(attempt.id) or self._loop_for(attempt)
            if loop is not None:
                loop.cancel([attempt])
        if removed:  # tombstones of rm --force whose units are all final now
            await asyncio.to_thread(delete_dirs, removed)
        self._intake_due = False  # only now: a failed step looks again

    async def _flush_step(self) -> None:
        await self._flush_needed.wait()
        await asyncio.sleep(self.settings.flush_window)  # coalesce a burst into one transaction
        await self._flush()

    async def _flush(self) -> None:
        self._flush_needed.clear()
        if not self._pending:
            return
        updates, self._pending = self._pending, []
        try:
            applied = await self._reg.call(self._reg.sync.apply, self.epoch, updates)
        except BaseException:
            self._pending = updates + self._pending  # nothing was written: keep it for the retry
            self._flush_needed.set()
            raise
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

    async def _heartbeat_step(self) -> None:
        await asyncio.sleep(HEARTBEAT)
        await self._reg.call(self._reg.sync.heartbeat, self.epoch)

    async def _health_step(self) -> None:
        """Each backend's health to the registry: at once on a change, else every few
        seconds; also gives finalisations that waited for a backend or for space a new try."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HEALTH_EVERY):
                await self._health_kick.wait()
        self._health_kick.clear()
        later, self._finalise_later = self._finalise_later, []
        for attempt in later:
            self._finalise.put_nowait(attempt)
        if self._loops:
            records = [loop.status.record() for loop in self._loops.values()]
            await self._reg.call(self._reg.sync.put_backend_health, self.epoch, records)

    # ----------------------------------------------------------------- finalisation
    async def _finaliser(self) -> None:
        while True:
            attempt = await self._finalise.get()
            try:
                self.report(await self._finalise_one(attempt))
            except (BackendError, StorageFull) as exc:
                if isinstance(exc, BackendError) and not _retryable(exc):
                    self.report(Observation(attempt.uuid, JobState.FAILED, f"fetch failed: {exc}"))
                    continue
                log.info("finalising %s waits: %s", attempt.id, exc)
                self._finalise_later.append(attempt)  # no verdict on the job: try again later
            except OSError as exc:
                if exc.errno not in sandbox.NO_SPACE:
                    self._failed_finalising(attempt, exc)
                    continue
                log.info("finalising %s waits for space: %s", attempt.id, exc)
                self._finalise_later.append(attempt)
            except sandbox.Sabotaged as exc:  # the job got in its own way: its own failure
                self.report(Observation(attempt.uuid, JobState.FAILED, str(exc)))
            except Exception as exc:  # one bad job must not stop finalisation of the others
                self._failed_finalising(attempt, exc)

    def _failed_finalising(self, attempt: Attempt, exc: BaseException) -> None:
        log.exception("finalising %s failed", attempt.id, exc_info=exc)
        self.report(Observation(attempt.uuid, JobState.FAILED, f"finalisation failed: {exc}"))

    async def _finalise_one(self, attempt: Attempt) -> Observation:
        loop = self._owner.get(attempt.id)
        if loop is not None:
            await loop.fetch_outputs(attempt)
        missing: list[str] = []
        if attempt.spec.outputs:  # (most jobs declare none: no thread hop for nothing)
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


def _retryable(exc: BackendError) -> bool:
    return exc.transient or isinstance(exc, BackendUnavailable)
