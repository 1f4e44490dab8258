"""The registry seen from the event loop: every call runs on one dedicated thread, through the
``RegistryStore`` seam (``corral.registry.interface``)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, TypeVar

from corral.registry.engine import storage_full
from corral.registry.interface import RegistryStore, open_store

P = ParamSpec("P")
T = TypeVar("T")


class AsyncRegistry:
    """Owns a ``Registry`` and the single thread it is used from (SQLite likes one writer)."""

    def __init__(self, path: Path, work_dir: Path) -> None:
        self._path = path
        self._work_dir = work_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-db")
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
        round trip through the loop (the sync facade's submit)."""
        try:
            return self._executor.submit(fn, *args, **kwargs).result()
        except (sqlite3.Error, OSError) as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def watch(self, poll: float, kick: asyncio.Event | None = None) -> AsyncIterator[bool]:
        """ "Anything new?" about every ``poll`` seconds (sooner once ``kick`` is set): yields
        True when another connection may have committed since the last look, else False.
        On SQLite that is ``PRAGMA data_version`` on a connection of its own (cheap: no
        table is read); a server database would wait on LISTEN/NOTIFY here instead."""
        version = await self._run(self.sync.data_version)
        while True:
            kicked = False
            if kick is None:
                await asyncio.sleep(poll)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):
                        await kick.wait()
                kicked = kick.is_set()
                kick.clear()
            now = await self._run(self.sync.data_version)
            changed, version = now != version, now
            yield changed or kicked

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``await reg.call(reg.sync.get, job_id)``: run a registry method on the db thread."""
        return await self._run(fn, *args, **kwargs)
