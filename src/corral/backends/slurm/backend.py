"""The Slurm backend: the I/O around the pure planners and parsers of this package.

Costs, whatever the number of jobs: a submit is one ``sbatch --array`` per group of attempts
with the same sbatch options (split only by ``MaxArraySize``); a status cycle is at most one
``squeue`` (ids chunked only where one argument would grow past 100 kB), plus one ``sacct`` for
jobs that have left squeue when accounting exists; a kill is one ``scancel``. ``scontrol show
config`` is read once. Jobs whose wrapper already recorded a clean end cost no scheduler call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from corral import faults
from corral.backends.base import (
    AsyncBackend,
    BackendConfig,
    BackendOptions,
    JobOptions,
    Report,
    Submitted,
)
from corral.backends.commands import Runner
from corral.backends.runfiles import (
    TICKET,
    RunFiles,
    Ticket,
    read_run_files,
    read_ticket,
    render_ticket,
)
from corral.backends.slurm import observe, parse, render
from corral.backends.slurm.options import SlurmJobOptions, SlurmOptions
from corral.errors import BackendUnavailable, TransientBackendError
from corral.records import Attempt, Observation
from corral.sandbox import SUBMITTED
from corral.states import JobState

log = logging.getLogger("corral.backends.slurm")
_TOOLS = ("sbatch", "squeue", "scancel", "scontrol")
_ALL_STATES = (
    "PENDING,RUNNING,SUSPENDED,COMPLETED,CANCELLED,FAILED,TIMEOUT,NODE_FAIL,PREEMPTED,BOOT_FAIL,"
    "DEADLINE,OUT_OF_MEMORY,REQUEUED,RESIZING,REVOKED"
)
_SQUEUE = ("squeue", "--noheader", "--states=all", "--array", f"--format={parse.SQUEUE_FORMAT}")
_SACCT = ("sacct", "--noheader", "--parsable2", "--allocations", f"--format={parse.SACCT_FIELDS}")


class SlurmBackend(AsyncBackend):
    """Drives the Slurm command-line tools; see the module docstring for what each verb costs."""

    Options: ClassVar[type[BackendOptions]] = SlurmOptions
    JobOptions: ClassVar[type[JobOptions]] = SlurmJobOptions
    can_hold: ClassVar[bool] = True
    options: SlurmOptions

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.lost_after = self.options.lost_after
        self.runner = Runner(
            timeout=self.options.command_timeout, missing_hint="is the Slurm client installed?"
        )
        self._sbatch_defaults = self.options.sbatch()
        self._cluster: parse.ClusterInfo | None = None
        self._report: Report = lambda obs: None
        self._missing_since: dict[str, float] = {}

    @property
    def calls(self) -> Counter[str]:
        """How many times each Slurm command ran (for benchmarks and tests)."""
        return self.runner.calls

    def call_counts(self) -> Mapping[str, int]:
        return dict(self.runner.calls)

    async def start(self, report: Report) -> None:
        missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
        if missing:
            raise BackendUnavailable(f"Slurm tools not found on PATH: {', '.join(missing)}")
        self._report = report

    async def stop(self) -> None:
        return None  # no connection or child process outlives a call

    async def cluster(self) -> parse.ClusterInfo:
        """``MaxArraySize`` and whether accounting exists, read once."""
        if self._cluster is None:
            result = await self.runner.check(["scontrol", "show", "config"])
            self._cluster = parse.cluster_info(parse.parse_config(result.stdout))
            log.info(
                "slurm %s: MaxArraySize=%d accounting=%s",
                self._cluster.version,
                self._cluster.max_array_size,
                self._cluster.accounting,
            )
        return self._cluster

    # ---- submit and reconcile

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        """One sbatch per batch. Attempts tried before (a ticket exists: a previous call failed
        or timed out) are first looked for, so that none is submitted twice."""
        info = await self.cluster()
        tried = await asyncio.to_thread(_tickets, attempts)
        accepted = dict(await self.reconcile([a for a in attempts if a.uuid in tried]))
        fresh = [a for a in attempts if a.uuid not in accepted]
        batches, refused = render.plan(fresh, self._sbatch_defaults, info.max_array_size)
        refused = {uuid: f"not submitted: {why}" for uuid, why in refused.items()}
        for batch in batches:
            try:
                job_id, why = await self._sbatch(batch)
            except TransientBackendError as exc:
                # the monitor keeps what went through and retries only the rest
                raise TransientBackendError(str(exc), accepted=accepted, refused=refused) from exc
            if job_id is not None:
                accepted.update(batch.native_ids(job_id))
            else:
                refused.update({a.uuid: why for a in batch.attempts})
        return Submitted(accepted, refused)

    async def _sbatch(self, batch: render.Batch) -> tuple[str | None, str]:
        """Submit one batch: (its job id, "") or (None, why sbatch refused it for good)."""
        await asyncio.to_thread(_write_batch, batch)
        result = await self.runner.run(render.sbatch_argv(batch), cwd=batch.dir)
        if result.returncode == 0:
            try:
                job_id = parse.parse_sbatch(result.stdout)
            except ValueError as exc:
                raise TransientBackendError(str(exc)) from exc
            faults.point("after_sbatch")  # Slurm has the jobs, the registry does not know yet
            return job_id, ""
        if parse.is_transient(result.stderr):
            raise TransientBackendError(result.describe())
        return None, f"sbatch refused the job: {parse.error_line(result.stderr)}"

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """Find the Slurm jobs of attempts a crash left in ``submitting``: by the native id the
        wrapper recorded, else by the label and task index in the attempt's ticket, looked up
        with one squeue (and one sacct, with accounting) over all the labels."""
        if not attempts:
            return {}
        found: dict[str, str] = {}
        tickets: dict[str, Ticket] = {}
        for attempt, ticket, files in await asyncio.to_thread(_read_reconcile, attempts):
            if files.native_id:
                found[attempt.uuid] = files.native_id
            elif ticket is not None:
                tickets[attempt.uuid] = ticket
        if tickets:
            labels = sorted({t.label for t in tickets.values()})
            known = _by_label(await self._squeue(["--name"], labels))
            unmatched = [t for t in tickets.values() if (t.label, t.index) not in known]
            if unmatched and (await self.cluster()).accounting:
                left = sorted({t.label for t in unmatched})
                known = {**_by_label(await self._sacct(["--name"], left, recent=True)), **known}
            for uuid, ticket in tickets.items():
                native_id = known.get((ticket.label, ticket.index))
                bare = known.get((ticket.label, None))
                if native_id is None and bare is not None and ticket.index is not None:
                    native_id = f"{bare}_{ticket.index}"  # an array that never started a task
                if native_id is not None:
                    found[uuid] = native_id
        return found

    # ---- status

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        live = [a for a in attempts if a.native_id]
        files = await asyncio.to_thread(_read_all, live)
        observed: dict[str, Observation] = {}
        ask: list[Attempt] = []
        for attempt in live:
            obs = observe.fast_path(attempt, files[attempt.uuid])
            if obs is None:
                ask.append(attempt)
            else:
                observed[attempt.uuid] = obs
        if ask:
            rows = await self._squeue(["--jobs"], parse.job_ids(_native(a) for a in ask))
            gone = []
            for attempt in ask:
                row = parse.lookup(rows, _native(attempt))
                if row is None:
                    gone.append(attempt)
                else:
                    observed[attempt.uuid] = observe.from_queue(attempt, row, files[attempt.uuid])
            if gone:
                observed.update(await self._resolve_gone(gone, files))
        for uuid, obs in observed.items():
            if obs.state != JobState.UNKNOWN:
                self._missing_since.pop(uuid, None)
            problem = files[uuid].problem
            if problem and obs.state in (JobState.COMPLETING, JobState.COMPLETED):
                # a job that sabotaged its own status files never passes as a success
                observed[uuid] = Observation(uuid, JobState.FAILED, problem, obs.exit_code)
        return observed

    async def _resolve_gone(
        self, gone: list[Attempt], files: Mapping[str, RunFiles]
    ) -> dict[str, Observation]:
        """Jobs that left squeue: sacct if accounting exists, else the wrapper's exit file."""
        acct: dict[str, parse.AcctRow] = {}
        sacct_ok = True
        if (await self.cluster()).accounting:
            try:
                acct = await self._sacct(["--jobs"], parse.job_ids(_native(a) for a in gone))
            except TransientBackendError as exc:
                log.warning("sacct failed, using the wrapper's files only: %s", exc)
                sacct_ok = False
        now = time.monotonic()
        observed: dict[str, Observation] = {}
        for attempt in gone:
            row, record = parse.lookup(acct, _native(attempt)), files[attempt.uuid].exit
            if row is not None:
                observed[attempt.uuid] = observe.from_acct(attempt, row)
            elif record is not None:
                observed[attempt.uuid] = observe.from_exit_only(attempt, record)
            elif files[attempt.uuid].problem:
                problem = files[attempt.uuid].problem or ""
                observed[attempt.uuid] = Observation(attempt.uuid, JobState.FAILED, problem)
            elif sacct_ok:
                since = self._missing_since.setdefault(attempt.uuid, now)
                observed[attempt.uuid] = observe.missing(attempt, now - since, self.lost_after)
        return observed

    async def _squeue(self, flag: list[str], values: list[str]) -> dict[str, parse.QueueRow]:
        rows: dict[str, parse.QueueRow] = {}
        for chunk in render.chunk_ids(values):
            result = await self.runner.run([*_SQUEUE, *flag, ",".join(chunk)])
            if parse.squeue_all_unknown(result.returncode, result.stderr):
                continue
            if result.returncode != 0:
                raise TransientBackendError(result.describe())
            rows.update(parse.parse_squeue(result.stdout))
        return rows

    async def _sacct(
        self, flag: list[str], values: list[str], recent: bool = False
    ) -> dict[str, parse.AcctRow]:
        # With --jobs sacct looks at all time. Otherwise it looks from midnight on, and only at
        # jobs that became eligible, unless given states (a job held and then cancelled never
        # was eligible).
        window = ["--starttime=now-30days", "--endtime=now", f"--state={_ALL_STATES}"]
        window = window if recent else []
        rows: dict[str, parse.AcctRow] = {}
        for chunk in render.chunk_ids(values):
            result = await self.runner.check([*_SACCT, *window, *flag, ",".join(chunk)])
            rows.update(parse.parse_sacct(result.stdout))
        return rows

    # ---- cancel and outputs

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        """One scancel for all; one argument per Slurm job (array tasks are compressed)."""
        ids = parse.compress_ids([a.native_id for a in attempts if a.native_id])
        for chunk in render.chunk_ids(ids):
            result = await self.runner.run(["scancel", *chunk])
            if result.returncode != 0 and parse.scancel_failed(result.stderr):
                raise TransientBackendError(result.describe())

    async def fetch_outputs(self, attempt: Attempt) -> None:
        return None  # the attempt dir is on the filesystem the jobs write to

    # ---- holds

    async def hold(self, attempts: Sequence[Attempt], reason: str) -> Mapping[str, str]:
        """One squeue, then one ``scontrol uhold`` for the pending ones: Slurm 22.05 takes a
        hold of a running job silently (its priority drops, nothing else), so corral checks
        first. The reason is Slurm's own (``JobHeldUser``): scontrol keeps no text."""
        why = {a.uuid: "not submitted yet" for a in attempts if not a.native_id}
        live = {_native(a): a for a in attempts if a.native_id}
        rows = await self._squeue(["--jobs"], parse.job_ids(live)) if live else {}
        pending = []
        for native, attempt in live.items():
            row = parse.lookup(rows, native)
            if row is None:
                why[attempt.uuid] = "not in the Slurm queue"
            elif row.state in observe.ACTIVE:
                why[attempt.uuid] = "running jobs cannot be held"
            elif row.state != "PENDING":
                why[attempt.uuid] = f"not pending ({row.state.lower()})"
            else:
                pending.append(native)
        why.update(await self._scontrol("uhold", pending, live))
        return why

    async def release(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """One ``scontrol release``; a job it names in an error is reported with that line."""
        why = {a.uuid: "not submitted yet" for a in attempts if not a.native_id}
        live = {_native(a): a for a in attempts if a.native_id}
        why.update(await self._scontrol("release", list(live), live))
        return why

    async def _scontrol(
        self, verb: str, ids: list[str], live: Mapping[str, Attempt]
    ) -> dict[str, str]:
        why: dict[str, str] = {}
        for chunk in render.chunk_ids(ids):
            result = await self.runner.run(["scontrol", verb, *chunk])
            if result.returncode == 0:
                continue
            named = parse.per_job_errors(result.stderr)
            if not named and parse.is_transient(result.stderr):
                raise TransientBackendError(result.describe())
            for native, line in named.items():
                if native in live:
                    why[live[native].uuid] = line
            if not named:
                why.update({live[n].uuid: parse.error_line(result.stderr) for n in chunk})
        return why


def _native(attempt: Attempt) -> str:
    return attempt.native_id or ""


def _by_label(
    rows: Mapping[str, parse.QueueRow] | Mapping[str, parse.AcctRow],
) -> dict[tuple[str, int | None], str]:
    return {(row.name, parse.task_index(native_id)): native_id for native_id, row in rows.items()}


# ---- blocking file I/O, run in a worker thread


def _read_all(attempts: Sequence[Attempt]) -> dict[str, RunFiles]:
    return {a.uuid: read_run_files(a.attempt_dir) for a in attempts}


def _read_reconcile(attempts: Sequence[Attempt]) -> list[tuple[Attempt, Ticket | None, RunFiles]]:
    return [(a, read_ticket(a.attempt_dir), read_run_files(a.attempt_dir)) for a in attempts]


def _tickets(attempts: Sequence[Attempt]) -> set[str]:
    return {a.uuid for a in attempts if read_ticket(a.attempt_dir) is not None}


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _write_batch(batch: render.Batch) -> None:
    """Script, task list, then the tickets that make the attempts findable after a crash."""
    _write(batch.dir / render.SCRIPT, render.render_script(batch), 0o700)
    _write(batch.dir / render.TASKS, render.render_tasks(batch))
    for index, attempt in enumerate(batch.attempts):
        ticket = Ticket(batch.label, index if batch.is_array else None)
        _write(attempt.attempt_dir / TICKET, render_ticket(ticket))
        link = attempt.attempt_dir / SUBMITTED
        link.unlink(missing_ok=True)
        link.symlink_to(batch.dir / render.SCRIPT)
