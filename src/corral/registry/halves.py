"""A read run in a forked child process, beside the same read of another part in this one.

SQLite formats a listing on one core, and a cold ``corral ls`` of 100,000 jobs spends most of
its time there; reading the two halves of the job numbers at once, in two processes, cuts
that by nearly half on a machine with two cores (a 100,000-job JSON listing: 0.47-0.55 s to
0.25-0.29 s). Not threads: every allocation in SQLite takes one
process-wide mutex (its memory statistics), which two reading threads fight over (tried: twice
the CPU time, no gain in wall time).

The child is only forked from a process without other threads (a fork copies no thread, so a
lock another thread held would stay locked in the child) and while this process has no
SQLite connection open (SQLite's rule: no connection crosses a fork). It runs its read on a
connection of its own, writes the bytes to a memory file and exits; whatever goes wrong
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
        # Into a memory file, not a pipe: the child writes its tens of MB without waiting for
        # this process, which reads them only once its own half is done.
        fd = _memory_file()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            _run_and_exit(read, fd)
        self._fd = fd

    def result(self) -> bytes | None:
        """The child's bytes, or None if it failed."""
        try:
            _, status = os.waitpid(self.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                return None
            return os.pread(self._fd, os.fstat(self._fd).st_size, 0)
        finally:
            os.close(self._fd)


def _memory_file() -> int:
    if hasattr(os, "memfd_create"):  # (Linux)
        return os.memfd_create("corral-listing", os.MFD_CLOEXEC)
    import tempfile

    with tempfile.TemporaryFile() as handle:  # (elsewhere: a file that has no name already)
        return os.dup(handle.fileno())


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
