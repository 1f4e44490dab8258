"""Pure parsers of Slurm's command output (tested on output recorded from Slurm 22.05).

Nothing here runs a command or touches a file: each function takes the text a command printed
and returns plain data. ``scripts/record-slurm-fixtures.sh`` records the inputs of the tests with
the same format strings as below (a unit test checks that they stay in step).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from corral.records import Usage

SQUEUE_FORMAT = "JobArrayID:|,State:|,Name:|,RestartCnt:|,Reason:"
"""For ``squeue --Format``: native id (``123`` or ``123_4``), long state, job name, how many times
Slurm restarted the job (requeues: the wrapper's ``SLURM_RESTART_COUNT``, so the run number of
its run files), reason. ``:|`` is "no width, ``|`` after": fields are printed whole. The reason
goes last because it is free text; our job names are labels and never hold a ``|``. (``-o`` has
no letter for the restart count; its ``%i|%T|%j|%r`` prints the other fields the same way.)"""

SACCT_FIELDS = "JobID,State,ExitCode,JobName,TotalCPU,MaxRSS,ElapsedRaw,NodeList"
"""With ``-n -P``: one ``|``-separated line per job allocation and per step; the steps give only
the batch step's peak memory (``MaxRSS`` is empty on the allocation line). Lines of the first
four fields alone (recorded before usage was asked for) are read too."""

INVALID_JOB_ID = "Invalid job id specified"
"""What squeue prints (exit status 1) when none of the ids given with ``-j`` is known."""


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What corral needs from ``scontrol show config``, read once per backend."""

    max_array_size: int
    accounting: bool
    version: str = ""
    requeue_exits: frozenset[int] = frozenset()
    """``RequeueExit`` and ``RequeueExitHold``: exit codes on which Slurm runs the job again."""


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of squeue: a job or one array task."""

    native_id: str
    state: str
    name: str
    reason: str
    restarts: int | None = None
    """Slurm's restart count: the run Slurm is at (None: not known, a line without it)."""


@dataclass(frozen=True, slots=True)
class AcctRow:
    """One allocation line of sacct; ``state`` is bare (``CANCELLED by 0`` -> ``CANCELLED``)."""

    native_id: str
    state: str
    exit_code: int | None
    signal: int | None
    name: str
    detail: str = ""
    usage: Usage | None = None


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config``: ``Key = Value`` lines (headers and blank lines are skipped)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            result[key.strip()] = value.strip()
    return result


def cluster_info(config: dict[str, str]) -> ClusterInfo:
    """The settings that shape submission (array size) and monitoring (is there a sacct?)."""
    raw_size = config.get("MaxArraySize", "1001").split()[0]
    size = int(raw_size) if raw_size.isdigit() else 1001
    storage = config.get("AccountingStorageType", "accounting_storage/none")
    return ClusterInfo(
        max_array_size=size,
        accounting=storage not in ("", "accounting_storage/none", "(null)"),
        version=config.get("SLURM_VERSION", ""),
        requeue_exits=exit_codes(config.get("RequeueExit", ""))
        | exit_codes(config.get("RequeueExitHold", "")),
    )


def exit_codes(text: str) -> frozenset[int]:
    """``99,100-102`` -> {99, 100, 101, 102}; ``(null)`` or anything unreadable -> {}."""
    codes: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            codes.update(range(int(first), min(int(last or first), 255) + 1))
    return frozenset(codes)


def parse_sbatch(stdout: str) -> str:
    """``sbatch --parsable`` prints ``<jobid>`` or ``<jobid>;<cluster>``; warnings go to stderr."""
    for line in stdout.splitlines():
        head = line.strip().split(";", 1)[0]
        if head.isdigit():
            return head
    raise ValueError(f"no job id in sbatch output: {stdout.strip()[:200]!r}")


_TRANSIENT = (
    "socket timed out",
    "unable to contact slurm controller",
    "resource temporarily unavailable",
    "temporarily unable",
    "try again",
    "zero bytes were transmitted",
    "connection refused",
    "slurmctld is not responding",
    "communication connection failure",
    "job submit limit",
    "maxsubmitjob",
)


def is_transient(stderr: str) -> bool:
    """Does a failed scheduler command's message say that trying again later may work?

    Everything else (invalid partition, account, memory that no node has...) is permanent.
    """
    text = stderr.lower()
    return any(marker in text for marker in _TRANSIENT)


def error_line(stderr: str) -> str:
    """The most telling line of a command's error output, for a job's failure reason."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    failed = [line for line in lines if "failed" in line.lower()]
    return (failed or lines or ["no error message"])[-1].removeprefix("sbatch: error: ")


def parse_squeue(text: str) -> dict[str, QueueRow]:
    """``squeue -h -r -O SQUEUE_FORMAT``: ``{native_id: row}``. Lines of ``-o %i|%T|%j|%r`` (no
    restart count) are read too, with ``restarts`` None."""
    rows: dict[str, QueueRow] = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 4)
        if len(parts) < 4 or not parts[0]:
            continue
        restarts = None
        if len(parts) == 5 and parts[3].isdigit():
            job, state, name, count, reason = parts
            restarts = int(count)
        else:
            job, state, name, reason = line.strip().split("|", 3)
        for native_id in expand_native_id(job):  # only without --array: 6_[1-2] pending
            rows[native_id] = QueueRow(native_id, state, name, reason, restarts)
    return rows


def squeue_all_unknown(returncode: int, stderr: str) -> bool:
    """squeue exits 1 with "Invalid job id specified" when every id it was given has left."""
    return returncode == 1 and INVALID_JOB_ID in stderr


_ARRAY_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")


def expand_native_id(text: str) -> list[str]:
    """``5`` -> [5]; ``5_3`` -> [5_3]; ``5_[1,3-4%2]`` (tasks that never started) -> each task."""
    match = _ARRAY_RANGE.match(text)
    if not match:
        return [text]
    job, ranges = match.groups()
    tasks: list[str] = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            tasks += [f"{job}_{i}" for i in range(int(first), int(last or first) + 1)]
    return tasks


def _exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's ``ExitCode`` is ``<code>:<signal>``."""
    code, _, signal = text.partition(":")
    if not (code.isdigit() and signal.isdigit()):
        return None, None
    return int(code), int(signal)


def parse_sacct(text: str) -> dict[str, AcctRow]:
    """``sacct -n -P -o SACCT_FIELDS``: ``{native_id: row}``; array ranges are expanded, a job
    listed twice (requeued) keeps its last line, and the batch step's peak memory joins its
    job's usage."""
    rows: dict[str, AcctRow] = {}
    peaks: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) not in (4, 8) or not parts[0]:
            continue
        job, state_text, exit_text, name = parts[:4]
        if "." in job:  # a step
            peak = _kib_bytes(parts[5]) if len(parts) == 8 else None
            if job.endswith(".batch") and peak is not None:
                peaks[job.removesuffix(".batch")] = peak
            continue
        state, _, detail = state_text.partition(" ")
        code, signal = _exit_code(exit_text)
        usage = _usage(parts[4:]) if len(parts) == 8 else None
        for native_id in expand_native_id(job):
            rows[native_id] = AcctRow(native_id, state, code, signal, name, detail, usage)
    for native_id, peak in peaks.items():
        row = rows.get(native_id)
        if row is not None and row.usage is not None:
            rows[native_id] = replace(row, usage=replace(row.usage, max_rss_bytes=peak))
    return rows


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _kib_bytes(text: str) -> int | None:
    """``MaxRSS``: ``66208K``, ``1.5G`` (binary units; a bare number is bytes)."""
    unit = text[-1:].upper() if text[-1:].isalpha() else ""
    try:
        value = float(text[: len(text) - len(unit)] if unit else text)
    except ValueError:
        return None
    return round(value * _UNITS[unit]) if unit in _UNITS and value > 0 else None


def _duration(text: str) -> float | None:
    """``TotalCPU``: ``[D-][HH:]MM:SS[.mmm]`` -> seconds."""
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    if len(parts) not in (2, 3):
        return None
    try:
        seconds = float(days or 0) * 86400
        unit_total = 0.0
        for part in parts:
            unit_total = unit_total * 60 + float(part)
    except ValueError:
        return None
    return round(seconds + unit_total, 3)


def _usage(fields: list[str]) -> Usage:
    cpu, _, wall, nodes = fields
    host = nodes if nodes and nodes not in ("None assigned", "(null)") else None
    return Usage(_duration(cpu), None, float(wall) if wall.isdigit() else None, host)


def task_index(native_id: str) -> int | None:
    """``123_4`` -> 4; ``123`` -> None."""
    _, sep, task = native_id.partition("_")
    return int(task) if sep and task.isdigit() else None


def compress_ids(native_ids: list[str]) -> list[str]:
    """One argument per Slurm job for scancel (one RPC each): ``5_1 5_2 5_3 7`` -> ``5_[1-3] 7``."""
    plain: list[str] = []
    tasks: dict[str, list[int]] = {}
    for native_id in native_ids:
        index = task_index(native_id)
        if index is None:
            plain.append(native_id)
        else:
            tasks.setdefault(native_id.partition("_")[0], []).append(index)
    compressed = [f"{job}_[{','.join(_ranges(sorted(set(ix))))}]" for job, ix in tasks.items()]
    return plain + compressed


def _ranges(indices: list[int]) -> Iterator[str]:
    start = prev = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == prev + 1:
            prev = index
            continue
        yield str(start) if start == prev else f"{start}-{prev}"
        if index is not None:
            start = prev = index


_BENIGN_SCANCEL = ("already completing or completed", INVALID_JOB_ID, "job has already finished")


def per_job_errors(stderr: str) -> dict[str, str]:
    """scontrol's ``... for job 12_3`` lines: ``{native id: the line}``."""
    found: dict[str, str] = {}
    for line in stderr.splitlines():
        head, sep, job = line.strip().rpartition(" for job ")
        if sep and job:
            found[job] = head
    return found


def scancel_failed(stderr: str) -> bool:
    """Did scancel fail for a reason other than jobs that have already ended?"""
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    return any(not any(benign in line for benign in _BENIGN_SCANCEL) for line in errors)


Row = TypeVar("Row", QueueRow, AcctRow)


def job_ids(native_ids: Iterable[str]) -> list[str]:
    """The Slurm jobs to ask about: ``5_1 5_2 7`` -> ``5 7``. Asking for an array's id returns
    all its tasks, including the record Slurm keeps for tasks that never started."""
    return list(dict.fromkeys(native_id.partition("_")[0] for native_id in native_ids))


def lookup(rows: Mapping[str, Row], native_id: str) -> Row | None:
    """A task's own row, else its array's (an array cancelled before any task started is one
    row with the bare job id, in squeue and in sacct)."""
    row = rows.get(native_id)
    if row is None and task_index(native_id) is not None:
        row = rows.get(native_id.partition("_")[0])
    return row
