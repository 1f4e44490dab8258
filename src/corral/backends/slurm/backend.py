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
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from corral import faults
from corral.backends.base import (
    BackendConfig,
    BackendOptions,
    JobOptions,
)
from corral.backends.batch import BatchBackend, chunk_ids, read_all, read_reconcile, write_batch
from corral.backends.commands import Runner
from corral.backends.runfiles import RunFiles, Ticket
from corral.backends.slurm import observe, parse, render
from corral.backends.slurm.options import SlurmJobOptions, SlurmOptions
from corral.errors import TransientBackendError
from corral.records import Attempt, Observation
from corral.states import JobState

log = logging.getLogger("corral.backends.slurm")
_ALL_STATES = (
    "PENDING,RUNNING,SUSPENDED,COMPLETED,CANCELLED,FAILED,TIMEOUT,NODE_FAIL,PREEMPTED,BOOT_FAIL,"
    "DEADLINE,OUT_OF_MEMORY,REQUEUED,RESIZING,REVOKED"
)
_SQUEUE = ("squeue", "--noheader", "--states=all", "--array", f"--Format={parse.SQUEUE_FORMAT}")
_SACCT = ("sacct", "--noheader", "--parsable2", f"--format={parse.SACCT_FIELDS}")


class SlurmBackend(BatchBackend):
    """Drives the Slurm command-line tools; see the module docstring for what each verb costs."""

    Options: ClassVar[type[BackendOptions]] = SlurmOptions
    JobOptions: ClassVar[type[JobOptions]] = SlurmJobOptions
    honours: ClassVar[frozenset[str]] = frozenset({"gpus", "nodes", "tasks_per_node"})
    tools: ClassVar[tuple[str, ...]] = ("sbatch", "squeue", "scancel", "scontrol")
    scheduler: ClassVar[str] = "Slurm"
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
        self._missing_since: dict[str, float] = {}
        self._restarts: dict[str, int] = {}
        """The restart count squeue last showed of each requeued job (for after it left)."""

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

    async def plan(self, attempts: Sequence[Attempt]) -> tuple[list[Any], dict[str, str]]:
        info = await self.cluster()
        batches, refused = render.plan(attempts, self._sbatch_defaults, info.max_array_size)
        return list(batches), refused

    async def submit_batch(self, batch: render.Batch) -> tuple[dict[str, str] | None, str]:
        job_id, why = await self._sbatch(batch)
        return (None, why) if job_id is None else (render.native_ids(batch, job_id), "")

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
        for attempt, ticket, files in await asyncio.to_thread(read_reconcile, attempts):
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
        if attempts:
            await self.cluster()  # its RequeueExit codes, for the fast path (read once)
        return await super().status(attempts)

    def ended(self, attempt: Attempt, files: RunFiles) -> Observation | None:
        requeue_exits = self._cluster.requeue_exits if self._cluster else frozenset()
        return observe.fast_path(attempt, files, requeue_exits)

    async def query(
        self, attempts: Sequence[Attempt], files: Mapping[str, RunFiles]
    ) -> dict[str, Observation]:
        """One squeue; sacct or the exit files for the jobs that left it."""
        rows = await self._squeue(["--jobs"], parse.job_ids(_native(a) for a in attempts))
        # jobs that ended (or left) between the read of their files and squeue: read again
        late = [a for a in attempts if _ended_unread(rows, a)]
        if late:
            files = {**files, **await asyncio.to_thread(read_all, late)}
        observed: dict[str, Observation] = {}
        gone = []
        for attempt in attempts:
            row = parse.lookup(rows, _native(attempt))
            if row is None:
                gone.append(attempt)
                continue
            observed[attempt.uuid] = observe.from_queue(attempt, row, files[attempt.uuid])
            if row.restarts and row.state in observe.WAITING | observe.ACTIVE:
                self._restarts[attempt.uuid] = row.restarts
        if gone:
            observed.update(await self._resolve_gone(gone, files))
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
            row = parse.lookup(acct, _native(attempt))
            obs = _gone(attempt, files[attempt.uuid], row, self._restarts.get(attempt.uuid))
            if obs is None and sacct_ok:
                since = self._missing_since.setdefault(attempt.uuid, now)
                obs = observe.missing(attempt, now - since, self.lost_after)
            if obs is not None:
                observed[attempt.uuid] = obs
                if obs.state != JobState.UNKNOWN:
                    self._restarts.pop(attempt.uuid, None)
        return observed

    async def _squeue(self, flag: list[str], values: list[str]) -> dict[str, parse.QueueRow]:
        rows: dict[str, parse.QueueRow] = {}
        for chunk in chunk_ids(values):
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
        for chunk in chunk_ids(values):
            result = await self.runner.check([*_SACCT, *window, *flag, ",".join(chunk)])
            rows.update(parse.parse_sacct(result.stdout))
        return rows

    # ---- cancel and outputs

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        """One scancel for all; one argument per Slurm job (array tasks are compressed)."""
        ids = parse.compress_ids([a.native_id for a in attempts if a.native_id])
        for chunk in chunk_ids(ids):
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


def _ended_unread(rows: Mapping[str, parse.QueueRow], attempt: Attempt) -> bool:
    """Ended (or gone) by squeue's word, so its files may have changed since they were read:
    a run that ended meanwhile, or a requeued job's next run, whose exit replaces the killed
    run's (that stale exit would otherwise be taken for the job's end)."""
    row = parse.lookup(rows, _native(attempt))
    return row is None or row.state not in observe.WAITING | observe.ACTIVE


def _gone(
    attempt: Attempt, files: RunFiles, row: parse.AcctRow | None, run: int | None
) -> Observation | None:
    """A job that left squeue: sacct's record, else the wrapper's exit file, unless squeue last
    showed the job at a later run (``run``, its restart count) than the files' latest: that
    exit is an earlier run's, never this end."""
    behind = run is not None and (files.run is None or files.run < run)
    if row is not None:
        return observe.from_acct(attempt, row)
    if files.exit is not None and not behind:
        return observe.from_exit_only(attempt, files.exit)
    if files.problem:
        return Observation(attempt.uuid, JobState.FAILED, files.problem)
    if behind and run is not None:
        return observe.gone_unrecorded(attempt, run)
    return None


def _native(attempt: Attempt) -> str:
    return attempt.native_id or ""


def _by_label(
    rows: Mapping[str, parse.QueueRow] | Mapping[str, parse.AcctRow],
) -> dict[tuple[str, int | None], str]:
    return {(row.name, parse.task_index(native_id)): native_id for native_id, row in rows.items()}


# ---- blocking file I/O, run in a worker thread


def _write_batch(batch: render.Batch) -> None:
    """Script, task list, then the tickets that make the attempts findable after a crash."""
    files = [
        (render.SCRIPT, render.render_script(batch), 0o700),
        (render.TASKS, render.render_tasks(batch), 0o600),
    ]
    write_batch(batch, files, 0 if batch.is_array else None)
