"""The ``dirac-classic`` transport of the DIRAC backend: the classic DIRAC Python API (DISET
services, X.509 proxies) through ``corral.isolate`` workers running the DIRAC installation's
own Python, so corral's interpreter never imports DIRAC. The worker side is ``classic_worker``.

Same JDL, same states, same reconcile by JobName, same output handling as the DiracX transport
(``backend``); what differs is the wire. Calls per verb (N attempts):

- submit: one ``Dirac().submitJob(jdl)`` per job (the classic API takes one JDL per call),
  ``submit_concurrency`` in flight across the workers; attempts tried before: one reconcile
  first. Never retried blindly: a submit whose worker died is reconciled by JobName next time.
- status: one bulk ``getJobStatus(ids)`` per cycle.
- cancel: one bulk ``killJob(ids)`` for the ids not known final.
- outputs: one ``getOutputSandbox`` per finished job (exclusive: it chdirs the worker).

``S_ERROR`` results and exceptions raised inside DIRAC both become corral errors (transient:
the monitor backs off and retries); a worker that cannot start is "down".
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from corral import sandbox
from corral.backends.base import (
    AsyncBackend,
    BackendConfig,
    BackendOptions,
    JobOptions,
    OptionCommand,
    OptionPath,
    Report,
    Submitted,
)
from corral.backends.dirac import jdl, observe, payload
from corral.backends.dirac.backend import JOB_ID, TICKET, _read_tickets, _write, _write_ids
from corral.backends.dirac.options import DiracJobOptions, _Placement, placement
from corral.errors import BackendError, BackendUnavailable, RemoteError, TransientBackendError
from corral.isolate import Launch, Method, Pool, PoolSpec
from corral.printable import printable
from corral.records import Attempt, Observation
from corral.states import JobState

WORKER_MODULE = str(Path(__file__).with_name("classic_worker.py"))
INPUTS = "dirac-input"
"""The attempt-dir folder holding the generated files the classic client uploads."""
OUTPUT_TMP = ".dirac-output.tmp"


class DiracClassicOptions(BackendOptions, _Placement):
    """A ``[backends.NAME]`` section of type ``dirac-classic``."""

    python: OptionCommand = Field(
        "python3", min_length=1, description="The DIRAC installation's Python (a name or a path)."
    )
    environment_script: OptionPath | None = Field(
        None, description="Sourced before the worker starts (e.g. diracos/diracosrc)."
    )
    environment: dict[str, str] = Field(default_factory=dict, description="Extra environment.")
    module_path: list[OptionPath] = Field(
        default_factory=list, description="Extra sys.path entries of the workers."
    )
    dirac_api: str = Field(
        "DIRAC.Interfaces.API.Dirac:Dirac",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:Class of the API (a VO's subclass of Dirac).",
    )
    initialize: Literal["initialize", "no-auth", "none"] = Field(
        "initialize", description="How the workers call DIRAC.initialize."
    )
    proxy: OptionPath | None = Field(
        None, description="The proxy file; default $X509_USER_PROXY or /tmp/x509up_u<uid>."
    )
    workers: int = Field(2, ge=1, le=64, description="Worker processes.")
    threads: int = Field(4, ge=1, le=64, description="Threads per worker for thread-safe calls.")
    submit_concurrency: int = Field(8, ge=1, le=256, description="submitJob calls in flight.")
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds per status/kill call.")
    submit_timeout: float = Field(300.0, gt=0, le=7200, description="Seconds per submitJob.")
    output_timeout: float = Field(600.0, gt=0, le=7200, description="Seconds per sandbox.")
    credential_check: float = Field(5.0, gt=0, le=3600, description="Proxy checked this often.")


class DiracClassicBackend(AsyncBackend):
    """See the module docstring."""

    Options: ClassVar[type[BackendOptions]] = DiracClassicOptions
    JobOptions: ClassVar[type[JobOptions]] = DiracJobOptions
    options: DiracClassicOptions

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.group = jdl.job_group(config)
        self.pool: Pool | None = None
        self._rows: dict[str, observe.Row] = {}

    def call_counts(self) -> Mapping[str, int]:
        return dict(self.pool.calls) if self.pool else {}

    def pool_spec(self) -> PoolSpec:
        opts = self.options
        proxy = opts.proxy or os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"
        env = {"CORRAL_DIRAC_API": opts.dirac_api, "CORRAL_DIRAC_INIT": opts.initialize}
        env.update(opts.environment)
        if opts.proxy:
            env["X509_USER_PROXY"] = opts.proxy
        launch = Launch(
            opts.python, WORKER_MODULE, opts.module_path, opts.environment_script, env, opts.threads
        )
        quick, slow = Method(idempotent=True, timeout=opts.timeout), opts.output_timeout
        methods = {
            "ping": quick,
            "status": quick,
            "kill": quick,
            "reconcile": quick,
            "submit": Method(idempotent=False, timeout=opts.submit_timeout),
            "output": Method(idempotent=True, timeout=slow),
        }
        scratch = self.config.work_dir / "dirac-classic" / self.config.name
        return PoolSpec(
            f"dirac-classic-{self.config.name}",
            launch,
            methods,
            scratch,
            workers=opts.workers,
            credential=Path(proxy),
            credential_check=opts.credential_check,
        )

    async def start(self, report: Report) -> None:
        await self.stop()
        pool = Pool(self.pool_spec())
        await pool.start()
        self.pool = pool
        await self._call("ping", "ping")

    async def stop(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()

    async def _call(self, method: str, what: str, **params: Any) -> Any:
        """``S_OK``'s value; ``S_ERROR`` and exceptions raised in DIRAC are transient."""
        if self.pool is None:
            raise BackendUnavailable("DIRAC backend not started")
        try:
            result = await self.pool.call(method, **params)
        except RemoteError as exc:
            raise TransientBackendError(f"{what}: {printable(str(exc))}") from exc
        if not isinstance(result, dict) or "OK" not in result:
            raise TransientBackendError(f"{what} answered {printable(repr(result)[:200])}")
        if not result["OK"]:
            raise TransientBackendError(f"{what}: {printable(str(result.get('Message')))}")
        return result.get("Value")

    # ---- submit and reconcile

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        known = await asyncio.to_thread(_read_tickets, attempts)
        accepted = {uuid: job_id for uuid, (_, job_id) in known.items() if job_id}
        tried = [a for a in attempts if a.uuid in known and a.uuid not in accepted]
        accepted.update(await self.reconcile(tried))
        fresh = [a for a in attempts if a.uuid not in accepted]
        jobs, refused = await asyncio.to_thread(self._prepare, fresh)
        gate = asyncio.Semaphore(self.options.submit_concurrency)
        outcomes = await asyncio.gather(
            *(self._submit_one(a, text, gate) for a, text in jobs), return_exceptions=True
        )
        failures: list[BaseException] = []
        for (attempt, _), outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, str):
                accepted[attempt.uuid] = outcome
            else:
                failures.append(outcome)
        if failures:
            first = next((f for f in failures if isinstance(f, BackendError)), failures[0])
            if not isinstance(first, BackendError):
                raise first
            if isinstance(first, BackendUnavailable):
                raise first  # the ids that went through are on disk
            raise TransientBackendError(
                f"submit: {first}", accepted=accepted, refused=refused
            ) from first
        return Submitted(accepted, refused)

    def _prepare(
        self, attempts: Sequence[Attempt]
    ) -> tuple[list[tuple[Attempt, str]], dict[str, str]]:
        """(blocking) The generated inputs written, each JDL rendered and its ticket written
        before it is sent (a retried submit reconciles first)."""
        jobs: list[tuple[Attempt, str]] = []
        refused: dict[str, str] = {}
        for attempt in attempts:
            try:
                text = self._render(attempt, _input_files(attempt))
            except ValueError as exc:
                refused[attempt.uuid] = f"not submitted: {exc}"
                continue
            _write(attempt.attempt_dir / TICKET, text)
            jobs.append((attempt, text))
        return jobs, refused

    def _render(self, attempt: Attempt, files: list[str]) -> str:
        job = DiracJobOptions.model_validate(dict(attempt.spec.backend_options))
        place = placement(self.options, job)
        where = jdl.Placement(
            place.site, place.banned_sites, place.tags, place.platform, place.cpu_time
        )
        return jdl.render(jdl.describe(attempt.spec, attempt.label, self.group, where, files))

    async def _submit_one(self, attempt: Attempt, text: str, gate: asyncio.Semaphore) -> str:
        async with gate:
            value = await self._call("submit", "submitJob", jdl=text)
        job_id = str(value[0] if isinstance(value, list) else value)
        if not job_id.isdigit():
            raise TransientBackendError(f"submitJob answered {printable(job_id[:100])}")
        await asyncio.to_thread(_write_ids, [(attempt, job_id)])
        return job_id

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """Jobs sent before (a ticket on disk) found by JobName within our JobGroup."""
        if not attempts:
            return {}
        tickets = await asyncio.to_thread(_ticket_times, attempts)
        found = {uuid: job_id for uuid, (_, job_id) in tickets.items() if job_id}
        ask = [a for a in attempts if a.uuid in tickets and a.uuid not in found]
        if ask:
            since = min(tickets[a.uuid][0] for a in ask) - timedelta(days=1)
            labels = [a.label for a in ask]
            named = await self._call(
                "reconcile", "reconcile", group=self.group, labels=labels, since=f"{since:%Y-%m-%d}"
            )
            found.update({a.uuid: str(named[a.label]) for a in ask if a.label in named})
        return found

    # ---- status, cancel, outputs

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        live = {a.uuid: a.native_id for a in attempts if a.native_id}
        if not live:
            return {}
        ids = sorted({int(i) for i in live.values()})
        value = await self._call("status", "getJobStatus", ids=ids)
        self._rows = _rows(value)
        return {
            uuid: observe.observe(uuid, self._rows[job_id])
            if job_id in self._rows
            else Observation(uuid, JobState.UNKNOWN, f"DIRAC does not know job {job_id}")
            for uuid, job_id in live.items()
        }

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        ids = sorted({a.native_id for a in attempts if a.native_id}, key=int)
        targets = [i for i in ids if i not in self._rows or not self._rows[i].final]
        if targets:
            await self._call("kill", "killJob", ids=[int(i) for i in targets])

    async def fetch_outputs(self, attempt: Attempt) -> None:
        if not attempt.native_id:
            return
        if (attempt.attempt_dir / payload.OUTPUT_DONE).exists():
            return
        tmp = attempt.attempt_dir / OUTPUT_TMP
        await asyncio.to_thread(_fresh_dir, tmp)
        try:
            try:
                await self._call(
                    "output", "getOutputSandbox", job_id=int(attempt.native_id), directory=str(tmp)
                )
            except TransientBackendError:
                row = self._rows.get(attempt.native_id)
                if row is not None and row.status in ("Killed", "Deleted"):
                    return  # a killed job without a sandbox is normal
                raise
            await asyncio.to_thread(payload.place_outputs, attempt.spec, attempt.attempt_dir, tmp)
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)


def _rows(value: Any) -> dict[str, observe.Row]:
    """``getJobStatus``'s value (ids as JSON keys) as rows by job id."""
    if not isinstance(value, dict):
        raise TransientBackendError(f"getJobStatus answered {type(value).__name__}")
    return {
        str(job_id): observe.Row(
            str(job_id),
            str(item.get("Status") or ""),
            str(item.get("MinorStatus") or ""),
            str(item.get("ApplicationStatus") or ""),
        )
        for job_id, item in value.items()
        if isinstance(item, dict)
    }


# ---- blocking file work, run in a worker thread


def _input_files(attempt: Attempt) -> list[str]:
    """The local files the classic client uploads as the input sandbox: the generated script
    or command wrapper (written into ``dirac-input/``) and the staged input files."""
    spec, files = attempt.spec, []
    generated: list[tuple[str, str]] = []
    if spec.script is not None:
        generated.append((jdl.SCRIPT, spec.script))
    if jdl.needs_wrapper(spec):
        generated.append((jdl.COMMAND, jdl.WRAPPER))
    if generated:
        folder = attempt.attempt_dir / INPUTS
        folder.mkdir(mode=0o700, exist_ok=True)
        for name, text in generated:
            _write(folder / name, text)
            os.chmod(folder / name, 0o700)
            files.append(str(folder / name))
    staged = attempt.attempt_dir / sandbox.SANDBOX
    files += [str(staged / Path(name).name) for name in spec.input_files]
    return files


def _ticket_times(attempts: Sequence[Attempt]) -> dict[str, tuple[datetime, str | None]]:
    found: dict[str, tuple[datetime, str | None]] = {}
    for uuid, (_, job_id) in _read_tickets(attempts).items():
        attempt = next(a for a in attempts if a.uuid == uuid)
        mtime = (attempt.attempt_dir / TICKET).stat().st_mtime
        found[uuid] = (datetime.fromtimestamp(mtime, UTC), job_id)
    return found


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)


__all__ = ["JOB_ID", "DiracClassicBackend", "DiracClassicOptions"]
