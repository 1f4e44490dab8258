"""Who drives a registry, and stopping it: the work behind ``AsyncSession.monitor_status``,
``stop_monitor`` and the hand-over to a daemon when a session with a monitor ends.

The monitor holds an ``flock`` on ``monitor.lock`` (``corral.lock``); its holder is read from
``/proc/locks``, never by taking the lock. Stopping it is a SIGTERM sent through a pidfd (so a
pid reused by another process between the look and the signal is never signalled), then
waiting, off the event loop, until the lock is free.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from corral.daemon import ensure_daemon
from corral.errors import MonitorNotStopped
from corral.inputs import check_timeout
from corral.lock import holder
from corral.registry.aio import AsyncRegistry
from corral.registry.status import MonitorStatus

if TYPE_CHECKING:
    from corral.config import Settings

STOP_WAIT = 20.0  # seconds ``stop_monitor`` waits for the lock to be free, by default
STOP_POLL = 0.05


async def status(settings: Settings, reg: AsyncRegistry | None) -> MonitorStatus:
    """The lock's holder, and from the registry (None: there is none yet) the lease row, the
    active jobs and each backend's last health."""
    pid = await asyncio.to_thread(holder, settings.lock_path)
    if reg is None:
        return MonitorStatus(pid is not None, pid, None, 0, [])
    lease = await reg.call(reg.sync.lease_info)
    active = await reg.call(reg.sync.count_active)
    health = await reg.call(reg.sync.backend_health)
    return MonitorStatus(pid is not None, pid, lease, active, health)


async def stop(settings: Settings, limit: float | None = STOP_WAIT) -> int | None:
    """SIGTERM to the monitor holding the lock, then wait until it lets the lock go; its pid,
    or None if no monitor ran. ``MonitorNotStopped`` if it cannot be signalled, or still holds
    the lock after ``limit`` seconds (None: no limit)."""
    limit = check_timeout(limit)
    pid = await asyncio.to_thread(_terminate, settings.lock_path)
    if pid is None:
        return None
    loop = asyncio.get_running_loop()
    deadline = None if limit is None else loop.time() + limit
    while await asyncio.to_thread(holder, settings.lock_path) == pid:
        if deadline is not None and loop.time() > deadline:
            raise MonitorNotStopped(f"monitor pid {pid} did not stop within {limit:g} s")
        await asyncio.sleep(STOP_POLL)
    return pid


def _terminate(lock_path: Path) -> int | None:
    """On a thread: SIGTERM to the lock's holder; its pid, or None if nobody holds the lock."""
    pid = holder(lock_path)
    if pid is None:
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return pid  # it just exited by itself
    try:
        if holder(lock_path) == pid:  # still the holder: the pidfd names that very process
            signal.pidfd_send_signal(fd, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it just exited by itself
    except PermissionError as exc:
        raise MonitorNotStopped(f"cannot stop monitor pid {pid}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return pid


async def hand_over(settings: Settings) -> None:
    """Jobs still active when a session with a monitor ends keep moving under a daemon."""
    async with AsyncRegistry(settings.registry, settings.work_dir) as reg:
        active = await reg.call(reg.sync.count_active)
    if active:
        await asyncio.to_thread(ensure_daemon, settings)
