"""``AsyncSession``: the async API every other surface (sync facade, CLI, shell) calls into."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from corral import admit, backends
from corral.config import Settings, load_settings
from corral.daemon import ensure_daemon
from corral.errors import InvalidInput, InvalidSpec, MonitorBusy, NotFound, WaitTimeout
from corral.inputs import check_timeout
from corral.monitor import Monitor
from corral.records import JobId, JobRecord, Transition
from corral.registry import Selection
from corral.registry.aio import AsyncRegistry
from corral.selection import parse_states
from corral.spec import JobSpec, parse_spec
from corral.splitters import split
from corral.states import JobState
from corral.watch import MonitorWatch

MonitorMode = Literal["inprocess", "daemon", "off"]
IdLike = JobId | int | str
FOLLOW_POLL = 0.05


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
        self._callbacks: list[Callable[[Transition], None]] = []
        self._follower: asyncio.Task[None] | None = None
        self._has_callbacks = asyncio.Event()

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
            if self.mode == "inprocess":
                with contextlib.suppress(MonitorBusy):
                    self._monitor = await self._stack.enter_async_context(
                        Monitor(self.settings, self._reg)
                    )
            tg = await self._stack.enter_async_context(asyncio.TaskGroup())
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
        if self._follower is not None:
            self._follower.cancel()
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
        if not isinstance(spec, JobSpec):
            spec = parse_spec(spec)
        await asyncio.to_thread(admit.check_submit, self.settings, spec)
        subspecs = split(spec)
        job_id = await self._reg.call(self._reg.sync.add, spec, subspecs)
        await self._after_write()
        return job_id

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
        for job_id in ids:
            await self.get(job_id)
        return ids

    # ------------------------------------------------------------------ control
    async def kill(self, jobs: IdLike | Iterable[IdLike] | Selection) -> list[JobId]:
        ids = await self.resolve(jobs)
        touched = await self._reg.call(self._reg.sync.request_kill, ids)
        await self._after_write()
        return touched

    async def resubmit(
        self, jobs: IdLike | Iterable[IdLike] | Selection, *, include_all: bool = False
    ) -> list[JobId]:
        """New attempts for failed/killed (sub)jobs, or every final one with ``include_all``."""
        ids = await self.resolve(jobs)
        touched = await self._reg.call(self._reg.sync.resubmit, ids, include_all=include_all)
        await self._after_write()
        return touched

    async def remove(
        self, jobs: IdLike | Iterable[IdLike] | Selection, *, force: bool = False
    ) -> list[JobRecord]:
        """Delete jobs from the registry and their job dirs; active ones need ``force`` (and
        are killed first)."""
        ids = await self.resolve(jobs)
        if force:
            await self._reg.call(self._reg.sync.request_kill, ids)
            await self._after_write()
        removed = await self._reg.call(self._reg.sync.remove, ids, force=force)
        await asyncio.to_thread(_delete_dirs, [r.job_dir for r in removed])
        return removed

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
        version = -1
        try:
            async with asyncio.timeout(timeout):
                while True:
                    now = await self._reg.call(self._reg.sync.data_version)
                    if now != version:
                        version = now
                        records = [await self.get(i) for i in ids]
                        if all(r.state.final for r in records):
                            return records
                    await watch.check()
                    await asyncio.sleep(FOLLOW_POLL)
        except TimeoutError:
            if version == -1:  # (timeout=0 expired before the first look: look once)
                records = [await self.get(i) for i in ids]
                if all(r.state.final for r in records):
                    return records
            raise WaitTimeout(f"wait timed out after {timeout:g} s") from None

    async def peek(self, job: IdLike, *, stderr: bool = False, lines: int = 20) -> str:
        """The last ``lines`` lines of a job's stdout (or stderr)."""
        record = await self.get(job)
        if record.is_master:
            raise InvalidInput(f"job {record.id} has subjobs; peek one of them, e.g. {record.id}.0")
        path = self.output_path(record, "stderr" if stderr else "stdout")
        return await asyncio.to_thread(_tail, path, lines)

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

    async def _follow(self) -> None:
        sync = self._reg.sync
        seq = await self._reg.call(sync.last_seq)
        version = await self._reg.call(sync.data_version)
        if not self._callbacks:
            await self._has_callbacks.wait()  # no polling at all until someone listens
        while True:
            await asyncio.sleep(FOLLOW_POLL)
            now = await self._reg.call(sync.data_version)
            if now == version:
                continue
            version = now
            for change in await self._reg.call(sync.transitions_since, seq):
                seq = change.seq
                if change.applied:
                    for callback in self._callbacks:
                        callback(change)


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:]) + ("\n" if data else "")


def _delete_dirs(paths: Sequence[Path | None]) -> None:
    for path in paths:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def check_backend(settings: Settings, spec: JobSpec) -> None:
    """Bad input before anything is stored (see ``corral.backends.check_spec``)."""
    backends.check_spec(settings, spec)
