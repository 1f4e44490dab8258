"""``MonitorWatch``: a waiting loop notices that no monitor drives its jobs any more.

Jobs move only while a monitor holds the registry's lock. Every surface that waits for jobs
(``corral wait`` and ``submit --wait``, ``peek -f``, ``AsyncSession.wait`` and so the sync
``Session``) owns one watch and awaits ``check()`` on every iteration in which an awaited job is
still active. The rules live here, once:

- the monitor running in this process is watched through ``Monitor.alive`` (free); any other
  through the lock's holder in ``/proc/locks`` (never by taking the lock), at most every
  ``CHECK_EVERY`` seconds;
- no monitor, autostart on: start the daemon (``ensure_daemon``, off the loop) and go on
  waiting; a daemon this watch started that is gone again within ``RESTART_WINDOW`` seconds,
  or never came up, means something kills it: ``MonitorUnavailable``, naming the log and the
  last error in it;
- no monitor, autostart off: ``MonitorUnavailable`` at once.

So a wait never hangs on a dead monitor, and never turns one into a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from corral.daemon import ensure_daemon, last_error, log_size
from corral.errors import CorralError, MonitorUnavailable
from corral.lock import holder

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.monitor import Monitor

log = logging.getLogger("corral.watch")
CHECK_EVERY = 1.0
RESTART_WINDOW = 10.0
AUTOSTART_OFF = "no monitor drives the registry (autostart is off): run 'corral monitor'"


class MonitorWatch:
    """Watches whatever monitor drives ``settings``' registry for one waiting loop.

    ``monitor`` is the monitor this process runs, if it runs one (then that one is watched,
    not the lock). ``starts`` counts the daemons this watch started.
    """

    def __init__(
        self,
        settings: Settings,
        monitor: Monitor | None = None,
        *,
        every: float = CHECK_EVERY,
        restart_window: float = RESTART_WINDOW,
    ) -> None:
        self.settings = settings
        self._monitor = monitor
        self._every = every
        self._window = restart_window
        self._next_look = 0.0
        self._suspect = False  # the last look found the lock free
        self._started_at: float | None = None  # when the daemon this watch started came up
        self._log_from = 0  # the log's size before that start: its errors come after
        self.starts = 0

    async def check(self) -> None:
        """Call after each read that found an awaited job still active (cheap: it looks at
        most every ``CHECK_EVERY`` seconds). Returns if a monitor drives the registry, or
        once it started one; raises ``MonitorUnavailable`` if none can."""
        if self._monitor is not None:
            if not self._monitor.alive:
                await self._in_process_stopped(self._monitor)
            return
        now = time.monotonic()
        if now < self._next_look and not self._suspect:
            return
        self._next_look = now + self._every
        if await asyncio.to_thread(holder, self.settings.lock_path) is not None:
            self._suspect = False
            return
        if not self._suspect:
            # A free lock may only mean the awaited jobs just ended and an idle daemon left
            # (or is re-checking for work): believe it when the caller, having read the jobs
            # again, still finds one active and calls again.
            self._suspect = True
            return
        self._suspect = False
        await self._no_monitor()

    async def _in_process_stopped(self, monitor: Monitor) -> None:
        self._monitor = None  # from now on, whatever holds the lock is watched
        what = f"the monitor in this process stopped: {describe(monitor.error)}"
        if not self.settings.autostart:
            raise MonitorUnavailable(f"{what} (autostart is off)") from monitor.error
        log.warning("%s; starting the background monitor", what)
        await self._no_monitor()

    async def _no_monitor(self) -> None:
        if not self.settings.autostart:
            raise MonitorUnavailable(AUTOSTART_OFF)
        if self._started_at is not None and time.monotonic() - self._started_at < self._window:
            raise await self._give_up(
                f"the monitor died again within {self._window:g} s of its start"
            )
        self._log_from = await asyncio.to_thread(log_size, self.settings.log_path)
        try:
            pid = await asyncio.to_thread(ensure_daemon, self.settings)
        except OSError as exc:  # e.g. the home is not writable
            raise MonitorUnavailable(f"cannot start the monitor: {exc}") from exc
        self.starts += 1
        self._started_at = time.monotonic()
        if pid is None:
            raise await self._give_up("the monitor did not start")
        log.info("started the monitor (pid %d)", pid)

    async def _give_up(self, what: str) -> MonitorUnavailable:
        path = self.settings.log_path
        line = await asyncio.to_thread(last_error, path, self._log_from)
        found = f" (last error: {_cut(line)})" if line else ""
        return MonitorUnavailable(f"{what}{found}; see {path}")


def describe(exc: BaseException | None) -> str:
    """One line for why a monitor stopped (the first error inside a task group's group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if exc is None:
        return "no error recorded"
    text = _cut(str(exc))
    if isinstance(exc, CorralError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cut(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
