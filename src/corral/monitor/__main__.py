"""``python -m corral.monitor``: the monitor daemon.

It drives the registry until it has been idle (no active jobs) for ``idle_exit`` seconds
(0 = never exit). Before exiting it releases the lock and then checks again for active jobs, so a
submit racing its exit is picked up (by this daemon again, or by the one that submit started).

A signal or the idle timeout ends it cleanly (exit 0). Anything else that ends it is logged with
its traceback and kept in the registry (``Registry.record_monitor_error``, fenced by the lease
the daemon held, unfenced if it never held one), so ``corral monitor --status`` and the next
``corral submit`` can say how the last monitor died; the exit code is then 3 for a corral error
(the registry or a backend is unavailable) and 70 for a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass

from corral import faults
from corral.config import Settings, load_settings
from corral.daemon import leave_cwd
from corral.errors import CorralError, LeaseLost, MonitorBusy
from corral.monitor.core import Monitor
from corral.registry.aio import AsyncRegistry

log = logging.getLogger("corral.monitor")
UNAVAILABLE = 3
INTERNAL = 70


@dataclass
class _Held:
    """The monitor this daemon runs now, so a failure can be recorded under its lease."""

    monitor: Monitor | None = None

    @property
    def epoch(self) -> int | None:
        # Epochs start at 1: 0 means the monitor never acquired the lease.
        if self.monitor is None or self.monitor.epoch <= 0:
            return None
        return self.monitor.epoch


async def run_daemon(settings: Settings, idle_exit: float) -> int:
    faults.point("daemon_start")  # before the registry is opened (crash tests)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # outlive a closing terminal
    async with AsyncRegistry(settings.registry, settings.work_dir) as reg:
        held = _Held()
        try:
            return await _drive(settings, reg, stop, idle_exit, held)
        except Exception as exc:  # the daemon's boundary: whatever ends it is recorded
            return await _died(reg, held.epoch, exc)


async def _drive(
    settings: Settings, reg: AsyncRegistry, stop: asyncio.Event, idle_exit: float, held: _Held
) -> int:
    while True:
        monitor = held.monitor = Monitor(settings, reg)
        try:
            async with monitor:
                log.info("monitor started (epoch %d)", monitor.epoch)
                await _until_idle_or_stopped(monitor, stop, idle_exit)
        except MonitorBusy as exc:
            log.info("%s; exiting", exc)
            return 0
        if monitor.error is not None:  # it stopped by itself; its lease is already released
            raise monitor.error
        if stop.is_set():
            log.info("monitor stopped by signal")
            return 0
        if not await reg.call(reg.sync.count_active):
            log.info("idle for %.0f s; exiting", idle_exit)
            return 0
        log.info("a job arrived while exiting; monitoring again")


async def _until_idle_or_stopped(monitor: Monitor, stop: asyncio.Event, idle_exit: float) -> None:
    while not stop.is_set() and monitor.error is None:
        await asyncio.sleep(0.5)
        idle = monitor.idle_since
        if idle_exit > 0 and idle is not None and time.monotonic() - idle >= idle_exit:
            return


async def _died(reg: AsyncRegistry, epoch: int | None, exc: BaseException) -> int:
    if isinstance(_unwrap(exc), LeaseLost):  # a newer monitor drives the registry: not a death
        log.warning("%s; exiting", _unwrap(exc))
        return UNAVAILABLE
    message = describe(exc)
    try:
        await reg.call(reg.sync.record_monitor_error, epoch, message)
    except Exception as again:  # e.g. the disk is full: the log line below is all we can leave
        log.warning("could not record the error in the registry: %s", describe(again))
    # Last, so the log ends with the error (``daemon.last_error`` reads it from there).
    log.error("monitor died: %s", message, exc_info=exc)
    return _exit_code(exc)


def describe(exc: BaseException) -> str:
    """One line: a corral error's message, or ``Type: message`` for anything else (a bug)."""
    exc = _unwrap(exc)
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    text = " ".join(str(exc).split())
    if isinstance(exc, CorralError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unwrap(exc: BaseException) -> BaseException:
    """A task group wraps what failed inside it; one wrapped error is reported as itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _exit_code(exc: BaseException) -> int:
    return UNAVAILABLE if isinstance(_unwrap(exc), CorralError) else INTERNAL


def _record_unfenced(settings: Settings, message: str) -> None:
    """Keep an error from before the daemon had its registry open, if the registry opens now."""
    from corral.registry import Registry

    try:
        registry = Registry(settings.registry, settings.work_dir)
        try:
            registry.record_monitor_error(None, message)
        finally:
            registry.close()
    except Exception as again:  # the registry is what failed: the log is all we can leave
        log.warning("could not record the error in the registry: %s", describe(again))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corral.monitor", description=__doc__)
    parser.add_argument(
        "--daemon", action="store_true", help="log with timestamps (started detached)"
    )
    parser.add_argument("--idle-exit", type=float, default=None, help="seconds idle before exiting")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s"
    )
    try:
        settings = load_settings()  # (in the starter's directory: see corral.daemon)
    except CorralError as exc:  # no settings, so no registry to keep the error in
        log.error("monitor cannot start: %s", describe(exc))
        return UNAVAILABLE
    if args.daemon:
        leave_cwd()
    idle = settings.idle_exit if args.idle_exit is None else args.idle_exit
    try:
        return asyncio.run(run_daemon(settings, idle))
    except Exception as exc:  # the registry did not open (or close): record it if it can be
        message = describe(exc)
        _record_unfenced(settings, message)
        log.error("monitor died: %s", message, exc_info=exc)
        return _exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
