"""The run-files protocol: what a job wrapper and a submitter leave in an attempt dir, and how
to read it. Every backend whose jobs run under a corral wrapper uses it (local, Slurm, and the
batch backends after them), so there is one reader to harden.

The wrapper writes, per run of the job (a batch scheduler may requeue it: Slurm's
``SLURM_RESTART_COUNT``, Grid Engine's next free number; the local wrapper has only run 0; a
backend takes an exit for the job's end only if its run is the one the scheduler is at):

- ``run-start.<run>``: ``<epoch> <native id> <host>`` when the run starts (``-`` for a field the
  wrapper cannot know cheaply: the local wrapper writes ``- <pid> -``, builtins only);
- ``run-exit.<run>``: ``<exit code> <terminated> [<epoch> [replaced]]`` when it ends, where
  ``terminated`` is 1 if the wrapper itself got SIGTERM (a kill by corral, or a scheduler
  cancelling, timing out or requeueing the job), and ``replaced`` says that the job had put
  something of its own where this file goes (``-`` for an epoch the wrapper did not take).

- ``run-usage.<run>``: what the wrapper's ``times`` builtin printed when the job ended (the
  second line is the CPU time of its children: ``0m1.250000s 0m0.040000s``), the job's usage
  when no scheduler accounting says better. Read only once the run has ended; a bad one is
  ignored (usage is information, never a verdict).

Before calling the scheduler a batch backend writes ``submit-ticket``: ``<label> <task index or
->``, which finds the job again after a crash. The parsers are pure; ``read_run_files`` does the
file I/O and is meant to run in a worker thread.

Everything in an attempt dir is written by, or within reach of, the job itself, so it is hostile
input: ``read_small`` opens a file only if it is a regular file (never through a symbolic link,
never blocking on a FIFO or device: ``lstat`` first, then ``O_NOFOLLOW | O_NONBLOCK`` and the same
inode checked again) and reads at most ``MAX_BYTES``. Anything else raises ``Untrusted``, which
a backend turns into a failed job with that reason; it never escapes a backend.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from corral.records import Usage

START = "run-start"
EXIT = "run-exit"
USAGE = "run-usage"
TICKET = "submit-ticket"
MAX_BYTES = 4096
"""The largest status file we read: real ones are a line; a bigger one is sabotage."""


class Untrusted(Exception):
    """A status file that is not a small regular file (a directory, FIFO, link, device or huge
    file the job put in its place). The message is a reason to show on the failed job."""


@dataclass(frozen=True, slots=True)
class ExitRecord:
    code: int
    terminated: bool
    at: float | None = None
    replaced: bool = False

    @property
    def clean(self) -> bool:
        """Did the job end on its own? A run stopped by a scheduler's signals (``terminated``, or
        a child that died of a signal before the wrapper saw its own TERM) is left to the
        scheduler, which knows why (TIMEOUT, CANCELLED, requeue...)."""
        return not self.terminated and self.code <= 128


@dataclass(frozen=True, slots=True)
class RunFiles:
    """What the wrapper recorded for the latest run it started (all None: it never started)."""

    run: int | None = None
    native_id: str | None = None
    started_at: float | None = None
    exit: ExitRecord | None = None
    problem: str | None = None
    """Why the files cannot be trusted (``Untrusted``): the job ends failed with this reason."""
    host: str | None = None
    usage: Usage | None = None
    """What the wrapper measured of the run, once it has ended (see ``usage_of``)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    label: str
    index: int | None


def parse_start(text: str) -> tuple[float | None, str | None]:
    fields = text.split()
    return _float(fields[0] if fields else ""), fields[1] if len(fields) > 1 else None


def start_host(text: str) -> str | None:
    fields = text.split()
    host = fields[2] if len(fields) > 2 else "-"
    return None if host in ("-", "?") else host


def _clock(text: str) -> float | None:
    """``1m2.500000s`` (``times``) -> 62.5."""
    minutes, sep, rest = text.removesuffix("s").partition("m")
    if not sep:
        return None
    whole, seconds = _float(minutes), _float(rest)
    return None if whole is None or seconds is None else whole * 60 + seconds


def parse_times(text: str) -> float | None:
    """The children's user + system CPU seconds from the output of ``times``."""
    lines = text.splitlines()
    fields = lines[1].split() if len(lines) > 1 else []
    clocks = [_clock(f) for f in fields[:2]]
    if len(clocks) != 2 or None in clocks:
        return None
    return round(sum(c for c in clocks if c is not None), 6)


def usage_of(
    times: str | None, started: float | None, ended: float | None, host: str | None
) -> Usage | None:
    """The wrapper's view of a run's usage (no peak memory: a shell builtin cannot see it)."""
    cpu = parse_times(times) if times else None
    wall = round(ended - started, 3) if started is not None and ended is not None else None
    if cpu is None and wall is None:
        return None
    return Usage(cpu, None, wall if wall is None or wall >= 0 else None, host)


def parse_exit(text: str) -> ExitRecord | None:
    fields = text.split()
    # an exit status is 0..255; anything else was not written by a wrapper (a job may forge it)
    code = fields[0] if fields else ""
    if not (code.isascii() and code.isdigit() and len(code) <= 3 and int(code) <= 255):
        return None
    terminated = len(fields) > 1 and fields[1] == "1"
    at = _float(fields[2]) if len(fields) > 2 else None
    replaced = len(fields) > 3 and fields[3] == "replaced"
    return ExitRecord(int(fields[0]), terminated, at, replaced)


def parse_ticket(text: str) -> Ticket | None:
    fields = text.split()
    if len(fields) != 2 or not (fields[1] == "-" or fields[1].isdigit()):
        return None
    return Ticket(fields[0], None if fields[1] == "-" else int(fields[1]))


def render_ticket(ticket: Ticket) -> str:
    return f"{ticket.label} {'-' if ticket.index is None else ticket.index}\n"


def latest_run(names: list[str]) -> int | None:
    """The highest run number among the status file names of a dir listing."""
    runs = [
        int(suffix)
        for name in names
        for prefix, _, suffix in [name.rpartition(".")]
        if prefix in (START, EXIT) and suffix.isdigit()
    ]
    return max(runs, default=None)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_small(path: Path, limit: int = MAX_BYTES) -> str | None:
    """The text of a small regular file; None if it does not exist; ``Untrusted`` if it is
    anything else (blocking I/O: call from a thread). Never follows a link, never blocks."""
    try:
        before = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise Untrusted(f"{path.name}: {exc.strerror}") from exc
    if not stat.S_ISREG(before.st_mode):
        raise Untrusted(f"{path.name} is not a regular file ({_kind(before.st_mode)})")
    try:
        fd = os.open(path, _OPEN)
    except FileNotFoundError:
        return None  # removed between the two calls
    except OSError as exc:
        why = (
            "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be read: {exc.strerror}"
        )
        raise Untrusted(f"{path.name} {why}") from exc
    try:
        after = os.fstat(fd)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise Untrusted(f"{path.name} was replaced while it was read")
        if not stat.S_ISREG(after.st_mode):
            raise Untrusted(f"{path.name} is not a regular file ({_kind(after.st_mode)})")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise Untrusted(f"{path.name} is larger than {limit} bytes")
    return data.decode("utf-8", "replace")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return "not a file"


def read_run_files(attempt_dir: Path) -> RunFiles:
    """One listing and at most two small reads per attempt (blocking: call from a thread).
    Files the job sabotaged give ``RunFiles(problem=...)``; nothing raises."""
    try:
        names = os.listdir(attempt_dir)
    except (FileNotFoundError, NotADirectoryError):
        return RunFiles()
    except OSError as exc:
        return RunFiles(problem=f"cannot list the attempt dir: {exc.strerror}")
    run = latest_run(names)
    if run is None:
        return RunFiles()
    try:
        start = read_small(attempt_dir / f"{START}.{run}")
        ended = read_small(attempt_dir / f"{EXIT}.{run}")
    except Untrusted as exc:
        return RunFiles(run, problem=f"status file sabotaged: {exc}")
    started_at, native_id = parse_start(start) if start else (None, None)
    record = parse_exit(ended) if ended else None
    host = start_host(start) if start else None
    usage = None
    if record is not None:
        try:
            times = read_small(attempt_dir / f"{USAGE}.{run}")
        except Untrusted:
            times = None
        usage = usage_of(times, started_at, record.at, host)
    return RunFiles(run, native_id, started_at, record, host=host, usage=usage)


def read_ticket(attempt_dir: Path) -> Ticket | None:
    try:
        text = read_small(attempt_dir / TICKET)
    except Untrusted:
        return None  # not ours: the attempt is submitted again (a ticket is corral's own file)
    return parse_ticket(text) if text else None


def wrapper_usage(attempt_dir: Path, run: int, host: str | None = None) -> Usage | None:
    """The usage the local wrapper left for ``run``: CPU from ``run-usage``, wall time from the
    start and exit files' times (it takes no clock itself: builtins only). Never raises."""
    try:
        times = read_small(attempt_dir / f"{USAGE}.{run}")
        started = os.lstat(attempt_dir / f"{START}.{run}").st_mtime
        ended = os.lstat(attempt_dir / f"{EXIT}.{run}").st_mtime
    except (Untrusted, OSError):
        return None
    return usage_of(times, started, ended, host)
