"""The loop behind ``AsyncSession.wait``: until every awaited job is final, reporting progress.

It follows the session's change stream (one subscription, registered before the first read,
so nothing falls between), and asks a ``MonitorWatch`` every ``LOOK_EVERY`` seconds whether a
monitor still drives the jobs, so a wait never hangs on a dead monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from corral.changes import ChangeFeed, Subscription
from corral.errors import WaitTimeout
from corral.records import JobId, JobRecord
from corral.registry.aio import AsyncRegistry
from corral.states import FINAL, JobState
from corral.watch import MonitorWatch

LOOK_EVERY = 0.2  # a wait asks its MonitorWatch this often, changes or not (the watch itself
# reads the lock every watch.CHECK_EVERY s, and at once while a free lock makes it suspicious)
PROGRESS_EVERY = 0.2  # a wait reports progress at most this often


def units(record: JobRecord) -> int:
    """Runnable units: the subjobs of a master, or the job itself."""
    return record.subjobs or 1


def done(record: JobRecord) -> int:
    """Units of this job that are final."""
    if not record.is_master:
        return int(record.state.final)
    return sum(n for s, n in record.counts.items() if s in FINAL)


class Progress:
    """``wait``'s ``on_progress``: the units per state, read again when ``due`` and at most
    every ``PROGRESS_EVERY`` seconds (a burst of changes is one read)."""

    def __init__(
        self,
        read: Callable[[tuple[JobId, ...]], Awaitable[dict[JobState, int]]],
        ids: tuple[JobId, ...],
        callback: Callable[[Mapping[JobState, int]], None] | None,
    ) -> None:
        self._read = read
        self._ids = ids
        self._callback = callback
        self._last = 0.0
        self.due = False

    async def now(self) -> None:
        if self._callback is not None:
            self.due = False
            self._last = time.monotonic()
            self._callback(await self._read(self._ids))

    async def maybe(self) -> None:
        if self.due and time.monotonic() - self._last >= PROGRESS_EVERY:
            await self.now()


async def until_final(
    watch: MonitorWatch,
    records: Iterable[JobRecord],
    changes: Subscription,
    report: Progress,
) -> None:
    """Return once every job of ``records`` (read after ``changes`` was subscribed) is final."""
    records = list(records)
    wanted = {r.id for r in records}
    pending = {r.id for r in records if not r.state.final}
    while pending:
        await watch.check()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LOOK_EVERY):
                for change in await changes.next():
                    if not change.applied:
                        continue
                    if change.id in wanted or JobId(change.id.job) in wanted:
                        report.due = True  # (a job, or a subjob of an awaited master)
                    if change.id in wanted:
                        # the last change of a job says it all (a retry: failed, then new)
                        if change.new.final:
                            pending.discard(change.id)
                        else:
                            pending.add(change.id)
        if pending:
            await report.maybe()


async def wait_final(
    reg: AsyncRegistry,
    feed: ChangeFeed,
    watch: MonitorWatch,
    ids: tuple[JobId, ...],
    timeout: float | None,  # noqa: ASYNC109 -- the session's verb takes a number, not a scope
    report: Progress,
) -> list[JobRecord]:
    """``AsyncSession.wait`` once its arguments are checked: the records, all final; else
    ``WaitTimeout`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout), feed.subscribe() as changes:
            # Subscribed first, read second: what changes after the read is in the stream.
            records = await reg.call(reg.sync.get_many, ids)
            await report.now()
            await until_final(watch, records, changes, report)
            records = await reg.call(reg.sync.get_many, ids)
            await report.now()
            return records
    except TimeoutError:
        # (timeout=0 may expire before the first look: jobs already final are not late)
        records = await reg.call(reg.sync.get_many, ids)
        left = sum(units(r) - done(r) for r in records)
        if not left:
            return records
        total = sum(units(r) for r in records)
        raise WaitTimeout(
            f"wait timed out after {timeout:g} s: {left} of {total} jobs not finished"
        ) from None
