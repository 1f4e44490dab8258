"""``AsyncSession``: the async API every other surface (sync facade, CLI, shell) calls into."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from corral import admit, holds, monitor_control
from corral.absent import NoRegistry
from corral.changes import Callbacks, ChangeFeed
from corral.config import Settings, load_settings
from corral.daemon import ensure_daemon
from corral.errors import (
    InvalidInput,
    InvalidSpec,
    MonitorBusy,
    MonitorUnavailable,
)
from corral.holds import HoldResult
from corral.inputs import check_timeout
from corral.jobfiles import delete_dirs, follow_text, output_of, output_path, tail_text
from corral.monitor import Monitor
from corral.records import Attempt, BackendHealth, JobId, JobRecord, Page, Transition
from corral.registry import Selection
from corral.registry.aio import AsyncRegistry
from corral.registry.status import MonitorStatus
from corral.selection import parse_states
from corral.spec import JobSpec, parse_spec
from corral.states import FINAL, JobState
from corral.waiting import Progress, wait_final
from corral.watch import MonitorWatch, describe

MonitorMode = Literal["inprocess", "foreground", "daemon", "off"]
IdLike = JobId | int | str
Targets = IdLike | Iterable[IdLike] | Selection  # what every bulk verb takes
Poster = Callable[..., object]  # runs a callable on the session's loop soon


def as_id(value: IdLike) -> JobId:
    return JobId.of(value)  # InvalidInput for a float, None, 2**70...


def as_ids(values: IdLike | Iterable[IdLike]) -> tuple[JobId, ...]:
    return JobId.many(values)


class AsyncSession:
    """Submit, inspect and control jobs.

    ``monitor="inprocess"`` (the default) runs the monitor inside this session when no other
    process holds the registry, and hands active jobs to a background daemon on exit;
    ``"foreground"`` is that, or ``MonitorBusy`` if another process drives it (``corral monitor``);
    ``"daemon"`` makes sure a detached daemon runs after each submit (the CLI's way); ``"off"``
    only reads and writes the registry. ``create=False`` opens a registry only if one exists:
    with none yet, ``monitor_status`` and ``backend_status`` answer (nothing ever ran) and every
    other verb raises ``NotFound``; nothing is created (a read must not create a registry).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        monitor: MonitorMode = "inprocess",
        create: bool = True,
    ) -> None:
        self.settings = settings or load_settings()
        self.mode = monitor
        self._create = create
        self._stack = AsyncExitStack()
        self._reg = AsyncRegistry(self.settings.registry, self.settings.work_dir)
        self._monitor: Monitor | None = None
        self._feed = ChangeFeed(self._reg)
        self._callbacks = Callbacks()
        self._follower: asyncio.Task[None] | None = None
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
            if not self._create and not await asyncio.to_thread(self.settings.registry.exists):
                self._reg = NoRegistry(self.settings.registry, self.settings.work_dir)
                self._feed = ChangeFeed(self._reg)
                return self  # (nothing to follow, nothing a monitor could drive)
            await self._stack.enter_async_context(self._reg)
            since = await self._feed.last_seq()  # callbacks see the changes from here on
            if self.mode in ("inprocess", "foreground"):
                busy = (MonitorBusy,) if self.mode == "inprocess" else ()
                with contextlib.suppress(*busy):
                    self._monitor = await self._stack.enter_async_context(
                        Monitor(self.settings, self._reg, on_transitions=self._feed.poke)
                    )
            tg = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._watcher = tg.create_task(self._feed.run())
            self._follower = tg.create_task(self._callbacks.run(self._feed, since))
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
            await monitor_control.hand_over(self.settings)  # its jobs keep moving

    # ------------------------------------------------------------------ submit
    async def submit(self, spec: JobSpec | Mapping[str, Any]) -> JobId:
        """Store a job (split into subjobs if it has a splitter); the monitor submits it."""
        self._require_monitor()
        spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)
        post = asyncio.get_running_loop().call_soon_threadsafe
        job_id, handed = await self._reg.call(self._store, spec, self._claiming_epoch(), post)
        if not handed:
            await self._after_write()
        return job_id

    def _submit_blocking(self, spec: JobSpec | Mapping[str, Any], post: Poster) -> JobId:
        """``submit`` from a thread not the loop's (the sync facade): one hop, to the db thread."""
        self._require_monitor()
        spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)
        job_id, handed = self._reg.call_blocking(self._store, spec, self._claiming_epoch(), post)
        monitor, autostart = self._monitor, self.settings.autostart
        if not handed and monitor is not None and monitor.alive:
            post(monitor.kick)
        elif not handed and (self.mode == "daemon" or monitor is not None) and autostart:
            ensure_daemon(self.settings)  # (as _after_write does; blocking is fine here)
        return job_id

    def _store(self, spec: JobSpec, epoch: int | None, post: Poster) -> tuple[JobId, bool]:
        """On the db thread: ``admit.store``, and the hand-over of a claimed job posted from
        here (a caller interrupted while it waits cannot strand it); True if posted."""
        job_id, claimed = admit.store(self.settings, self._reg.sync, spec, epoch)
        if not claimed:
            return job_id, False
        with contextlib.suppress(RuntimeError):  # the loop closed: the next monitor reconciles
            post(self._hand_to_monitor, claimed)
        return job_id, True

    def _claiming_epoch(self) -> int | None:  # a live monitor here claims the job as stored
        monitor = self._monitor
        return monitor.epoch if monitor is not None and monitor.alive else None

    def _hand_to_monitor(self, claimed: list[Attempt]) -> None:
        """On the loop. A monitor dead meanwhile leaves them ``submitting``: the next reconciles."""
        monitor = self._monitor
        if monitor is not None and monitor.alive:
            monitor.accept(claimed)

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

    async def progress(self, jobs: Targets) -> dict[JobState, int]:
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
        reg = None if isinstance(self._reg, NoRegistry) else self._reg
        return await monitor_control.status(self.settings, reg)

    async def stop_monitor(
        self,
        *,
        timeout: float | None = monitor_control.STOP_WAIT,  # noqa: ASYNC109 -- as wait's
    ) -> int | None:
        """Stop the monitor driving this registry (SIGTERM: it releases its lease and lock and
        exits): its pid, or None if none ran. ``MonitorNotStopped`` if it may not be signalled
        or still holds the lock after ``timeout`` seconds. Its active jobs wait for the next."""
        return await monitor_control.stop(self.settings, timeout)

    async def backend_status(self) -> list[BackendHealth]:
        """Each backend instance's health as the monitor last wrote it."""
        if isinstance(self._reg, NoRegistry):
            return []
        return await self._reg.call(self._reg.sync.backend_health)

    async def subjobs(self, job: IdLike) -> list[JobRecord]:
        return await self._reg.call(self._reg.sync.subjobs, as_id(job).job)

    async def history(self, job: IdLike) -> list[Transition]:
        return await self._reg.call(self._reg.sync.history, as_id(job))

    async def resolve(self, jobs: Targets) -> tuple[JobId, ...]:
        """Ids from explicit ids or a selection (checked to exist)."""
        if isinstance(jobs, Selection):
            if jobs.empty:
                raise InvalidInput("give job ids or a selection (state, name, tag, backend)")
            return tuple(r.id for r in await self.select(jobs))
        ids = as_ids(jobs)
        await self._reg.call(self._reg.sync.get_many, ids)
        return ids

    # ------------------------------------------------------------------ control
    async def kill(self, jobs: Targets) -> list[JobId]:
        self._require_monitor()
        ids = await self.resolve(jobs)
        touched = await self._reg.call(self._reg.sync.request_kill, ids)
        await self._after_write()
        return touched

    async def hold(self, jobs: Targets, *, reason: str = "held by the user") -> HoldResult:
        """Hold queued jobs (a sweep: its subjobs) in one scheduler call per backend; running
        ones are refused ("running jobs cannot be held"). See ``corral.holds``."""
        ids = await self.resolve(jobs)
        return await holds.change(self.settings, self._reg, ids, reason=reason)

    async def release(self, jobs: Targets) -> HoldResult:
        """Release held jobs (one scheduler call per backend)."""
        return await holds.change(self.settings, self._reg, await self.resolve(jobs), reason=None)

    async def resubmit(self, jobs: Targets, *, include_all: bool = False) -> list[JobId]:
        """New attempts for failed/killed (sub)jobs, or every final one with ``include_all``."""
        self._require_monitor()
        ids = await self.resolve(jobs)
        touched = await self._reg.call(self._reg.sync.resubmit, ids, include_all=include_all)
        await self._after_write()
        return touched

    async def remove(self, jobs: Targets, *, force: bool = False) -> list[JobRecord]:
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
        jobs: Targets,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- the sync facade has no scope to pass
        on_progress: Callable[[Mapping[JobState, int]], None] | None = None,
    ) -> list[JobRecord]:
        """Until every given job is final; ``WaitTimeout`` (also a ``TimeoutError``) after
        ``timeout`` seconds (a finite number >= 0, else ``InvalidInput``).

        ``on_progress`` is called with the units per state (``progress``) at the start, after
        changes of these jobs (at most every ``waiting.PROGRESS_EVERY`` s) and at the end: what
        a progress bar shows. Raises ``MonitorUnavailable`` if no monitor drives the jobs and
        none can be started (see ``corral.watch``): a dead monitor never makes this hang.
        """
        timeout = check_timeout(timeout)
        ids = await self.resolve(jobs)
        watch = MonitorWatch(self.settings, self._monitor)
        report = Progress(self.progress, ids, on_progress)
        return await wait_final(self._reg, self._feed, watch, ids, timeout, report)

    async def peek(self, job: IdLike, *, stderr: bool = False, lines: int = 20) -> str:
        """The last ``lines`` lines of a job's stdout (or stderr), as one string (``tail``
        streams them, for outputs too big to hold)."""
        return "".join([text async for text in self.tail(job, stderr=stderr, lines=lines)])

    async def tail(
        self, job: IdLike, *, stderr: bool = False, lines: int = 20
    ) -> AsyncGenerator[str, None]:
        """The last ``lines`` lines of a job's stdout (or stderr) as written so far, in chunks
        of text: constant memory, however long the output or its lines."""
        async for text in tail_text(await self._output(job, stderr), lines):
            yield text

    async def follow(
        self, job: IdLike, *, stderr: bool = False, lines: int | None = None, poll: float = 0.2
    ) -> AsyncGenerator[str, None]:
        """A job's stdout (or stderr) as it grows, until the job is final, in chunks of text:
        from the start, or from its last ``lines`` lines. Constant memory; UTF-8 is decoded
        across chunks (a character split between two writes arrives whole). Raises
        ``MonitorUnavailable`` if no monitor drives the job and none can be started."""
        path = await self._output(job, stderr)
        watch = MonitorWatch(self.settings, self._monitor)

        async def final() -> bool:
            return (await self.get(job)).state.final

        async for text in follow_text(path, lines, final, watch.check, poll):
            yield text

    async def _output(self, job: IdLike, stderr: bool) -> Path:
        return output_of(await self.get(job), stderr)

    output_path = staticmethod(output_path)

    # ------------------------------------------------------------------ events
    def on_transition(self, callback: Callable[[Transition], None]) -> None:
        """Call ``callback`` for every state change stored from now on (any process's)."""
        self._callbacks.add(callback)

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
