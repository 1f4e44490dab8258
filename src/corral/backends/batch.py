"""What every batch-scheduler backend (Slurm, Grid Engine) shares around its own commands.

A batch backend groups attempts that need the same scheduler options into one array job; each
array task reads its attempt dir from a task list (line ``task + 1`` for a 0-based task index,
line ``task`` for a 1-based one), and writes the run files of ``corral.backends.runfiles``. Before
calling the scheduler it writes each attempt's ticket (label + task index), so a crash between
the scheduler's answer and the registry's commit is found again by the job's name.

``BatchBackend`` is the verbs' common skeleton: a submit that looks for attempts tried before
and submits the rest batch by batch, keeping what went through when a call fails; a status
cycle that reads every attempt's run files first (a clean end costs no scheduler call) and asks
the scheduler about the rest in one query. Pure planners (``plan``, ``chunk_ids``) and blocking
file I/O meant for a worker thread (``write_batch``, ``read_all``, ``read_reconcile``,
``tried``) are used by both.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from corral.backends.base import AsyncBackend, Report, Submitted
from corral.backends.commands import Runner
from corral.backends.runfiles import (
    EXIT,
    START,
    TICKET,
    USAGE,
    RunFiles,
    Ticket,
    read_run_files,
    read_ticket,
    render_ticket,
)
from corral.errors import BackendUnavailable, TransientBackendError
from corral.records import Attempt, Observation
from corral.sandbox import SUBMITTED
from corral.states import JobState

O = TypeVar("O", bound=Hashable)  # noqa: E741 (the options a batch is grouped by)


class OptionError(ValueError):
    """An option cannot be turned into a scheduler flag; the message names it."""


@dataclass(frozen=True, slots=True)
class Batch(Generic[O]):
    """Attempts submitted by one scheduler call; the first one's label names the job."""

    attempts: tuple[Attempt, ...]
    options: O

    @property
    def label(self) -> str:
        return self.attempts[0].label

    @property
    def dir(self) -> Path:
        return self.attempts[0].attempt_dir

    @property
    def is_array(self) -> bool:
        return len(self.attempts) > 1


class BatchBackend(AsyncBackend):
    """The submit and status skeleton of a batch-scheduler backend; subclasses give the hooks."""

    tools: ClassVar[tuple[str, ...]] = ()
    """The commands the backend runs; ``start`` finds each on PATH or the backend is down."""
    scheduler: ClassVar[str] = "the scheduler"
    runner: Runner
    _missing_since: dict[str, float]

    @property
    def calls(self) -> Counter[str]:
        """How many times each command ran (for benchmarks and tests)."""
        return self.runner.calls

    def call_counts(self) -> Mapping[str, int]:
        return dict(self.runner.calls)

    async def start(self, report: Report) -> None:
        missing = [tool for tool in self.tools if shutil.which(tool) is None]
        if missing:
            raise BackendUnavailable(
                f"{self.scheduler} tools not found on PATH: {', '.join(missing)}"
            )

    @abstractmethod
    async def plan(self, attempts: Sequence[Attempt]) -> tuple[list[Any], dict[str, str]]:
        """Batches of attempts, and ``{uuid: why}`` for those that cannot go."""

    @abstractmethod
    async def submit_batch(self, batch: Any) -> tuple[dict[str, str] | None, str]:
        """Submit one batch: ``({uuid: native id}, "")`` or ``(None, why it was refused)``."""

    @abstractmethod
    def ended(self, attempt: Attempt, files: RunFiles) -> Observation | None:
        """The wrapper saw the latest run end on its own (no scheduler call), else None."""

    @abstractmethod
    async def query(
        self, attempts: Sequence[Attempt], files: Mapping[str, RunFiles]
    ) -> dict[str, Observation]:
        """What the scheduler says of attempts whose files do not settle them."""

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        """One scheduler call per batch. Attempts tried before (a ticket exists: a previous call
        failed or timed out) are first looked for, so that none is submitted twice."""
        before = await asyncio.to_thread(tried, attempts)
        accepted = dict(await self.reconcile([a for a in attempts if a.uuid in before]))
        batches, refused = await self.plan([a for a in attempts if a.uuid not in accepted])
        refused = {uuid: f"not submitted: {why}" for uuid, why in refused.items()}
        for batch in batches:
            try:
                ids, why = await self.submit_batch(batch)
            except TransientBackendError as exc:
                # the monitor keeps what went through and retries only the rest
                raise TransientBackendError(str(exc), accepted=accepted, refused=refused) from exc
            if ids is not None:
                accepted.update(ids)
            else:
                refused.update({a.uuid: why for a in batch.attempts})
        return Submitted(accepted, refused)

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        live = [a for a in attempts if a.native_id]
        files = await asyncio.to_thread(read_all, live)
        observed: dict[str, Observation] = {}
        ask: list[Attempt] = []
        for attempt in live:
            obs = self.ended(attempt, files[attempt.uuid])
            if obs is None:
                ask.append(attempt)
            else:
                observed[attempt.uuid] = obs
        if ask:
            observed.update(await self.query(ask, files))
        for uuid, obs in observed.items():
            if obs.state != JobState.UNKNOWN:
                self._missing_since.pop(uuid, None)
            problem = files[uuid].problem
            if problem and obs.state in (JobState.COMPLETING, JobState.COMPLETED):
                # a job that sabotaged its own status files never passes as a success
                observed[uuid] = Observation(uuid, JobState.FAILED, problem, obs.exit_code)
        return observed


def plan(
    attempts: Sequence[Attempt], options_of: Callable[[Attempt], O], max_size: int
) -> tuple[list[Batch[O]], dict[str, str]]:
    """Group attempts by their options into batches of at most ``max_size``; also return
    ``{uuid: reason}`` for those whose options ``options_of`` refused (``OptionError``)."""
    groups: dict[O, list[Attempt]] = {}
    rejected: dict[str, str] = {}
    for attempt in attempts:
        try:
            if "\n" in str(attempt.attempt_dir):
                raise OptionError("the attempt dir's path holds a newline")
            options = options_of(attempt)
        except OptionError as exc:
            rejected[attempt.uuid] = str(exc)
            continue
        groups.setdefault(options, []).append(attempt)
    size = max(1, max_size)
    batches = [
        Batch(tuple(members[i : i + size]), options)
        for options, members in groups.items()
        for i in range(0, len(members), size)
    ]
    return batches, rejected


def chunk_ids(ids: Sequence[str], limit: int = 100_000, sep: int = 1) -> list[list[str]]:
    """Split ids so that each joined list stays under ``limit`` characters (Linux caps one
    argument at 128 KiB, and a whole command line at about 2 MiB)."""
    chunks: list[list[str]] = []
    size = limit
    for native_id in ids:
        if size + len(native_id) + sep > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(native_id)
        size += len(native_id) + sep
    return chunks


def render_script(
    batch: Batch[Any], call: str, directives: Sequence[str], wrapper: str, files: tuple[str, str]
) -> str:
    """A batch script: a header naming the submit ``call``, the scheduler ``directives``, then
    the ``wrapper`` every task runs, given the batch's task list and error file ``files`` and
    the run-file names (``{tasks}``, ``{errors}``, ``{start}``, ``{exit}``, ``{usage}``)."""
    lines = [
        "#!/bin/sh",
        f"# generated by corral for {len(batch.attempts)} attempt(s), submitted with:",
        f"#   {call}",
        *directives,
    ]
    body = wrapper.format(
        tasks=shlex.quote(str(batch.dir / files[0])),
        errors=shlex.quote(str(batch.dir / files[1])),
        start=START,
        exit=EXIT,
        usage=USAGE,
    )
    return "\n".join(lines) + "\n" + body


def render_tasks(attempts: Sequence[Attempt]) -> str:
    """The task list: one attempt dir per line, in task order."""
    return "".join(f"{a.attempt_dir}\n" for a in attempts)


# ---- blocking file I/O, run in a worker thread


def write_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``path`` whole or not at all (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_batch(
    batch: Batch[O], files: Sequence[tuple[str, str, int]], first_index: int | None
) -> None:
    """The batch's files (``(name, text, mode)`` in its dir; the first is the script), then the
    tickets that make its attempts findable after a crash. ``first_index`` is the task index of
    the first attempt (None: a plain job, not an array)."""
    for name, text, mode in files:
        write_file(batch.dir / name, text, mode)
    script = batch.dir / files[0][0]
    for offset, attempt in enumerate(batch.attempts):
        index = None if first_index is None else first_index + offset
        write_file(attempt.attempt_dir / TICKET, render_ticket(Ticket(batch.label, index)))
        link = attempt.attempt_dir / SUBMITTED
        link.unlink(missing_ok=True)
        link.symlink_to(script)


def read_all(attempts: Sequence[Attempt]) -> dict[str, RunFiles]:
    return {a.uuid: read_run_files(a.attempt_dir) for a in attempts}


def read_reconcile(attempts: Sequence[Attempt]) -> list[tuple[Attempt, Ticket | None, RunFiles]]:
    return [(a, read_ticket(a.attempt_dir), read_run_files(a.attempt_dir)) for a in attempts]


def tried(attempts: Sequence[Attempt]) -> set[str]:
    """The attempts a previous submit call already wrote a ticket for."""
    return {a.uuid for a in attempts if read_ticket(a.attempt_dir) is not None}
