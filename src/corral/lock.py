"""The monitor lock: an ``flock`` the kernel releases when its holder dies, even by SIGKILL."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def try_lock(path: Path) -> int | None:
    """Take the exclusive lock on ``path`` without waiting; the open fd, or None if held."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def holder(path: Path) -> int | None:
    """The pid holding the lock on ``path``, or None if nobody holds it.

    Read from ``/proc/locks``, never by trying the lock: a check that takes the lock, even for a
    moment, can make a monitor that is starting right then believe another one runs.
    """
    try:
        st = os.stat(path)
        with open("/proc/locks") as handle:
            table = handle.read()
    except FileNotFoundError:
        return None
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:3133037 0 EOF" (a "->" marks a waiter)
        held = len(fields) >= 6 and fields[1:4] == ["FLOCK", "ADVISORY", "WRITE"]
        if held and fields[5] == inode:
            return int(fields[4])
    return None
