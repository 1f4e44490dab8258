"""``Session``: the synchronous facade. It runs the async core on a background event-loop thread
(like anyio's blocking portal), so scripts and the interactive shell need no ``await``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from corral.config import Settings
from corral.errors import InvalidInput
from corral.records import JobId, JobRecord, Transition
from corral.registry import Selection
from corral.session import AsyncSession, IdLike, MonitorMode
from corral.spec import JobSpec
from corral.states import JobState

T = TypeVar("T")
Jobs = IdLike | Iterable[IdLike] | Selection


class Session:
    """The sync API: same verbs as ``AsyncSession``. Use as a context manager."""

    def __init__(
        self, settings: Settings | None = None, *, monitor: MonitorMode = "inprocess"
    ) -> None:
        self._async = AsyncSession(settings, monitor=monitor)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        return self._async.settings

    @property
    def aio(self) -> AsyncSession:
        return self._async

    def __enter__(self) -> Session:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="corral-loop", daemon=True)
        self._thread.start()
        try:
            self._call(self._async.__aenter__())
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._call(self._async.__aexit__(exc_type, exc, tb))
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise InvalidInput("use the Session in a 'with' block")  # (every API error is ours)
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def submit(self, spec: JobSpec | Mapping[str, Any]) -> JobId:
        return self._call(self._async.submit(spec))

    def copy(self, job: IdLike) -> JobId:
        return self._call(self._async.copy(job))

    def get(self, job: IdLike) -> JobRecord:
        return self._call(self._async.get(job))

    def select(
        self,
        selection: Selection | None = None,
        *,
        states: Iterable[JobState | str] = (),
        names: Iterable[str] = (),
        tags: Iterable[str] = (),
        backends: Iterable[str] = (),
    ) -> list[JobRecord]:
        return self._call(
            self._async.select(selection, states=states, names=names, tags=tags, backends=backends)
        )

    def subjobs(self, job: IdLike) -> list[JobRecord]:
        return self._call(self._async.subjobs(job))

    def history(self, job: IdLike) -> list[Transition]:
        return self._call(self._async.history(job))

    def kill(self, jobs: Jobs) -> list[JobId]:
        return self._call(self._async.kill(jobs))

    def resubmit(self, jobs: Jobs, *, include_all: bool = False) -> list[JobId]:
        return self._call(self._async.resubmit(jobs, include_all=include_all))

    def remove(self, jobs: Jobs, *, force: bool = False) -> list[JobRecord]:
        return self._call(self._async.remove(jobs, force=force))

    def wait(self, jobs: Jobs, *, timeout: float | None = None) -> list[JobRecord]:
        """Until every job is final: ``WaitTimeout`` (a ``TimeoutError`` too) after ``timeout``
        (finite, >= 0: else ``InvalidInput``); ``MonitorUnavailable``
        if the monitor driving them is gone for good (this session's, or the daemon)."""
        return self._call(self._async.wait(jobs, timeout=timeout))

    def peek(self, job: IdLike, *, stderr: bool = False, lines: int = 20) -> str:
        return self._call(self._async.peek(job, stderr=stderr, lines=lines))

    def on_transition(self, callback: Callable[[Transition], None]) -> None:
        """``callback`` runs on the session's loop thread; keep it quick."""
        self._async.on_transition(callback)
