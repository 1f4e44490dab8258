"""What /proc says about a process: when it started (against pid reuse) and its parent.

Blocking (small reads of /proc): call from a worker thread.
"""

from __future__ import annotations

import os
from functools import cache

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@cache
def _boot_time() -> float:
    # cached: /proc/stat's btime never changes while we run
    with open("/proc/stat") as handle:
        return next(float(line.split()[1]) for line in handle if line.startswith("btime"))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None if it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else _boot_time() + int(fields[19]) / _CLK_TCK


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    try:
        return None if fields is None else int(fields[1])
    except (ValueError, IndexError):
        return None
