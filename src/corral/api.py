"""``Session``: the synchronous facade, derived from ``AsyncSession`` in one place.

Like anyio's blocking portal, a ``Portal`` runs an event loop on a thread of its own with one
host task that enters the async session, waits until the facade closes, and exits it: the
session's task groups are entered and exited in that same task, as structured concurrency
requires. Each sync verb is ``blocking(AsyncSession.verb)``: it sends the coroutine to that loop
and waits for it, and mypy sees the async verb's own signature (no ``__getattr__``);
``tests/core/test_api.py`` checks that every public async verb has its twin. If the host task
dies (a bug in the session's own tasks), the next call raises ``SessionStopped``, a
``CorralError``, never a bare ``ExceptionGroup``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
)
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from corral.config import Settings
from corral.errors import CorralError
from corral.records import JobId, Transition
from corral.session import AsyncSession, IdLike, MonitorMode
from corral.spec import JobSpec
from corral.watch import describe

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")


class SessionStopped(CorralError):
    """The session's event loop or its background tasks stopped; open a new ``Session``."""

    kind = "unavailable"


class Portal(Generic[C]):
    """An event loop on its own thread, hosting one async context manager for its lifetime."""

    def __init__(self, context: AbstractAsyncContextManager[C], name: str = "corral-loop") -> None:
        self._context = context
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> C:
        entered: Future[C] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete,
            args=(self._host(entered),),
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        try:
            return entered.result()
        except BaseException:
            self._join()
            raise

    async def _host(self, entered: Future[C]) -> None:
        self._stop = asyncio.Event()
        try:
            async with self._context as value:
                entered.set_result(value)
                await self._stop.wait()
        except BaseException as exc:  # the one place a host task's death is kept
            if not entered.done():
                entered.set_exception(exc)
            else:
                self._error = exc
        finally:
            # Calls still running would wait forever on a loop that is about to stop: cancel
            # them (their callers get ``SessionStopped``) and let them unwind while it runs.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    def post(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the loop soon, without waiting for it."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def call(self, fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the loop and wait for its result."""
        self.check()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            self.check()  # the session stopped under the call
            raise

    @property
    def running(self) -> bool:
        return self._error is None and self._thread is not None and self._thread.is_alive()

    def check(self) -> None:
        if self._error is not None:
            raise SessionStopped(f"the session stopped: {describe(self._error)}") from self._error
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise SessionStopped("use the Session in a 'with' block")

    def stop(self) -> None:
        """Exit the hosted context in its task; raise ``SessionStopped`` if it had died."""
        loop, stop = self._loop, self._stop
        alive = self._thread is not None and self._thread.is_alive()
        if loop is not None and stop is not None and alive:
            loop.call_soon_threadsafe(stop.set)
        self._join()
        if self._error is not None:
            error, self._error = self._error, None
            raise SessionStopped(f"the session stopped: {describe(error)}") from error

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._loop is not None:
            self._loop.close()
        self._loop = self._thread = self._stop = None


def blocking(
    verb: Callable[Concatenate[AsyncSession, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Session, P], T]:
    """The sync twin of an ``AsyncSession`` verb: same parameters, same documentation."""

    @functools.wraps(verb)
    def twin(self: Session, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._portal.call(verb, self._async, *args, **kwargs)

    return twin


class Session:
    """The sync API: the verbs of ``AsyncSession``, blocking. Use as a context manager;
    everything runs on the session's own loop thread (callbacks too: keep them quick)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        monitor: MonitorMode = "inprocess",
        create: bool = True,
    ) -> None:
        self._async = AsyncSession(settings, monitor=monitor, create=create)
        self._portal: Portal[AsyncSession] = Portal(self._async)

    @property
    def settings(self) -> Settings:
        return self._async.settings

    @property
    def aio(self) -> AsyncSession:
        return self._async

    def __enter__(self) -> Session:
        self._portal.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._portal.stop()

    def submit(self, spec: JobSpec | Mapping[str, Any]) -> JobId:
        self._portal.check()
        return self._async._submit_blocking(spec, self._portal.post)

    submit.__doc__ = AsyncSession.submit.__doc__
    copy = blocking(AsyncSession.copy)
    get = blocking(AsyncSession.get)
    select = blocking(AsyncSession.select)
    subjobs = blocking(AsyncSession.subjobs)
    history = blocking(AsyncSession.history)
    resolve = blocking(AsyncSession.resolve)
    kill = blocking(AsyncSession.kill)
    hold = blocking(AsyncSession.hold)
    release = blocking(AsyncSession.release)
    resubmit = blocking(AsyncSession.resubmit)
    remove = blocking(AsyncSession.remove)
    wait = blocking(AsyncSession.wait)
    peek = blocking(AsyncSession.peek)
    last_seq = blocking(AsyncSession.last_seq)
    page = blocking(AsyncSession.page)
    progress = blocking(AsyncSession.progress)
    monitor_status = blocking(AsyncSession.monitor_status)
    stop_monitor = blocking(AsyncSession.stop_monitor)
    backend_status = blocking(AsyncSession.backend_status)
    gc = blocking(AsyncSession.gc)
    output_path = staticmethod(AsyncSession.output_path)

    def changes(self, since: int | None = None) -> Iterator[Transition]:
        """Every transition stored after ``since``, blocking between them (see
        ``AsyncSession.changes``); close the iterator (or break out of it) to unsubscribe."""
        yield from self._iterate(self._async.changes(since))

    def tail(self, job: IdLike, *, stderr: bool = False, lines: int = 20) -> Iterator[str]:
        """The last ``lines`` lines of a job's output, in chunks (see ``AsyncSession.tail``)."""
        yield from self._iterate(self._async.tail(job, stderr=stderr, lines=lines))

    def follow(
        self, job: IdLike, *, stderr: bool = False, lines: int | None = None, poll: float = 0.2
    ) -> Iterator[str]:
        """A job's output as it grows, until it is final (see ``AsyncSession.follow``)."""
        yield from self._iterate(self._async.follow(job, stderr=stderr, lines=lines, poll=poll))

    def _iterate(self, stream: AsyncGenerator[T, None]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._portal.call(_anext, stream)
                except StopAsyncIteration:
                    return
        finally:
            if self._portal.running:
                self._portal.call(stream.aclose)

    def on_transition(self, callback: Callable[[Transition], None]) -> None:
        """``callback`` runs on the session's loop thread; keep it quick."""
        self._portal.call(_register, self._async, callback)


async def _anext(stream: AsyncIterator[T]) -> T:
    return await anext(stream)


async def _register(session: AsyncSession, callback: Callable[[Transition], None]) -> None:
    session.on_transition(callback)
