"""The Grid Engine backend: the I/O around the pure planners and parsers of this package.

Costs, whatever the number of jobs: a submit is one ``qsub -t`` per group of attempts with the
same qsub flags; a status cycle is one ``qstat -xml`` (plus one ``qstat -j`` and one ``qdel`` in
a cycle that finds jobs in error), and one ``qacct -j`` per array job some of whose tasks left
qstat without a clean end recorded by the wrapper; a kill, hold or release is one ``qdel``,
``qhold`` or ``qrls``. Jobs whose wrapper already recorded a clean end cost no scheduler call.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from corral import faults
from corral.backends.base import (
    BackendConfig,
    BackendOptions,
    JobOptions,
)
from corral.backends.batch import BatchBackend, chunk_ids, read_all, read_reconcile, write_batch
from corral.backends.commands import Runner
from corral.backends.runfiles import RunFiles, Ticket
from corral.backends.sge import observe, parse, render
from corral.backends.sge.options import SgeJobOptions, SgeOptions
from corral.errors import InvalidSpec, TransientBackendError
from corral.records import Attempt, Observation
from corral.states import JobState

if TYPE_CHECKING:
    from corral.spec import JobSpec

log = logging.getLogger("corral.backends.sge")
_UNKNOWN_JOB = re.compile(r'job "?(\d+)(?:\.\d+)?"? does not exist')


class SgeBackend(BatchBackend):
    """Drives the Grid Engine command-line tools; see the module docstring for the costs."""

    Options: ClassVar[type[BackendOptions]] = SgeOptions
    JobOptions: ClassVar[type[JobOptions]] = SgeJobOptions
    can_hold: ClassVar[bool] = True
    honours: ClassVar[frozenset[str]] = frozenset({"gpus", "nodes", "tasks_per_node"})
    tools: ClassVar[tuple[str, ...]] = ("qsub", "qstat", "qacct", "qdel", "qhold", "qrls")
    scheduler: ClassVar[str] = "Grid Engine"
    options: SgeOptions

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.runner = Runner(
            timeout=self.options.command_timeout,
            missing_hint="is the Grid Engine client installed (and SGE_ROOT set)?",
        )
        self._defaults = self.options.qsub()
        self._missing_since: dict[str, float] = {}

    @classmethod
    def check_job(cls, spec: JobSpec, options: BackendOptions) -> None:
        """Refuse at submit what Grid Engine cannot be asked for with these options."""
        job = cls.job_options(spec)
        assert isinstance(options, SgeOptions) and isinstance(job, SgeJobOptions)
        try:
            render.qsub_options(options.qsub(), job.qsub(), spec.resources)
        except render.OptionError as exc:
            raise InvalidSpec(f"resources: {exc}") from exc

    # ---- submit and reconcile

    async def plan(self, attempts: Sequence[Attempt]) -> tuple[list[Any], dict[str, str]]:
        batches, refused = render.plan(attempts, self._defaults)
        return list(batches), refused

    async def submit_batch(self, batch: render.Batch) -> tuple[dict[str, str] | None, str]:
        job_id, why = await self._qsub(batch)
        return (None, why) if job_id is None else (render.native_ids(batch, job_id), "")

    async def _qsub(self, batch: render.Batch) -> tuple[str | None, str]:
        files = [
            (render.SCRIPT, render.render_script(batch), 0o700),
            (render.TASKS, render.render_tasks(batch), 0o600),
        ]
        await asyncio.to_thread(write_batch, batch, files, 1 if batch.is_array else None)
        result = await self.runner.run(render.qsub_argv(batch), cwd=batch.dir)
        if result.returncode == 0:
            try:
                job_id = parse.parse_qsub(result.stdout)
            except ValueError as exc:
                raise TransientBackendError(str(exc)) from exc
            faults.point("after_qsub")  # Grid Engine has the jobs, the registry does not know
            return job_id, ""
        if parse.is_transient(result.stderr):
            raise TransientBackendError(result.describe())
        return None, f"qsub refused the job: {parse.error_line(result.stderr)}"

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """Find the jobs of attempts a crash left in ``submitting``: by the native id the
        wrapper recorded, else by the label and task in the ticket, in one qstat (and one
        qacct per label not in the queue any more)."""
        if not attempts:
            return {}
        found: dict[str, str] = {}
        tickets: dict[str, Ticket] = {}
        for attempt, ticket, files in await asyncio.to_thread(read_reconcile, attempts):
            if files.native_id:
                found[attempt.uuid] = files.native_id
            elif ticket is not None:
                tickets[attempt.uuid] = ticket
        if not tickets:
            return found
        known = _by_label((await self._qstat()).values())
        left = [a for a in attempts if a.uuid in tickets and _key(tickets[a.uuid]) not in known]
        # a task may have started and ended between the file read and qstat: files, then qacct
        for attempt, _, files in await asyncio.to_thread(read_reconcile, left):
            if files.native_id:
                found[attempt.uuid] = files.native_id
        labels = {tickets[a.uuid].label for a in left if a.uuid not in found}
        for label in sorted(labels):
            known.update(_by_label((await self._qacct(label)).values()))
        for uuid, ticket in tickets.items():
            native = known.get(_key(ticket))
            if native is not None and uuid not in found:
                found[uuid] = native
        return found

    # ---- status

    def ended(self, attempt: Attempt, files: RunFiles) -> Observation | None:
        return observe.ended(attempt, files)

    async def query(
        self, attempts: Sequence[Attempt], files: Mapping[str, RunFiles]
    ) -> dict[str, Observation]:
        """One qstat (plus qstat -j and qdel for jobs in error); qacct for jobs that left it."""
        rows = await self._qstat()
        errors = await self._errors([r for r in rows.values() if observe.in_error(r.state)])
        observed: dict[str, Observation] = {}
        gone: list[Attempt] = []
        for attempt in attempts:
            row = parse.lookup(rows, _native(attempt))
            if row is None:
                gone.append(attempt)
                continue
            why = errors.get(row.native_id, "")
            observed[attempt.uuid] = observe.from_queue(attempt, row, files[attempt.uuid], why)
        if errors:
            await self._qdel(list(errors))  # Eqw never starts: failed, and off the queue
        if gone:
            observed.update(await self._resolve_gone(gone, files))
        return observed

    async def _errors(self, rows: Sequence[parse.QueueRow]) -> dict[str, str]:
        """Why jobs in error state are (``qstat -j``, one call); every one gets a reason."""
        if not rows:
            return {}
        jobs = list(dict.fromkeys(parse.job_of(r.native_id) for r in rows))
        result = await self.runner.run(["qstat", "-j", ",".join(jobs)])
        reasons = parse.parse_errors(result.stdout)
        return {r.native_id: reasons.get(r.native_id, "") for r in rows}

    async def _resolve_gone(
        self, gone: list[Attempt], files: Mapping[str, RunFiles]
    ) -> dict[str, Observation]:
        # A job that ended between our read of its files and qstat: its exit file is there now.
        observed: dict[str, Observation] = {}
        again = await asyncio.to_thread(read_all, gone)
        for attempt in gone:
            obs = observe.ended(attempt, again[attempt.uuid])
            if obs is not None:
                observed[attempt.uuid] = obs
        gone = [a for a in gone if a.uuid not in observed]
        acct: dict[str, parse.AcctRow] = {}
        for job in dict.fromkeys(parse.job_of(_native(a)) for a in gone):
            acct.update(await self._qacct(job))
        now = time.monotonic()
        for attempt in gone:
            mine = files[attempt.uuid]
            row = acct.get(_native(attempt))
            obs = (
                observe.from_acct(attempt, row, mine)
                if row
                else observe.from_exit_only(attempt, mine)
            )
            if obs is None and mine.problem:
                obs = Observation(attempt.uuid, JobState.FAILED, mine.problem)
            if obs is None:
                since = self._missing_since.setdefault(attempt.uuid, now)
                obs = observe.missing(attempt, now - since, self.options.lost_after)
            observed[attempt.uuid] = obs
        return observed

    async def _qstat(self) -> dict[str, parse.QueueRow]:
        result = await self.runner.check(["qstat", "-xml"])
        try:
            return parse.parse_qstat(result.stdout)
        except ValueError as exc:
            raise TransientBackendError(str(exc)) from exc

    async def _qacct(self, job: str) -> dict[str, parse.AcctRow]:
        """Accounting of one job id or name; none yet (or never started) is an empty answer."""
        result = await self.runner.run(["qacct", "-j", job])
        if result.returncode != 0:
            if "not found" in result.stderr or "not found" in result.stdout:
                return {}
            raise TransientBackendError(result.describe())
        return parse.parse_qacct(result.stdout)

    # ---- cancel, hold, release

    async def _qdel(self, natives: Sequence[str]) -> None:
        await self._each("qdel", natives)

    async def _each(self, tool: str, natives: Sequence[str]) -> set[str]:
        """Run ``tool`` over job-task lists (one call per chunk); the job ids it did not know."""
        unknown: set[str] = set()
        for chunk in chunk_ids(parse.job_task_list(natives), limit=100_000, sep=1):
            result = await self.runner.run([tool, *chunk])
            if result.returncode == 0:
                continue
            text = result.stderr + result.stdout
            if not parse.unknown_only(text) or parse.is_transient(text):
                raise TransientBackendError(result.describe())
            unknown.update(_UNKNOWN_JOB.findall(text))
        return unknown

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        """One qdel for all (jobs that already left the queue are not an error)."""
        await self._qdel([a.native_id for a in attempts if a.native_id])

    async def hold(self, attempts: Sequence[Attempt], reason: str) -> Mapping[str, str]:
        """Hold queued attempts in one ``qhold``: ``{uuid: why not}`` for the others."""
        refused = {a.uuid: "not submitted yet" for a in attempts if not a.native_id}
        refused.update({a.uuid: "running jobs cannot be held" for a in attempts if _running(a)})
        return await self._toggle("qhold", [a for a in attempts if a.uuid not in refused], refused)

    async def release(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """Release held attempts in one ``qrls``: ``{uuid: why not}`` for failures."""
        refused = {a.uuid: "not submitted yet" for a in attempts if not a.native_id}
        return await self._toggle("qrls", [a for a in attempts if a.uuid not in refused], refused)

    async def _toggle(
        self, tool: str, attempts: Sequence[Attempt], refused: dict[str, str]
    ) -> Mapping[str, str]:
        if attempts:
            unknown = await self._each(tool, [_native(a) for a in attempts])
            for attempt in attempts:
                if parse.job_of(_native(attempt)) in unknown:
                    refused[attempt.uuid] = "no longer in the Grid Engine queue"
        return refused


def _key(ticket: Ticket) -> tuple[str, int | None]:
    return ticket.label, ticket.index


def _native(attempt: Attempt) -> str:
    return attempt.native_id or ""


def _running(attempt: Attempt) -> bool:
    return attempt.state in (JobState.RUNNING, JobState.COMPLETING)


def _by_label(
    rows: Iterable[parse.QueueRow] | Iterable[parse.AcctRow],
) -> dict[tuple[str, int | None], str]:
    return {(row.name, parse.task_of(row.native_id)): row.native_id for row in rows}
