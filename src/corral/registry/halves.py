"""A read run in a forked child process, beside the same read of another part in this one.

SQLite formats a listing on one core, and a cold ``corral ls`` of 100,000 jobs spends most of
its time there; reading the two halves of the job numbers at once, in two processes, halves
that on a machine with two cores. Not threads: every allocation in SQLite takes one
process-wide mutex (its memory statistics), which two reading threads fight over (tried: twice
the CPU time, no gain in wall time).

The child is only forked from a process without other threads (a fork copies no thread, so a
lock another thread held would stay locked in the child) and while this process has no
SQLite connection open (SQLite's rule: no connection crosses a fork). It runs its read on a
connection of its own, sends the bytes back through a pipe and exits; whatever goes wrong
there, the caller learns only that it failed, and reads that half itself (with its errors
raised where they belong).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def can_fork() -> bool:
    """Whether forking is safe here: POSIX, and no thread but this one."""
    threading = sys.modules.get("threading")  # (never imported: no Python thread was started)
    return hasattr(os, "fork") and (threading is None or threading.active_count() == 1)


class Child:
    """A forked process computing some bytes; ``result()`` waits for them."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        rfd, wfd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(rfd)
            _run_and_exit(read, wfd)
        os.close(wfd)
        self._rfd = rfd

    def result(self) -> bytes | None:
        """The child's bytes, or None if it failed."""
        chunks = []
        try:
            while chunk := os.read(self._rfd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(self._rfd)
            _, status = os.waitpid(self.pid, 0)
        return b"".join(chunks) if os.waitstatus_to_exitcode(status) == 0 else None


def _run_and_exit(read: Callable[[], bytes], wfd: int) -> None:
    code = 1
    try:
        data = memoryview(read())
        while data:
            data = data[os.write(wfd, data) :]
        code = 0
    except BaseException:
        pass
    finally:
        os._exit(code)  # no cleanup of the parent's objects, no flush of its buffers
