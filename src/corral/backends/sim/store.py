"""The sim backend's durable state: two append-only JSON-lines files per instance, read
incrementally and folded in memory. Plain blocking I/O: async callers go through a thread.

    <work_dir>/sim/<name>/           0700
        jobs.jsonl                   0600, a line per accepted job:
                                       {"uuid", "label", "native_id", "accepted_at"}
                                     and a line per cancel call: {"cancel": [uuid, ...], "at"}
        calls.jsonl                  0600, a line per verb call: {"verb", "at", "jobs"}

Every line is one ``O_APPEND`` write made before the verb returns, so what a caller was told is
on disk, and the call counts stay exact across a SIGKILL. Readers skip a line they cannot parse
(the one line a crash can tear) and leave a last line without its newline for the next read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from corral.records import Attempt

VERBS = ("submit", "status", "cancel", "reconcile", "fetch")
"""The verbs counted in the calls log (``fetch`` is ``fetch_outputs``)."""


class SimJob(NamedTuple):
    """A job the sim accepted (a tuple: 10^5 of them are built on every load)."""

    uuid: str
    label: str
    native_id: str
    accepted_at: float


@dataclass(frozen=True, slots=True)
class SimState:
    """What an instance's files hold: its accepted jobs and when the cancelled ones were
    cancelled, by uuid, and its calls by verb."""

    jobs: Mapping[str, SimJob]
    cancelled: Mapping[str, float]
    calls: Mapping[str, int]

    @property
    def native_ids(self) -> dict[str, str]:
        return {uuid: job.native_id for uuid, job in self.jobs.items()}


def sim_dir(work_dir: Path, name: str) -> Path:
    return work_dir / "sim" / name


def sim_state(work_dir: Path, name: str) -> SimState:
    """Read sim instance ``name``'s files under ``work_dir`` (no backend needed; creates
    nothing): for tests and benchmarks."""
    store = Store(sim_dir(work_dir, name))
    store.refresh()
    return store.snapshot()


class JsonLog:
    """An append-only JSON-lines file, read from where the last read stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        data = "".join(_encode(r) + "\n" for r in records).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:  # a regular file takes it in one write but for a full disk
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def read_new(self) -> Iterator[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        lines = data[:end].decode(errors="replace").splitlines()
        try:  # one parse for the lot; line by line only when a line is torn
            records = json.loads(f"[{','.join(lines)}]")
        except ValueError:
            records = [r for line in lines if (r := _loads(line)) is not None]
        yield from (r for r in records if isinstance(r, dict))


_encode = json.JSONEncoder(separators=(",", ":")).encode


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


class Store:
    """One instance's jobs and calls, as its files say (kept in step by ``refresh``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._jobs_log = JsonLog(directory / "jobs.jsonl")
        self._calls_log = JsonLog(directory / "calls.jsonl")
        self.jobs: dict[str, SimJob] = {}
        self.by_label: dict[str, SimJob] = {}
        self.cancelled: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self._next_id = 1

    def create(self) -> None:
        for path in (self.directory.parent, self.directory):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def refresh(self) -> None:
        """Fold in what was appended since the last read (by this instance or another)."""
        for record in self._jobs_log.read_new():
            try:
                self._apply_job(record)
            except (KeyError, TypeError, ValueError):
                continue  # not a record this code wrote: skipped, like a torn line
        for record in self._calls_log.read_new():
            self.calls[str(record.get("verb"))] += 1

    def _apply_job(self, record: Mapping[str, Any]) -> None:
        if "cancel" in record:
            at = float(record["at"])
            for uuid in record["cancel"]:
                if uuid in self.jobs:
                    self.cancelled.setdefault(uuid, at)
            return
        uuid, native_id = str(record["uuid"]), str(record["native_id"])
        if uuid not in self.jobs:
            job = SimJob(uuid, str(record["label"]), native_id, float(record["accepted_at"]))
            self.jobs[uuid] = self.by_label[job.label] = job
            self._next_id = max(self._next_id, int(native_id.removeprefix("sim-")) + 1)

    def record_call(self, verb: str, jobs: int, at: float) -> int:
        """Log one call of ``verb`` about ``jobs`` jobs; how many calls of it there have been."""
        self._calls_log.append([{"verb": verb, "at": at, "jobs": jobs}])
        self.refresh()
        return self.calls[verb]

    def accept(self, attempts: Sequence[Attempt], at: float) -> dict[str, str]:
        """Accept the attempts not accepted before (one append); all their native ids."""
        with self._locked():  # another instance on the same files must not take the same ids
            self.refresh()
            fresh = {a.uuid: a for a in attempts if a.uuid not in self.jobs}
            records = [
                {"uuid": a.uuid, "label": a.label, "native_id": f"sim-{n}", "accepted_at": at}
                for n, a in enumerate(fresh.values(), start=self._next_id)
            ]
            if records:
                self._jobs_log.append(records)
                self.refresh()
        return {a.uuid: self.jobs[a.uuid].native_id for a in attempts}

    def cancel(self, uuids: Sequence[str], at: float) -> None:
        """Record the cancel of the accepted, live jobs among ``uuids`` (one append)."""
        self.refresh()
        targets = [u for u in uuids if u in self.jobs and u not in self.cancelled]
        if targets:
            self._jobs_log.append([{"cancel": targets, "at": at}])
            self.refresh()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._jobs_log.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def snapshot(self) -> SimState:
        return SimState(
            dict(self.jobs), dict(self.cancelled), {verb: self.calls[verb] for verb in VERBS}
        )
