"""The foreground monitor of ``corral monitor``: a live view, or one cycle with ``--once``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from corral.cli.common import ago, console, markup
from corral.errors import MonitorBusy

if TYPE_CHECKING:
    from rich.table import Table

    from corral.config import Settings
    from corral.monitor import Monitor

ONCE_LIMIT = 30.0  # --once: the longest one cycle may take before we stop anyway
REFRESH = 0.5


async def foreground(settings: Settings, once: bool) -> dict[str, Any]:
    """Run the monitor here until it is stopped (or for one cycle); what ``--json`` prints of
    its backend loops as they stopped (``views.foreground_view``)."""
    from corral.cli.common import session
    from corral.views import foreground_view

    try:
        # (on exit, with autostart on, the session hands jobs still active to a daemon)
        async with session(settings, "foreground") as sess:
            mon = sess.monitor
            assert mon is not None  # ("foreground": MonitorBusy otherwise)
            if once:
                await _one_cycle(mon)
            else:
                await _live(settings, mon)
            shown = foreground_view(mon.statuses())
    except MonitorBusy as exc:
        raise MonitorBusy(
            f"{exc}; 'corral monitor --status' shows it, 'corral monitor --stop' stops it"
        ) from exc
    if once and not shown["backends"]:
        print("one cycle: nothing to do", file=sys.stderr)
    if settings.autostart:
        async with session(settings, create=False) as sess:
            now = await sess.monitor_status()
        if now.active:
            print(
                f"{now.active} jobs still active: handed over to a background monitor "
                f"(pid {now.pid})",
                file=sys.stderr,
            )
    return shown


async def _one_cycle(mon: Monitor) -> None:
    """Until every backend loop has polled (or failed) once, or nothing is left to watch."""
    deadline = time.monotonic() + ONCE_LIMIT
    await asyncio.sleep(REFRESH)  # the intake claims new jobs and starts the backend loops
    while time.monotonic() < deadline:
        loops = mon.statuses()
        if mon.active == 0 or all(s.polls + s.errors > 0 for s in loops):
            break
        await asyncio.sleep(0.05)
    console().print(_table(mon))


async def _live(settings: Settings, mon: Monitor) -> None:
    from rich.live import Live

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    out = console()
    started = time.time()
    print(
        f"monitor running (pid {os.getpid()}, epoch {mon.epoch}) on {settings.registry}; "
        "Ctrl-C or 'corral monitor --stop' stops it",
        file=sys.stderr,
    )
    try:
        if not out.is_terminal:
            await stop.wait()
            return
        with Live(_view(mon, started), console=out, refresh_per_second=4) as live:
            while not stop.is_set():
                live.update(_view(mon, started))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REFRESH):
                        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _view(mon: Monitor, started: float) -> Any:
    from rich.console import Group

    up = ago(started).removesuffix(" ago")
    head = (
        f"[bold]corral monitor[/bold]  pid {os.getpid()}  epoch {mon.epoch}  "
        f"active jobs {mon.active}  up {up}"
    )
    return Group(head, _table(mon))


def _table(mon: Monitor) -> Table:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("backend", "active", "interval", "last poll", "polls", "errors", "last error"):
        table.add_column(column)
    for s in mon.statuses():
        error = (
            f"[red]{markup(s.last_error)}[/red]" if s.consecutive_errors else markup(s.last_error)
        )
        table.add_row(
            markup(s.name),
            str(s.active),
            f"{s.interval:.1f} s",
            ago(s.last_poll),
            str(s.polls),
            str(s.errors),
            error or "-",
        )
    if not mon.statuses():
        table.add_row("-", "0", "-", "-", "0", "0", "no jobs to watch yet")
    return table
