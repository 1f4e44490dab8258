"""``AsyncSession``: the async API every other surface (sync facade, CLI, shell) calls into."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from corral import admit, environment, holds, identity_files
from corral.changes import ChangeFeed
from corral.config import Settings, load_settings
from corral.daemon import ensure_daemon
from corral.errors import (
    InvalidInput,
    InvalidSpec,
    MonitorBusy,
    MonitorUnavailable,
    NotFound,
    WaitTimeout,
)
from corral.holds import HoldResult
from corral.inputs import check_timeout
from corral.jobfiles import delete_dirs, read_from, tail_lines
from corral.lock import holder
from corral.monitor import Monitor
from corral.records import BackendHealth, JobId, JobRecord, Page, Transition
from corral.registry import Selection
from corral.registry.aio import AsyncRegistry
from corral.registry.status import MonitorStatus
from corral.selection import parse_states
from corral.spec import JobSpec, parse_spec
from corral.splitters import split
from corral.states import FINAL, JobState
from corral.watch import MonitorWatch, describe

MonitorMode = Literal["inprocess", "daemon", "off"]
IdLike = JobId | int | str
CHECK_EVERY = 1.0  # a wait looks at the monitor at least this often, changes or not


def as_id(value: IdLike) -> JobId:
    return JobId.of(value)  # InvalidInput for a float, None, 2**70...


def as_ids(values: IdLike | Iterable[IdLike]) -> tuple[JobId, ...]:
    return JobId.many(values)


class AsyncSession:
    """Submit, inspect and control jobs.

    ``monitor="inprocess"`` (the default) runs the monitor inside this session when no other
    process holds the registry, and hands active jobs to a background daemon on exit;
    ``"daemon"`` makes sure a detached daemon runs after each submit (the CLI's way); ``"off"``
    only reads and writes the registry.
    """

    def __init__(
        self, settings: Settings | None = None, *, monitor: MonitorMode = "inprocess"
    ) -> None:
        self.settings = settings or load_settings()
        self.mode = monitor
        self._stack = AsyncExitStack()
        self._reg = AsyncRegistry(self.settings.registry, self.settings.work_dir)
        self._monitor: Monitor | None = None
        self._feed = ChangeFeed(self._reg)
        self._callbacks: list[Callable[[Transition], None]] = []
        self._follower: asyncio.Task[None] | None = None
        self._has_callbacks = asyncio.Event()
        self._entered_seq = 0
        self._watcher: asyncio.Task[None] | None = None

    @property
    def monitor(self) -> Monitor | None:
        """The in-process monitor, if this session runs one."""
        return self._monitor

    @property
    def registry(self) -> AsyncRegistry:
        return self._reg

    async def __aenter__(self) -> AsyncSession:
        await self._stack.__aenter__()
        try:
            await self._stack.enter_async_context(self._reg)
            self._entered_seq = await self._feed.last_seq()  # callbacks see changes from here
            if self.mode == "inprocess":
                with contextlib.suppress(MonitorBusy):
                    self._monitor = await self._stack.enter_async_context(
                        Monitor(self.settings, self._reg, on_transitions=self._feed.poke)
                    )
            tg = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._watcher = tg.create_task(self._feed.run())
            self._follower = tg.create_task(self._follow())
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in (self._follower, self._watcher):
            if task is not None:
                task.cancel()
        had_monitor, self._monitor = self._monitor is not None, None
        # Not the body's exception: the task group would re-raise it wrapped in an
        # ExceptionGroup, and `with Session() as s: s.get(999)` must raise NotFound.
        await self._stack.aclose()
        if had_monitor and self.settings.autostart:  # (also when that monitor died)
            await self._hand_over()

    async def _hand_over(self) -> None:
        """Jobs still active when this session ends keep moving under a daemon."""
        async with AsyncRegistry(self.settings.registry, self.settings.work_dir) as reg:
            active = await reg.call(reg.sync.count_active)
        if active:
            await asyncio.to_thread(ensure_daemon, self.settings)

    # ------------------------------------------------------------------ submit
    async def submit(self, spec: JobSpec | Mapping[str, Any]) -> JobId:
        """Store a job (split into subjobs if it has a splitter); the monitor submits it."""
        self._require_monitor()
        if not isinstance(spec, JobSpec):
            spec = parse_spec(spec)
        job_id = await self._reg.call(self._checked_add, spec)
        await self._after_write()
        return job_id

    def _checked_add(self, spec: JobSpec) -> JobId:
        """Check, split and store, in one hop to the db thread (three hops made a submit
        a third slower): bad input fails here, before anything is stored."""
        admit.check_submit(self.settings, spec)
        spec = self._capture_environment(spec)
        return self._reg.sync.add(spec, split(spec))

    def _capture_environment(self, spec: JobSpec) -> JobSpec:
        """The submitter's environment, now (see ``corral.environment``)."""
        kind = self.settings.backend_kind(spec.backend)
        root = identity_files.job_root(self.settings.work_dir, self._reg.sync.registry_uuid)
        return environment.capture(spec, kind, root / "env")

    def _require_monitor(self) -> None:
        """A write nobody would act on is refused: this session's monitor died, and with
        autostart off no daemon takes over (with it on, ``_after_write`` starts one)."""
        monitor = self._monitor
        if monitor is not None and not monitor.alive and not self.settings.autostart:
            raise MonitorUnavailable(
                f"the monitor in this process stopped: {describe(monitor.error)} (autostart is off)"
            ) from monitor.error

    async def _after_write(self) -> None:
        if self._monitor is not None and self._monitor.alive:
            self._monitor.kick()
        elif (self.mode == "daemon" or self._monitor is not None) and self.settings.autostart:
            # (a dead in-process monitor left the lock free: the daemon takes over its jobs)
            await asyncio.to_thread(ensure_daemon, self.settings)

    async def copy(self, job: IdLike) -> JobId:
        """Submit a new job with the same spec."""
        record = await self.get(job)
        if record.problem:  # (its spec is a placeholder)
            raise InvalidSpec(f"job {record.id} cannot be copied: {record.problem}")
        return await self.submit(record.spec)

    # ------------------------------------------------------------------ read
    async def get(self, job: IdLike) -> JobRecord:
        return await self._reg.call(self._reg.sync.get, as_id(job))

    async def select(
        self,
        selection: Selection | None = None,
        *,
        states: Iterable[JobState | str] = (),
        names: Iterable[str] = (),
        tags: Iterable[str] = (),
        backends: Iterable[str] = (),
    ) -> list[JobRecord]:
        """Top-level jobs matching a selection, e.g. ``select(states=["failed"], tags=["x"])``."""
        selection = selection or Selection(
            states=parse_states(states),
            names=tuple(names),
            tags=tuple(tags),
            backends=tuple(backends),
        )
        return await self._reg.call(self._reg.sync.select, selection)

    async def page(
        self, selection: Selection | None = None, *, after: IdLike | None = None, limit: int = 100
    ) -> Page:
        """One page of the jobs matching ``selection`` (default: every top-level job), with
        the per-state counts of the whole selection; pass ``page.next_after`` as ``after`` for
        the next one (keyset paging: as fast at the end of 100,000 jobs as at the start)."""
        if limit < 1:
            raise InvalidInput(f"limit: expected a whole number >= 1, got {limit}")
        start = None if after is None else as_id(after)
        return await self._reg.call(self._reg.sync.page, selection or Selection(), start, limit)

    async def progress(self, jobs: IdLike | Iterable[IdLike] | Selection) -> dict[JobState, int]:
        """How many runnable units of these jobs are in each state (a master counts its
        subjobs, a plain job itself): what a progress bar shows."""
        ids = await self.resolve(jobs)
        counts: dict[JobState, int] = {}
        for record in await self._reg.call(self._reg.sync.get_many, ids):
            for state, n in (record.counts or {record.state: 1}).items():
                counts[state] = counts.get(state, 0) + n
        return counts

    async def monitor_status(self) -> MonitorStatus:
        """Who drives this registry: the lock's holder, the lease row, the active jobs and
        each backend's last health (what ``corral monitor --status`` and a dashboard show)."""
        pid = await asyncio.to_thread(holder, self.settings.lock_path)
        lease = await self._reg.call(self._reg.sync.lease_info)
        active = await self._reg.call(self._reg.sync.count_active)
        health = await self._reg.call(self._reg.sync.backend_health)
        return MonitorStatus(pid is not None, pid, lease, active, health)

    async def backend_status(self) -> list[BackendHealth]:
        """Each backend instance's health as the monitor last wrote it."""
        return await self._reg.call(self._reg.sync.backend_health)

    async def subjobs(self, job: IdLike) -> list[JobRecord]:
        return await self._reg.call(self._reg.sync.subjobs, as_id(job).job)

    async def history(self, job: IdLike) -> list[Transition]:
        return await self._reg.call(self._reg.sync.history, as_id(job))

    async def resolve(self, jobs: IdLike | Iterable[IdLike] | Selection) -> tuple[JobId, ...]:
        """Ids from explicit ids or a selection (checked to exist)."""
        if isinstance(jobs, Selection):
            if jobs.empty:
                raise InvalidInput("give job ids or a selection (state, name, tag, backend)")
            return tuple(r.id for r in await self.select(jobs))
        ids = as_ids(jobs)
        await self._reg.call(self._reg.sync.get_many, ids)
        return ids

    # ------------------------------------------------------------------ control
    async def kill(self, jobs: IdLike | Iterable[IdLike] | Selection) -> list[JobId]:
        self._require_monitor()
        ids = await self.resolve(jobs)
        touched = await self._reg.call(self._reg.sync.request_kill, ids)
        await self._after_write()
        return touched

    async def hold(
        self, jobs: IdLike | Iterable[IdLike] | Selection, *, reason: str = "held by the user"
    ) -> HoldResult:
        """Hold queued jobs (a sweep: its subjobs) in one scheduler call per backend; running
        ones are refused ("running jobs cannot be held"). See ``corral.holds``."""
        ids = await self.resolve(jobs)
        return await holds.change(self.settings, self._reg, ids, reason=reason)

    async def release(self, jobs: IdLike | Iterable[IdLike] | Selection) -> HoldResult:
        """Release held jobs (one scheduler call per backend)."""
        return await holds.change(self.settings, self._reg, await self.resolve(jobs), reason=None)

    async def resubmit(
        self, jobs: IdLike | Iterable[IdLike] | Selection, *, include_all: bool = False
    ) -> list[JobId]:
        """New attempts for failed/killed (sub)jobs, or every final one with ``include_all``."""
        self._require_monitor()
        ids = await self.resolve(jobs)
        touched = await self._reg.call(self._reg.sync.resubmit, ids, include_all=include_all)
        await self._after_write()
        return touched

    async def remove(
        self, jobs: IdLike | Iterable[IdLike] | Selection, *, force: bool = False
    ) -> list[JobRecord]:
        """Delete jobs from the registry and their job dirs. Active ones need ``force``: they
        are killed and kept as tombstones (hidden from every selection) until the monitor sees
        every unit final, then deleted with their dirs; nothing is left running unrecorded."""
        ids = await self.resolve(jobs)
        removal = await self._reg.call(self._reg.sync.remove, ids, force=force)
        if removal.pending:
            await self._after_write()
        await asyncio.to_thread(delete_dirs, [r.job_dir for r in removal.removed])
        return sorted(removal.removed + removal.pending, key=lambda r: r.id.job)

    async def gc(self, older_than: float, *, dry_run: bool = False) -> list[JobRecord]:
        """Remove final jobs created more than ``older_than`` seconds ago (with their dirs)."""
        found = await self.select(Selection(states=tuple(sorted(FINAL)), older_than=older_than))
        if dry_run or not found:
            return found
        return await self.remove([r.id for r in found])

    async def wait(
        self,
        jobs: IdLike | Iterable[IdLike] | Selection,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- the sync facade has no scope to pass
    ) -> list[JobRecord]:
        """Until every given job is final; ``WaitTimeout`` (also a ``TimeoutError``) after
        ``timeout`` seconds (a finite number >= 0, else ``InvalidInput``).

        Raises ``MonitorUnavailable`` if no monitor drives the jobs and none can be started
        (see ``corral.watch``): a dead monitor never makes this hang.
        """
        timeout = check_timeout(timeout)
        ids = await self.resolve(jobs)
        watch = MonitorWatch(self.settings, self._monitor)
        wanted = set(ids)
        try:
            async with asyncio.timeout(timeout), self._feed.subscribe() as changes:
                # Subscribed first, read second: what changes after the read is in the stream.
                records = await self._reg.call(self._reg.sync.get_many, ids)
                pending = {r.id for r in records if not r.state.final}
                while pending:
                    await watch.check()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(CHECK_EVERY):
                            for change in await changes.next():
                                if change.applied and change.id in wanted:
                                    # the last change of a job says it all (a retry: failed, new)
                                    if change.new.final:
                                        pending.discard(change.id)
                                    else:
                                        pending.add(change.id)
                return await self._reg.call(self._reg.sync.get_many, ids)
        except TimeoutError:
            # (timeout=0 may expire before the first look: jobs already final are not late)
            records = await self._reg.call(self._reg.sync.get_many, ids)
            if all(r.state.final for r in records):
                return records
            raise WaitTimeout(f"wait timed out after {timeout:g} s") from None

    async def peek(self, job: IdLike, *, stderr: bool = False, lines: int = 20) -> str:
        """The last ``lines`` lines of a job's stdout (or stderr)."""
        record = await self.get(job)
        if record.is_master:
            raise InvalidInput(f"job {record.id} has subjobs; peek one of them, e.g. {record.id}.0")
        path = self.output_path(record, "stderr" if stderr else "stdout")
        return await asyncio.to_thread(tail_lines, path, lines)

    async def follow(
        self, job: IdLike, *, stderr: bool = False, poll: float = 0.2
    ) -> AsyncGenerator[str, None]:
        """A job's stdout (or stderr) as it grows, from the start, until the job is final."""
        record = await self.get(job)
        path = self.output_path(record, "stderr" if stderr else "stdout")
        offset = 0
        while True:
            record = await self.get(record.id)
            chunk, offset = await asyncio.to_thread(read_from, path, offset)
            if chunk:
                yield chunk
            elif record.state.final:
                return
            else:
                await asyncio.sleep(poll)

    @staticmethod
    def output_path(record: JobRecord, stream: str) -> Path:
        if record.attempt_dir is None:
            raise NotFound(f"job {record.id} has no job dir")
        return record.attempt_dir / stream

    # ------------------------------------------------------------------ events
    def on_transition(self, callback: Callable[[Transition], None]) -> None:
        """Call ``callback`` for every state change stored from now on (any process's)."""
        self._callbacks.append(callback)
        if self._follower is not None:
            self._follower.get_loop().call_soon_threadsafe(self._has_callbacks.set)

    async def last_seq(self) -> int:
        """The sequence number of the newest stored transition (0 if none): ``changes(since=)``
        from it sees only what comes after."""
        return await self._feed.last_seq()

    async def changes(self, since: int | None = None) -> AsyncGenerator[Transition, None]:
        """Every transition stored after sequence number ``since`` (default: from now on) by
        any process, in order, forever (``applied`` is False for an observation that changed
        nothing). Resume a later stream from the last ``Transition.seq`` seen: sequence
        numbers are never reused. All of a session's streams share one registry watcher."""
        async with self._feed.subscribe(since) as stream:
            while True:
                for change in await stream.next():
                    yield change

    async def _follow(self) -> None:
        await self._has_callbacks.wait()  # nobody listens: no subscription, no polling
        async for change in self.changes(since=self._entered_seq):
            if change.applied:
                for callback in self._callbacks:
                    callback(change)
