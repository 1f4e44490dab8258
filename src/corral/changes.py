"""The change stream: every stored transition, in order, resumable from a sequence number.

One ``ChangeFeed`` per session runs one watcher (a task in the session's task group). It sleeps
until somebody subscribes; then it waits on the registry's ``watch()`` ("anything new?":
``PRAGMA data_version`` on SQLite, LISTEN/NOTIFY on a server database later), reads what was
stored since the last sequence number it saw, once, and hands the batch to every subscriber's
queue. A monitor running in the same process pokes the feed after each commit, so its changes
arrive without waiting for the next look.

A subscriber may start from any sequence number (``since``): it is registered first and reads
the backlog after, in keyset pages, so nothing falls between the backlog and the live batches;
what both delivered is dropped by sequence number. Sequence numbers are never reused
(``transitions.seq`` is AUTOINCREMENT), so resuming after an ``rm`` misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from corral.records import Transition
from corral.registry.aio import AsyncRegistry

POLL = 0.05  # how often the watcher asks "anything new?" while someone listens
PAGE = 10_000  # backlog rows per query


class ChangeFeed:
    """One watcher fanned out to every subscriber; ``run()`` is the watcher task."""

    def __init__(self, registry: AsyncRegistry, *, poll: float = POLL) -> None:
        self._reg = registry
        self._poll = poll
        self._queues: set[asyncio.Queue[Sequence[Transition]]] = set()
        self._wanted = asyncio.Event()
        self._poke = asyncio.Event()

    def poke(self, _changes: object = None) -> None:
        """Look now (the in-process monitor committed); safe from the loop thread only."""
        self._poke.set()

    async def run(self) -> None:
        while True:
            await self._wanted.wait()  # nobody listens: no polling at all
            seq = await self._reg.call(self._reg.sync.last_seq)
            async for changed in self._reg.watch(self._poll, self._poke):
                if not self._queues:
                    self._wanted.clear()
                    break
                if not changed:
                    continue
                batch = await self._reg.call(self._reg.sync.transitions_since, seq, PAGE)
                while batch:
                    seq = batch[-1].seq
                    for queue in self._queues:
                        queue.put_nowait(batch)
                    if len(batch) < PAGE:
                        break
                    batch = await self._reg.call(self._reg.sync.transitions_since, seq, PAGE)

    async def last_seq(self) -> int:
        return await self._reg.call(self._reg.sync.last_seq)

    @contextlib.asynccontextmanager
    async def subscribe(self, since: int | None = None) -> AsyncIterator[Subscription]:
        """A subscription to what is stored after ``since`` (default: from now on)."""
        queue: asyncio.Queue[Sequence[Transition]] = asyncio.Queue()
        self._queues.add(queue)  # first: a batch read while we look up ``since`` is queued
        self._wanted.set()
        try:
            seen = await self._reg.call(self._reg.sync.last_seq) if since is None else since
            yield Subscription(self._reg, queue, seen)
        finally:
            self._queues.discard(queue)


class Subscription:
    """One subscriber's view: the backlog after its start, then the live batches."""

    def __init__(
        self, registry: AsyncRegistry, queue: asyncio.Queue[Sequence[Transition]], seen: int
    ) -> None:
        self._reg = registry
        self._queue = queue
        self.seen = seen
        """The last sequence number delivered (resume a later stream from here)."""
        self._backlog = True

    async def next(self) -> Sequence[Transition]:
        """The next non-empty batch. Cancelling it (a timeout) loses nothing."""
        while self._backlog:
            page = await self._reg.call(self._reg.sync.transitions_since, self.seen, PAGE)
            self._backlog = len(page) == PAGE
            if page:
                self.seen = page[-1].seq
                return page
        while True:
            batch = [t for t in await self._queue.get() if t.seq > self.seen]
            if batch:
                self.seen = batch[-1].seq
                return batch


class Callbacks:
    """A session's ``on_transition`` callbacks, called for every applied change stored after
    the session started by one follower task (``run``), which subscribes to the feed only once
    there is a callback: nobody listens, nothing polls."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Transition], None]] = []
        self._wanted = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, callback: Callable[[Transition], None]) -> None:
        """From any thread."""
        self._callbacks.append(callback)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wanted.set)

    async def run(self, feed: ChangeFeed, since: int) -> None:
        self._loop = asyncio.get_running_loop()
        if self._callbacks:  # (added before the session started)
            self._wanted.set()
        await self._wanted.wait()
        async with feed.subscribe(since) as stream:
            while True:
                for change in await stream.next():
                    if change.applied:
                        for callback in self._callbacks:
                            callback(change)
