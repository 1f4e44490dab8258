"""Pure parsers of Grid Engine's command output (tested on output recorded from SGE 8.1.9).

Nothing here runs a command or touches a file. ``scripts/record-sge-fixtures.sh`` records the
inputs of the tests. Native ids are ``<job>.<task>`` for array tasks (tasks count from 1) and
``<job>`` for a plain job.

Quirks handled here: ``qsub -terse`` prints ``52.1-50:1`` for an array; ``qstat -xml`` lists
running tasks one per ``job_list`` but collapses pending ones (``<tasks>3-6:1</tasks>`` or
``3,4``); ``qacct`` prints one record per array task with ``taskid undefined`` for a plain job,
and memory with decimal prefixes (``ru_maxrss 207.859KB`` is 207,859 KiB: getrusage's kilobytes
printed as if they were bytes).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from corral.records import Usage


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One job or array task in ``qstat -xml``: its state letters (``r``, ``qw``, ``hqw``,
    ``Eqw``, ``dr``...) and name."""

    native_id: str
    state: str
    name: str


@dataclass(frozen=True, slots=True)
class AcctRow:
    """One ``qacct -j`` record: how a job or task ended and what it used."""

    native_id: str
    name: str
    exit_status: int | None
    failed: str
    usage: Usage


def native_id(job: str, task: str | int | None) -> str:
    return job if task in (None, "", "undefined") else f"{job}.{task}"


def job_of(native: str) -> str:
    """``52.3`` -> ``52``."""
    return native.partition(".")[0]


def task_of(native: str) -> int | None:
    _, sep, task = native.partition(".")
    return int(task) if sep and task.isdigit() else None


def parse_qsub(stdout: str) -> str:
    """``qsub -terse``: ``52`` or ``52.1-50:1`` -> ``52``."""
    for line in stdout.splitlines():
        head = line.strip().partition(".")[0]
        if head.isdigit():
            return head
    raise ValueError(f"no job id in qsub output: {stdout.strip()[:200]!r}")


def expand_tasks(text: str) -> list[int]:
    """``3`` / ``3,4`` / ``1-6:1`` / ``1-7:2`` -> the task numbers."""
    tasks: list[int] = []
    for part in text.split(","):
        span, _, step = part.strip().partition(":")
        first, _, last = span.partition("-")
        if not (first.isdigit() and (not last or last.isdigit()) and (not step or step.isdigit())):
            continue
        tasks += range(int(first), int(last or first) + 1, max(1, int(step or 1)))
    return tasks


def parse_qstat(text: str) -> dict[str, QueueRow]:
    """``qstat -xml``: ``{native_id: row}`` over running and pending jobs, tasks expanded."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"qstat -xml printed no valid XML: {exc}") from exc
    rows: dict[str, QueueRow] = {}
    for item in root.iter("job_list"):
        job = item.findtext("JB_job_number", "").strip()
        if not job.isdigit():
            continue
        state = item.findtext("state", "").strip()
        name = item.findtext("JB_name", "").strip()
        tasks = item.findtext("tasks")
        ids = [native_id(job, t) for t in expand_tasks(tasks)] if tasks else [job]
        for native in ids:
            rows[native] = QueueRow(native, state, name)
    return rows


def lookup(rows: Mapping[str, QueueRow], native: str) -> QueueRow | None:
    """A task's own row; a one-task array submitted as a plain job is under its job id."""
    return rows.get(native)


_RECORD = re.compile(r"^=+\s*$", re.MULTILINE)
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTP]?)B?$")
_DECIMAL = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


def _seconds(text: str) -> float | None:
    value = text.removesuffix("s")
    try:
        return float(value)
    except ValueError:
        return None


def _rss_bytes(text: str) -> int | None:
    match = _SIZE.match(text)
    if not match:
        return None
    kib = float(match.group(1)) * _DECIMAL[match.group(2)]
    return round(kib * 1024) if kib > 0 else None


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_qacct(text: str) -> dict[str, AcctRow]:
    """``qacct -j ID``: ``{native_id: record}``; a task run twice (rescheduled) keeps its last."""
    rows: dict[str, AcctRow] = {}
    for block in _RECORD.split(text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.strip().partition(" ")
            if key:
                fields[key] = value.strip()
        job = fields.get("jobnumber", "")
        if not job.isdigit():
            continue
        native = native_id(job, fields.get("taskid"))
        usage = Usage(
            cpu_seconds=_seconds(fields.get("cpu", "")),
            max_rss_bytes=_rss_bytes(fields.get("ru_maxrss", "")),
            wall_seconds=_seconds(fields.get("ru_wallclock", "")),
            host=fields.get("hostname") or None,
        )
        exit_status = _int(fields.get("exit_status", "").partition(" ")[0])  # 137 (Killed)
        failed = fields.get("failed", "0").strip()
        rows[native] = AcctRow(native, fields.get("jobname", ""), exit_status, failed, usage)
    return rows


_ERROR = re.compile(r"^error reason\s+(\d+):\s+(.*)$")


def parse_errors(text: str) -> dict[str, str]:
    """``qstat -j ID,...`` (plain text): ``{native_id: error reason}`` of tasks in error
    (``Eqw``). A plain job's one task is number 1 and is keyed by both ``N`` and ``N.1``."""
    errors: dict[str, str] = {}
    job = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "job_number":
            job = value.strip()
            continue
        match = _ERROR.match(line.strip())
        if match and job:
            reason = match.group(2).split("]: ", 1)[-1].strip()
            errors[native_id(job, match.group(1))] = reason
            if match.group(1) == "1":
                errors.setdefault(job, reason)
    return errors


_TRANSIENT = (
    "unable to contact qmaster",
    "unable to send message to qmaster",
    "can't unpack",
    "commlib error",
    "got send timeout",
    "timeout",
    "try again",
    "connection refused",
)


def is_transient(stderr: str) -> bool:
    """Does a failed command's message say that trying again later may work?"""
    text = stderr.lower()
    return any(marker in text for marker in _TRANSIENT)


def error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return (lines or ["no error message"])[-1]


def unknown_only(stderr: str) -> bool:
    """qdel/qhold/qrls exit non-zero when a job no longer exists: benign when that is all."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return all("does not exist" in line for line in lines)


def job_task_list(natives: Iterable[str]) -> list[str]:
    """One argument per job for qdel/qhold/qrls: ``5.1 5.2 5.3 7`` -> ``5.1-3 7`` (ranges of
    consecutive tasks, one argument each; SGE takes ``job.first-last``)."""
    plain: list[str] = []
    tasks: dict[str, list[int]] = {}
    for native in natives:
        task = task_of(native)
        if task is None:
            plain.append(native)
        else:
            tasks.setdefault(job_of(native), []).append(task)
    result = list(dict.fromkeys(plain))
    for job, numbers in tasks.items():
        ordered = sorted(set(numbers))
        start = prev = ordered[0]
        for number in [*ordered[1:], None]:
            if number is not None and number == prev + 1:
                prev = number
                continue
            result.append(f"{job}.{start}" if start == prev else f"{job}.{start}-{prev}")
            if number is not None:
                start = prev = number
    return result
