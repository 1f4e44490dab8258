"""The async engine of ``wait``: it only reads the registry.

Jobs move because a monitor drives them, so ``wait`` makes sure one does: it starts the
background daemon if active jobs have none, or, with autostart off, runs the monitor in this
process (if no other process holds the registry). While it waits, a ``MonitorWatch`` notices a
monitor that died and restarts it, or gives up with ``MonitorUnavailable`` (exit 3). Progress is
read through the lean summary connection whenever ``PRAGMA data_version`` says another process
committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from typing import TYPE_CHECKING, Any

from corral.cli.common import console, session
from corral.cli.errors import WaitTimeout
from corral.cli.follow import totals
from corral.errors import NotFound
from corral.registry import summary
from corral.registry.summary import JobSummary
from corral.selection import Selection

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from corral.config import Settings
    from corral.records import JobId
    from corral.watch import MonitorWatch

POLL = 0.2


async def wait_until_final(
    settings: Settings,
    targets: list[JobId] | Selection,
    give_up_after: float | None,
    log_changes: bool,
) -> list[JobSummary]:
    from corral.watch import MonitorWatch

    conn = summary.connect(settings.registry)
    if conn is None:
        raise NotFound(f"there are no jobs yet (no registry at {settings.registry})")
    try:
        ids = await asyncio.to_thread(_resolve, conn, targets)  # bad ids fail before any monitor
        async with session(settings, "daemon" if settings.autostart else "inprocess") as sess:
            # With active jobs and no monitor (e.g. after a kill -9), the watch starts one.
            watch = MonitorWatch(settings, sess.monitor)
            jobs = await asyncio.to_thread(summary.summaries_of, conn, ids)
            with _progress(log_changes) as bar:
                task = bar.add_task("waiting", total=sum(j.units for j in jobs))
                try:
                    async with asyncio.timeout(give_up_after):
                        return await _follow(conn, ids, bar, task, watch)
                except TimeoutError:
                    jobs = await asyncio.to_thread(summary.summaries_of, conn, ids)
                    left = sum(j.units - j.done for j in jobs)
                    if not left:  # (--timeout 0 expires before the first read: all were done)
                        return jobs
                    raise WaitTimeout(
                        f"wait timed out after {give_up_after:g} s: {left} of "
                        f"{sum(j.units for j in jobs)} jobs not finished"
                    ) from None
    finally:
        conn.close()


def _resolve(conn: sqlite3.Connection, targets: list[JobId] | Selection) -> list[JobId]:
    if isinstance(targets, Selection):
        return [s.id for s in summary.summaries(conn, targets)]
    found = {s.id for s in summary.summaries_of(conn, targets)}
    for job_id in targets:
        if job_id not in found:
            raise NotFound(f"no job {job_id}")
    return list(dict.fromkeys(targets))


async def _follow(
    conn: sqlite3.Connection, ids: list[JobId], bar: Progress, task: TaskID, watch: MonitorWatch
) -> list[JobSummary]:
    version = -1
    while True:
        now = await asyncio.to_thread(summary.data_version, conn)
        if now != version:
            version = now
            jobs = await asyncio.to_thread(summary.summaries_of, conn, ids)
            described = "  ".join(f"{s.value} {n}" for s, n in totals(jobs).items())
            bar.update(task, completed=sum(j.done for j in jobs), description=described)
            if all(j.state.final for j in jobs):
                return jobs
        await watch.check()  # nothing committed since the last read: a job is still active
        await asyncio.sleep(POLL)


class _Lines:
    """Stands in for the progress bar when stderr is not a terminal (logs, pipes, tests):
    silent, or one line per change."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.last = ""

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def update(self, task: int, completed: float = 0, description: str = "") -> None:
        if self.verbose and description != self.last:
            self.last = description
            print(f"  {description}", file=sys.stderr, flush=True)


def _progress(log_changes: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = console(stderr=True)
    if not err.is_terminal:
        return _Lines(log_changes)
    return Progress(
        TextColumn("[bold]wait[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
    )
