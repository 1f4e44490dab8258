"""``python -m corral.monitor``: the monitor daemon.

It drives the registry until it has been idle (no active jobs) for ``idle_exit`` seconds
(0 = never exit). Before exiting it releases the lock and then checks again for active jobs, so a
submit racing its exit is picked up (by this daemon again, or by the one that submit started).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time

from corral.config import Settings, load_settings
from corral.errors import CorralError, MonitorBusy
from corral.monitor.core import Monitor
from corral.registry.aio import AsyncRegistry


async def run_daemon(settings: Settings, idle_exit: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # outlive a closing terminal
    async with AsyncRegistry(settings.registry, settings.work_dir) as reg:
        while True:
            try:
                async with Monitor(settings, reg) as monitor:
                    logging.info("monitor started (epoch %d)", monitor.epoch)
                    await _until_idle_or_stopped(monitor, stop, idle_exit)
            except MonitorBusy as exc:
                logging.info("%s; exiting", exc)
                return 0
            if stop.is_set():
                logging.info("monitor stopped by signal")
                return 0
            if not await reg.call(reg.sync.count_active):
                logging.info("idle for %.0f s; exiting", idle_exit)
                return 0
            logging.info("a job arrived while exiting; monitoring again")


async def _until_idle_or_stopped(monitor: Monitor, stop: asyncio.Event, idle_exit: float) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.5)
        idle = monitor.idle_since
        if idle_exit > 0 and idle is not None and time.monotonic() - idle >= idle_exit:
            return


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
        settings = load_settings()
        idle = settings.idle_exit if args.idle_exit is None else args.idle_exit
        return asyncio.run(run_daemon(settings, idle))
    except CorralError as exc:
        print(f"corral monitor: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
