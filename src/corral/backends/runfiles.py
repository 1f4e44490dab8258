"""The run-files protocol: what a job wrapper and a submitter leave in an attempt dir, and how
to read it. Every backend whose jobs run under a corral wrapper uses it (local, Slurm, and the
batch backends after them), so there is one reader to harden.

The wrapper writes, per run of the job (a batch scheduler may requeue it: Slurm's
``SLURM_RESTART_COUNT``; the local wrapper has only run 0):

- ``run-start.<run>``: ``<epoch> <native id> <host>`` when the run starts (``-`` for a field the
  wrapper cannot know cheaply: the local wrapper writes ``- <pid> -``, builtins only);
- ``run-exit.<run>``: ``<exit code> <terminated> [<epoch>]`` when it ends, where ``terminated``
  is 1 if the wrapper itself got SIGTERM (a kill by corral, or a scheduler cancelling, timing
  out or requeueing the job).

Before calling the scheduler a batch backend writes ``submit-ticket``: ``<label> <task index or
->``, which finds the job again after a crash. The parsers are pure; ``read_run_files`` does the
file I/O and is meant to run in a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

START = "run-start"
EXIT = "run-exit"
TICKET = "submit-ticket"


@dataclass(frozen=True, slots=True)
class ExitRecord:
    code: int
    terminated: bool
    at: float | None = None

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


@dataclass(frozen=True, slots=True)
class Ticket:
    label: str
    index: int | None


def parse_start(text: str) -> tuple[float | None, str | None]:
    fields = text.split()
    return _float(fields[0] if fields else ""), fields[1] if len(fields) > 1 else None


def parse_exit(text: str) -> ExitRecord | None:
    fields = text.split()
    if not fields or not fields[0].lstrip("-").isdigit():
        return None
    terminated = len(fields) > 1 and fields[1] == "1"
    return ExitRecord(int(fields[0]), terminated, _float(fields[2]) if len(fields) > 2 else None)


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


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_run_files(attempt_dir: Path) -> RunFiles:
    """One listing and at most two small reads per attempt (blocking: call from a thread)."""
    try:
        names = os.listdir(attempt_dir)
    except (FileNotFoundError, NotADirectoryError):
        return RunFiles()
    run = latest_run(names)
    if run is None:
        return RunFiles()
    start = _read(attempt_dir / f"{START}.{run}")
    started_at, native_id = parse_start(start) if start else (None, None)
    ended = _read(attempt_dir / f"{EXIT}.{run}")
    return RunFiles(run, native_id, started_at, parse_exit(ended) if ended else None)


def read_ticket(attempt_dir: Path) -> Ticket | None:
    text = _read(attempt_dir / TICKET)
    return parse_ticket(text) if text else None
