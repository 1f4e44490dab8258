"""The registry seen from the event loop: every call runs on one dedicated thread, through the
``RegistryStore`` seam (``corral.registry.interface``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, ParamSpec, TypeVar

from corral.registry.dbthread import DbThread
from corral.registry.driver import sqlite3
from corral.registry.engine import storage_full
from corral.registry.interface import RegistryStore, open_store

P = ParamSpec("P")
T = TypeVar("T")


class AsyncRegistry:
    """Owns a ``Registry`` and the single thread it is used from (SQLite likes one writer)."""

    def __init__(self, path: Path, work_dir: Path) -> None:
        self._path = path
        self._work_dir = work_dir
        self._executor = DbThread("corral-db")
        self._sync: RegistryStore | None = None

    @property
    def sync(self) -> RegistryStore:
        if self._sync is None:
            raise RuntimeError("registry is not open")
        return self._sync

    async def __aenter__(self) -> AsyncRegistry:
        self._sync = await self._run(open_store, self._path, self._work_dir)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sync is not None:
            await self._run(self._sync.close)
            self._sync = None
        self._executor.shutdown(wait=False)

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        except (sqlite3.Error, OSError) as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _translated(self, exc: sqlite3.Error | OSError) -> BaseException:
        # SQLAlchemy's statements are translated in ``engine``; this catches the plain
        # sqlite3 connection (``data_version``) and file work done on the db thread.
        full = storage_full(exc, self._path)
        return exc if full is None else full

    def call_blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call`` from a thread that is not the event loop's: the same db thread, without a
        round trip through the loop, ahead of the monitor's queued work (the sync facade's
        submit: its caller waits)."""
        try:
            return self._executor.submit_urgent(fn, *args, **kwargs).result()
        except (sqlite3.Error, OSError) as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    def watch(self, poll: float, kick: asyncio.Event | None = None) -> Watch:
        """ "Anything new?", for every loop that follows the registry (the change feed, the
        monitor's intake): ``async for look in reg.watch(poll, kick)``, or ``await
        watch.next()`` from a loop of steps. See ``Watch``."""
        return Watch(self, poll, kick)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``await reg.call(reg.sync.get, job_id)``: run a registry method on the db thread."""
        return await self._run(fn, *args, **kwargs)


Look = Literal["", "kick", "commit"]


class Watch:
    """Answers "anything new?" about every ``poll`` seconds, sooner once ``kick`` is set:
    ``"commit"`` when another connection may have committed since the last look, ``"kick"``
    when ``kick`` was set (this process wrote, and says so), ``""`` when nothing happened.

    On SQLite that is ``PRAGMA data_version`` on a connection of its own (cheap: no table is
    read; ``RegistryStore.data_version``); a server database waits on LISTEN/NOTIFY here
    instead. The first look always answers ``"commit"``: nothing was seen before it. A look
    that fails (a locked or full disk) raises and changes nothing: the next one compares with
    the last version seen.
    """

    def __init__(self, registry: AsyncRegistry, poll: float, kick: asyncio.Event | None) -> None:
        self._reg = registry
        self._poll = poll
        self._kick = kick
        self._version: int | None = None

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Look:
        return await self.next()

    async def next(self) -> Look:
        if self._version is None:
            self._version = await self._reg.call(self._reg.sync.data_version)
            return "commit"
        kicked = False
        if self._kick is None:
            await asyncio.sleep(self._poll)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._kick.wait()
            kicked = self._kick.is_set()
            self._kick.clear()
        now = await self._reg.call(self._reg.sync.data_version)
        changed, self._version = now != self._version, now
        return "kick" if kicked else "commit" if changed else ""
