"""The async engine of ``wait``: rendering over ``AsyncSession`` verbs.

Jobs move because a monitor drives them, so ``wait`` makes sure one does: its session runs in
``daemon`` mode (the background daemon is started if active jobs have none) or, with autostart
off, ``inprocess`` (the monitor runs in this process if no other holds the registry).
``AsyncSession.wait`` does the waiting (the change stream, and a ``MonitorWatch`` that restarts a
monitor that died or gives up with ``MonitorUnavailable``, exit 3); this module only draws its
``on_progress`` reports as a live bar.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from corral.cli.common import console, session
from corral.selection import Selection
from corral.states import FINAL, JobState

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.records import JobId, JobRecord

POLL = 0.2


async def wait_until_final(
    settings: Settings,
    targets: list[JobId] | Selection,
    give_up_after: float | None,
    log_changes: bool,
) -> list[JobRecord]:
    from corral.cli.follow import totals

    if settings.autostart:  # a daemon-mode session starts a daemon only while it waits
        ids = None
    else:  # the in-process monitor starts with its session: bad ids must fail before that
        async with session(settings) as reader:
            ids = await reader.resolve(targets)
    async with session(settings, "daemon" if settings.autostart else "inprocess") as sess:
        if ids is None:
            ids = await sess.resolve(targets)
        with _progress(log_changes) as bar:
            task = bar.add_task("waiting", total=None)

            def show(counts: Mapping[JobState, int]) -> None:
                described = "  ".join(f"{s.value} {n}" for s, n in totals(counts).items())
                done = sum(n for s, n in counts.items() if s in FINAL)
                bar.update(task, total=sum(counts.values()), completed=done, description=described)

            return await sess.wait(ids, timeout=give_up_after, on_progress=show)


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

    def update(
        self, task: int, total: float | None = None, completed: float = 0, description: str = ""
    ) -> None:
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
