"""The DIRAC backend: DiracX's REST API from the event loop, no subprocess, no thread but for
file work.

Costs, whatever the number of jobs (N attempts):

- submit: one ``POST /api/jobs/sandbox`` per distinct input sandbox (+ one upload when the
  server lacks it: a sweep shares one), then ceil(N / 20) ``POST /api/jobs/jdl`` calls,
  ``submit_concurrency`` in flight; attempts tried before cost one reconcile search first.
- status: one ``POST /api/jobs/search`` per cycle (pages of up to 10,000 rows, fetched at
  once), asking only for rows changed since the last search once every job has been seen.
- cancel: one ``PATCH /api/jobs/status`` (+ a search to learn unknown ids, a search and a resend
  after a 403, and one search to read the result back).
- outputs: per finished job, one listing and per sandbox one presigned-URL call plus the
  download, ``fetch_concurrency`` jobs at once, on the finalisation queue.

Files in each attempt dir: ``dirac.jdl`` (the ticket: written before the job is sent, so a
retried submit reconciles first), ``dirac-job-id`` (after the chunk is accepted).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from corral import faults
from corral.backends.base import (
    AsyncBackend,
    BackendConfig,
    BackendOptions,
    JobOptions,
    Report,
    Submitted,
)
from corral.backends.dirac import jdl, observe, payload
from corral.backends.dirac.auth import TokenStore, credentials_path
from corral.backends.dirac.client import DiracxClient, Forbidden, Refused, kill_stamp, search_time
from corral.backends.dirac.options import DiracJobOptions, DiracOptions, placement
from corral.errors import BackendError, BackendUnavailable, TransientBackendError
from corral.records import Attempt, Observation

log = logging.getLogger("corral.backends.dirac")
TICKET = "dirac.jdl"
JOB_ID = "dirac-job-id"
FULL_EVERY = timedelta(minutes=10)
"""How often the status search asks for every job, not only changed ones (a job removed from
the server's database only shows as missing in a full search)."""


class DiracBackend(AsyncBackend):
    """See the module docstring for what each verb costs."""

    Options: ClassVar[type[BackendOptions]] = DiracOptions
    JobOptions: ClassVar[type[JobOptions]] = DiracJobOptions
    extra: ClassVar[str | None] = "dirac"
    options: DiracOptions

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.group = jdl.job_group(config)
        self.client: DiracxClient | None = None
        self._rows: dict[str, observe.Row] = {}
        self._since: datetime | None = None
        self._full_at: datetime | None = None
        self._uploaded: dict[str, str] = {}  # sha256 -> pfn, uploaded by this instance
        self._fetching: asyncio.Semaphore | None = None

    def call_counts(self) -> Mapping[str, int]:
        return dict(self.client.calls) if self.client else {}

    @property
    def url(self) -> str:
        url = self.options.url or os.environ.get("DIRACX_URL", "")
        if not url:
            raise BackendUnavailable("down: no DiracX server (set DIRACX_URL or the url option)")
        return url

    async def start(self, report: Report) -> None:
        if self.client is not None:
            await self.client.aclose()
        tokens = TokenStore(credentials_path(self.options.credentials_path))
        await tokens.load()  # no file: down, login needed
        self.client = DiracxClient(
            self.url, tokens, client_id=self.options.client_id, timeout=self.options.timeout
        )
        self._fetching = asyncio.Semaphore(self.options.fetch_concurrency)
        self._since = None  # after a restart, the first search asks for every job

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def _client(self) -> DiracxClient:
        if self.client is None:
            raise BackendUnavailable("DIRAC backend not started")
        return self.client

    # ---- submit and reconcile

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        """Tried before: reconciled by one search. The rest: sandboxes uploaded once per
        content, tickets written, then chunks of ``submit_chunk`` JDLs, several in flight, the
        ids stored after each chunk."""
        client = self._client()
        known = await asyncio.to_thread(_read_tickets, attempts)
        accepted = {uuid: job_id for uuid, (_, job_id) in known.items() if job_id}
        tried = [a for a in attempts if a.uuid in known and a.uuid not in accepted]
        accepted.update(await self.reconcile(tried))
        fresh = [a for a in attempts if a.uuid not in accepted]
        refused: dict[str, str] = {}
        jobs: list[tuple[Attempt, str]] = []
        try:
            blobs = await asyncio.to_thread(_blobs, fresh)
            pfns = await self._upload(client, blobs)
            for attempt in fresh:
                try:
                    jobs.append((attempt, self._render(attempt, pfns.get(attempt.uuid))))
                except ValueError as exc:
                    refused[attempt.uuid] = f"not submitted: {exc}"
            await asyncio.to_thread(_write_tickets, jobs)
            size = self.options.submit_chunk
            gate = asyncio.Semaphore(self.options.submit_concurrency)
            chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
            async with asyncio.TaskGroup() as group:
                for chunk in chunks:
                    group.create_task(self._submit_chunk(client, chunk, gate, accepted, refused))
        except* BackendError as failure:
            first = failure.exceptions[0]
            if isinstance(first, BackendUnavailable):
                # down (login needed, server gone): the ids of the chunks that went through
                # are on disk, so the retry after the backend is back adopts them
                raise first from None
            # the ids of the chunks that went through are on disk and in `accepted`
            raise TransientBackendError(
                f"submit: {first}", accepted=accepted, refused=refused
            ) from first
        return Submitted(accepted, refused)

    def _render(self, attempt: Attempt, pfn: str | None) -> str:
        job = DiracJobOptions.model_validate(dict(attempt.spec.backend_options))
        place = placement(self.options, job)
        description = jdl.describe(
            attempt.spec,
            attempt.label,
            self.group,
            jdl.Placement(
                place.site, place.banned_sites, place.tags, place.platform, place.cpu_time
            ),
            pfn,
        )
        return jdl.render(description)

    async def _upload(
        self, client: DiracxClient, blobs: Mapping[str, payload.Blob]
    ) -> dict[str, str]:
        """Each distinct sandbox once (the server answers without an upload URL when it has
        the content already): ``{uuid: pfn}``."""
        distinct = {blob.checksum: blob for blob in blobs.values()}
        missing = [b for c, b in distinct.items() if c not in self._uploaded]
        pfns = await asyncio.gather(*(client.sandbox_upload(b.checksum, b.data) for b in missing))
        self._uploaded.update({b.checksum: pfn for b, pfn in zip(missing, pfns, strict=True)})
        return {uuid: self._uploaded[blob.checksum] for uuid, blob in blobs.items()}

    async def _submit_chunk(
        self,
        client: DiracxClient,
        chunk: list[tuple[Attempt, str]],
        gate: asyncio.Semaphore,
        accepted: dict[str, str],
        refused: dict[str, str],
    ) -> None:
        async with gate:
            try:
                ids = await client.submit([text for _, text in chunk])
            except Refused as exc:
                if len(chunk) == 1:
                    refused[chunk[0][0].uuid] = f"DiracX refused the job: {exc.detail}"
                    return
                # one bad JDL refuses the whole call: find it by sending each alone
                for one in chunk:
                    await self._submit_chunk_unlocked(client, [one], accepted, refused)
                return
            faults.point("after_dirac_submit")  # DiracX has the jobs, no id is stored yet
            done = {attempt.uuid: job_id for (attempt, _), job_id in zip(chunk, ids, strict=True)}
            accepted.update(done)
            await asyncio.to_thread(_write_ids, [(a, done[a.uuid]) for a, _ in chunk])

    async def _submit_chunk_unlocked(
        self,
        client: DiracxClient,
        chunk: list[tuple[Attempt, str]],
        accepted: dict[str, str],
        refused: dict[str, str],
    ) -> None:
        await self._submit_chunk(client, chunk, asyncio.Semaphore(1), accepted, refused)

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """One search, ``JobGroup eq`` our registry and ``JobName in`` the labels."""
        if not attempts:
            return {}
        found = {
            uuid: job_id
            for uuid, (_, job_id) in (await asyncio.to_thread(_read_tickets, attempts)).items()
            if job_id
        }
        ask = [a for a in attempts if a.uuid not in found]
        if ask:
            labels = [a.label for a in ask]
            rows, _ = await self._client().search(
                [
                    {"parameter": "JobGroup", "operator": "eq", "value": self.group},
                    {"parameter": "JobName", "operator": "in", "values": labels},
                ],
                observe.RECONCILE_COLUMNS,
                self.options.page_size,
            )
            named = observe.by_label(rows, self.group, labels)
            found.update({a.uuid: named[a.label] for a in ask if a.label in named})
        return found

    # ---- status

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        live = {a.uuid: a.native_id for a in attempts if a.native_id}
        if not live:
            return {}
        ids = sorted(set(live.values()), key=int)
        now = datetime.now(UTC)
        full = (
            self._since is None
            or self._full_at is None
            or now - self._full_at > FULL_EVERY
            or any(i not in self._rows for i in ids)
        )
        search: list[dict[str, Any]] = [
            {"parameter": "JobID", "operator": "in", "values": [int(i) for i in ids]}
        ]
        if not full:
            assert self._since is not None
            # whole seconds on the server's side: overlap the window
            since = self._since - timedelta(seconds=self.options.window_overlap)
            search.append(
                {"parameter": "LastUpdateTime", "operator": "gt", "value": search_time(since)}
            )
        per_page = min(self.options.page_size, len(ids))
        rows, server_time = await self._client().search(search, observe.COLUMNS, per_page)
        parsed = observe.parse_rows(rows)
        if full:
            for job_id in ids:
                self._rows.pop(job_id, None)
            self._full_at = now
        self._rows.update(parsed)
        self._since = server_time or now
        keep = set(ids)
        for job_id in [i for i in self._rows if i not in keep]:
            del self._rows[job_id]  # no longer tracked: forget it
        return {
            uuid: observe.observe(uuid, self._rows[job_id])
            if job_id in self._rows
            else observe.missing(uuid, job_id)
            for uuid, job_id in live.items()
        }

    async def _learn(self, ids: Sequence[str]) -> None:
        """Search these ids now, so ``_rows`` says which exist and which are final."""
        if not ids:
            return
        rows, _ = await self._client().search(
            [{"parameter": "JobID", "operator": "in", "values": [int(i) for i in ids]}],
            observe.COLUMNS,
            min(self.options.page_size, len(ids)),
        )
        parsed = observe.parse_rows(rows)
        for job_id in ids:
            self._rows.pop(job_id, None)
        self._rows.update(parsed)

    # ---- cancel and outputs

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        """One PATCH to Killed for the ids worth killing. With a user token one unknown or
        foreign id makes the whole batch 403 and nothing is killed, and an illegal transition
        is a silent 200: so drop final and unknown ids first, search again on a 403, and read
        the result back."""
        client = self._client()
        ids = sorted({a.native_id for a in attempts if a.native_id}, key=int)
        await self._learn([i for i in ids if i not in self._rows])
        for round_ in range(2):
            targets = observe.killable(ids, self._rows)
            if not targets:
                return
            stamp = kill_stamp(datetime.now(UTC))
            entry = {"Status": "Killed", "MinorStatus": "Marked as killed", "Source": "corral"}
            try:
                await client.set_status({i: {stamp: entry} for i in targets})
                break
            except Forbidden as exc:
                if round_:
                    raise TransientBackendError(f"kill refused: {exc}") from exc
                await self._learn(targets)  # someone else's or gone: learn which, resend
        await self._learn(targets)
        alive = [i for i in targets if i in self._rows and not self._rows[i].final]
        if alive:
            log.warning("DiracX did not kill %s (illegal transition?)", ", ".join(alive))

    async def fetch_outputs(self, attempt: Attempt) -> None:
        """The output sandbox into the attempt dir; a killed job without one is normal."""
        if not attempt.native_id:
            return
        client = self._client()
        assert self._fetching is not None
        async with self._fetching:
            pfns = await client.output_sandbox(attempt.native_id)
            archives = await asyncio.gather(*(client.download(_key(p)) for p in pfns))
        await asyncio.to_thread(
            payload.unpack_outputs, attempt.spec, attempt.attempt_dir, list(archives)
        )


def _key(pfn: str) -> str:
    """``SB:SandboxSE|/S3/...`` -> ``/S3/...`` (what ``GET /api/jobs/sandbox`` takes)."""
    return pfn.split("|", 1)[1] if "|" in pfn else pfn


# ---- blocking file I/O, run in a worker thread


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _read_tickets(attempts: Sequence[Attempt]) -> dict[str, tuple[str, str | None]]:
    """``{uuid: (ticket, job id or None)}`` of attempts sent (or about to be sent) before."""
    found: dict[str, tuple[str, str | None]] = {}
    for attempt in attempts:
        ticket = _read(attempt.attempt_dir / TICKET)
        if ticket is not None:
            found[attempt.uuid] = (ticket, _read(attempt.attempt_dir / JOB_ID) or None)
    return found


def _blobs(attempts: Sequence[Attempt]) -> dict[str, payload.Blob]:
    blobs = {}
    for attempt in attempts:
        blob = payload.input_sandbox(attempt.spec, attempt.attempt_dir)
        if blob is not None:
            blobs[attempt.uuid] = blob
    return blobs


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _write_tickets(jobs: Sequence[tuple[Attempt, str]]) -> None:
    for attempt, text in jobs:
        _write(attempt.attempt_dir / TICKET, text)


def _write_ids(done: Sequence[tuple[Attempt, str]]) -> None:
    for attempt, job_id in done:
        _write(attempt.attempt_dir / JOB_ID, job_id + "\n")
