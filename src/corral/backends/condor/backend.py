"""The HTCondor backend's calls: every one blocking, run in the instance's own thread limiter.

Costs, whatever the number of jobs: a submit is one ``schedd.submit`` per group of attempts with
the same resources (a sweep is one cluster: itemdata) and, in spool mode, one ``schedd.spool``;
a status cycle is one ``schedd.query`` (a constraint on our clusters, a projection of the few
attributes needed) plus one ``schedd.history`` only when tracked jobs left the queue; hold,
release and cancel are one ``schedd.act`` each (plus one query to say why, only when its totals
show that some jobs were not acted on); reconcile is one query over the labels (plus one history
query for labels not in the queue). Spool mode fetches outputs with one ``retrieve`` per job, on
the monitor's finalisation queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from corral import faults
from corral.backends.base import (
    BackendConfig,
    BackendOptions,
    BlockingBackend,
    JobOptions,
    Report,
    Submitted,
    refuse_resources,
)
from corral.backends.condor import observe, render
from corral.backends.condor.options import CondorJobOptions, CondorOptions
from corral.errors import BackendUnavailable, InvalidSpec, TransientBackendError
from corral.records import Attempt, Observation
from corral.sandbox import SUBMITTED
from corral.states import JobState

if TYPE_CHECKING:
    from corral.spec import JobSpec

log = logging.getLogger("corral.backends.condor")
_HOLD_FIELDS = ["ClusterId", "ProcId", "JobStatus", "HoldReasonCode", "HoldReason", render.LABEL]
_STALE = "corral: left spooling by a crash, submitted again"


def _bindings() -> Any:
    try:
        import htcondor2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise BackendUnavailable(
            "the HTCondor bindings are not installed: pip install 'corral[condor]'"
        ) from exc
    return htcondor2


class CondorBackend(BlockingBackend):
    """Drives a schedd through ``htcondor2``; see the module docstring for what each verb costs."""

    Options: ClassVar[type[BackendOptions]] = CondorOptions
    JobOptions: ClassVar[type[JobOptions]] = CondorJobOptions
    extra: ClassVar[str | None] = "condor"
    can_hold: ClassVar[bool] = True
    honours: ClassVar[frozenset[str]] = frozenset({"gpus"})  # request_gpus
    options: CondorOptions

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._htc: Any = None
        self._schedd: Any = None
        self._calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._missing_since: dict[str, float] = {}

    @classmethod
    def check_job(cls, spec: JobSpec, options: BackendOptions) -> None:
        cls.job_options(spec)
        res = spec.resources
        if (res.nodes or 1) > 1 or (res.tasks_per_node or 1) > 1:
            raise InvalidSpec(
                "resources.nodes/tasks_per_node: MPI layouts need HTCondor's parallel universe, "
                "which the condor backend does not use (ask for cpus on one node instead)"
            )
        refuse_resources(cls, spec)
        if getattr(options, "mode", "spool") == "spool" and spec.working_dir is not None:
            raise InvalidSpec(
                "working_dir: spool mode runs jobs in HTCondor's scratch dir "
                '(use mode = "shared" for a filesystem the pool sees)'
            )

    @property
    def spool(self) -> bool:
        return self.options.mode == "spool"

    @property
    def registry(self) -> str:
        return self.config.registry_uuid

    def call_counts(self) -> Mapping[str, int]:
        with self._count_lock:
            return dict(self._calls)

    def _call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One call to the schedd, counted; its failures are transient (the monitor backs off,
        and several in a row make the backend down)."""
        with self._count_lock:
            self._calls[name] += 1
        try:
            return fn(*args, **kwargs)
        except (self._htc.HTCondorException, RuntimeError, OSError, ValueError) as exc:
            raise TransientBackendError(f"HTCondor {name} failed: {exc}") from exc

    # ---- lifecycle

    def start(self, report: Report) -> None:
        self._htc = _bindings()
        try:
            self._schedd = self._locate()
            self._call("query", self._schedd.query, "false", ["ClusterId"], limit=1)
        except (TransientBackendError, self._htc.HTCondorException, RuntimeError) as exc:
            raise BackendUnavailable(f"cannot reach the HTCondor schedd: {exc}") from exc

    def _locate(self) -> Any:
        htc = self._htc
        if self.options.schedd is None and self.options.collector is None:
            return htc.Schedd()
        collector = htc.Collector(self.options.collector) if self.options.collector else None
        collector = collector or htc.Collector()
        ad = collector.locate(htc.DaemonType.Schedd, self.options.schedd)
        return htc.Schedd(ad)

    def stop(self) -> None:
        self._schedd = None

    # ---- submit and reconcile

    def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        """One cluster per group. Attempts tried before (their marker exists: a previous call
        failed or a crash came between the call and its commit) are looked for first."""
        refused = {
            a.uuid: f"not submitted: the attempt dir has characters HTCondor cannot take: "
            f"{a.attempt_dir}"
            for a in attempts
            if render.unsafe_path(a.attempt_dir)
        }
        usable = [a for a in attempts if a.uuid not in refused]
        tried = [a for a in usable if (a.attempt_dir / render.MARKER).exists()]
        accepted = dict(self.reconcile(tried))
        fresh = [a for a in usable if a.uuid not in accepted]
        for group in render.plan(fresh, self.options.requirements):
            try:
                accepted.update(self._submit_group(group))
            except _Refused as exc:
                refused.update({a.uuid: f"HTCondor refused the job: {exc}" for a in group.attempts})
            except TransientBackendError as exc:
                raise TransientBackendError(str(exc), accepted=accepted, refused=refused) from exc
        return Submitted(accepted, refused)

    def _submit_group(self, group: render.Group) -> dict[str, str]:
        """One cluster; ``_Refused`` if HTCondor cannot make a job ad of it (a bad expression:
        that never succeeds on retry)."""
        for attempt in group.attempts:
            _prepare(attempt, self.spool)
        desc = render.description(group, self.registry, self.options.mode)
        rows = render.itemdata(group, self.options.mode)
        submit = self._htc.Submit(desc)
        try:
            result = self._call(
                "submit", self._schedd.submit, submit, spool=self.spool, itemdata=iter(rows)
            )
        except TransientBackendError as exc:
            text = str(exc.__cause__ or exc)
            if "Failed to create job ad" in text:
                raise _Refused(printable_line(text)) from exc
            raise
        if self.spool:
            faults.point("before_condor_spool")  # jobs held (16) that a restart must not lose
            self._call("spool", self._schedd.spool, result)
        faults.point("after_condor_submit")  # HTCondor has the jobs, the registry does not know
        return group.native_ids(int(result.cluster()))

    def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """The jobs of attempts a crash left in ``submitting``, by label: one query (plus one
        history query for labels not in the queue). A cluster a crash left spooling (its inputs
        never uploaded, so it never ran) is removed, and its attempts are submitted again."""
        if not attempts:
            return {}
        by_label = {a.label: a for a in attempts}
        where = render.labels_constraint(self.registry, by_label)
        found: dict[str, str] = {}
        stale: dict[str, str] = {}  # label -> native id
        ads = self._call("query", self._schedd.query, where, render.PROJECTION)
        for ad in map(observe.plain, ads):
            attempt = by_label.get(str(ad.get(render.LABEL)))
            if attempt is None or _STALE in str(ad.get("RemoveReason", "")):
                continue  # (a cluster removed by an earlier reconcile may linger a moment)
            if ad.get("JobStatus") == observe.HELD and observe.hold_code(ad) == observe.SPOOLING:
                stale[attempt.label] = render.native_id(ad)
            else:
                found[attempt.uuid] = render.native_id(ad)
        left = {label for label, a in by_label.items() if a.uuid not in found} - set(stale)
        if left:
            where = render.labels_constraint(self.registry, left)
            for ad in map(observe.plain, self._history(where)):
                attempt = by_label.get(str(ad.get(render.LABEL)))
                if attempt is not None and _STALE not in str(ad.get("RemoveReason", "")):
                    found.setdefault(attempt.uuid, render.native_id(ad))
        if stale:
            self._act("Remove", render.ids_constraint(stale.values()), _STALE)
        return found

    # ---- status

    def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        live = {a.native_id: a for a in attempts if a.native_id}
        if not live:
            return {}
        where = self._ours(render.clusters_constraint(live))
        ads = self._mine(self._call("query", self._schedd.query, where, render.PROJECTION), live)
        observed: dict[str, Observation] = {}
        remove: list[str] = []
        gone = [a for native, a in live.items() if native not in ads]
        for native, ad in ads.items():
            observed[live[native].uuid] = observe.observe(live[native], ad)
            if observe.must_remove(ad):
                remove.append(native)
        if gone:
            observed.update(self._from_history(gone, live))
        for uuid, obs in observed.items():
            if obs.state != JobState.UNKNOWN:
                self._missing_since.pop(uuid, None)
        if remove:
            self._act("Remove", render.ids_constraint(remove), "corral: a hold that cannot succeed")
        return observed

    def _from_history(
        self, gone: Sequence[Attempt], live: Mapping[str, Attempt]
    ) -> dict[str, Observation]:
        """Jobs that left the queue: their end from one history query."""
        where = self._ours(render.ids_constraint(a.native_id or "" for a in gone))
        history = self._mine(self._history(where), live)
        now = time.monotonic()
        observed: dict[str, Observation] = {}
        for attempt in gone:
            ended = history.get(attempt.native_id or "")
            if ended is not None:
                observed[attempt.uuid] = observe.observe(attempt, ended)
                continue
            since = self._missing_since.setdefault(attempt.uuid, now)
            obs = observe.missing(attempt, now - since, self.options.lost_after)
            if obs is not None:
                observed[attempt.uuid] = obs
        return observed

    def _ours(self, where: str) -> str:
        return f'{render.REGISTRY} == "{self.registry}" && ({where})' if self.registry else where

    def _mine(self, ads: Any, live: Mapping[str, Attempt]) -> dict[str, dict[str, Any]]:
        """``{native_id: ad}`` of the ads that carry the label of the attempt at that id (ids
        restart with a fresh pool; labels do not). History is newest first: the first wins."""
        mine: dict[str, dict[str, Any]] = {}
        for raw in ads:
            ad = observe.plain(raw)
            native = render.native_id(ad)
            attempt = live.get(native)
            if attempt is not None and ad.get(render.LABEL) == attempt.label:
                mine.setdefault(native, ad)
        return mine

    def _history(self, where: str) -> Any:
        return self._call("history", self._schedd.history, where, render.PROJECTION, match=-1)

    # ---- cancel, hold, release

    def _act(self, action: str, where: str, reason: str | None = None) -> dict[str, Any]:
        kind = getattr(self._htc.JobAction, action)
        args = {} if reason is None else {"reason": (reason, 0)}
        result = self._call(action.lower(), self._schedd.act, kind, where, **args)
        return observe.plain(result)

    def cancel(self, attempts: Sequence[Attempt]) -> None:
        ids = [a.native_id for a in attempts if a.native_id]
        if ids:
            totals = self._act("Remove", render.ids_constraint(ids), "killed by corral")
            if totals.get("TotalError", 0) or totals.get("TotalPermissionDenied", 0):
                raise TransientBackendError(f"HTCondor remove refused: {_totals(totals)}")

    def hold(self, attempts: Sequence[Attempt], reason: str) -> Mapping[str, str]:
        """Idle jobs only (a running job is never evicted by corral); one ``act``."""
        return self._hold_or_release("Hold", attempts, f"JobStatus == {observe.IDLE}", reason)

    def release(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        held = f"JobStatus == {observe.HELD} && HoldReasonCode =!= {observe.SPOOLING}"
        return self._hold_or_release("Release", attempts, held, None)

    def _hold_or_release(
        self, action: str, attempts: Sequence[Attempt], state: str, reason: str | None
    ) -> dict[str, str]:
        why = {a.uuid: "not submitted yet" for a in attempts if not a.native_id}
        live = {a.native_id: a for a in attempts if a.native_id}
        explain = observe.not_held_why if action == "Hold" else observe.not_released_why
        # Twice at most: a job can change between the act and the query that explains a miss
        # (its input spooling ends, so it is idle now): one that could take it now is retried.
        for last in (False, True):
            if not live:
                return why
            ids = render.ids_constraint(live)
            totals = self._act(action, self._ours(f"{state} && ({ids})"), reason)
            if totals.get("TotalSuccess", 0) >= len(live):
                return why
            ads = self._mine(
                self._call("query", self._schedd.query, self._ours(ids), _HOLD_FIELDS),
                live,
            )
            missed = {n: a for n, a in live.items() if not _took(action, ads.get(n), reason)}
            again = {n: a for n, a in missed.items() if _could(action, ads.get(n))}
            for native, attempt in missed.items():
                if last or native not in again:
                    why[attempt.uuid] = explain(ads.get(native))
            live = {} if last else again
        return why

    # ---- outputs

    def fetch_outputs(self, attempt: Attempt) -> None:
        """Spool mode: ``stdout``, ``stderr`` and the ``sandbox`` dir back into the attempt dir."""
        if not self.spool or not attempt.native_id:
            return
        cluster, proc = render.split_id(attempt.native_id)
        self._call("retrieve", self._schedd.retrieve, f"ClusterId == {cluster} && ProcId == {proc}")


class _Refused(Exception):
    """HTCondor will never take this cluster (the message says why)."""


def printable_line(text: str) -> str:
    """HTCondor's multi-line errors as one line: the parse error and the expression."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())[:500]


def _totals(totals: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(totals.items()) if k.startswith("Total") and v)


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _prepare(attempt: Attempt, spool: bool) -> None:
    """The executable (spool mode), then the marker that makes the attempt looked for first."""
    if spool:
        _write(attempt.attempt_dir / render.SCRIPT, render.render_script(attempt.spec), 0o700)
    _write(attempt.attempt_dir / render.MARKER, attempt.label + "\n")
    link = attempt.attempt_dir / SUBMITTED
    link.unlink(missing_ok=True)
    link.symlink_to(attempt.attempt_dir / (render.SCRIPT if spool else "job.sh"))


def _took(action: str, ad: observe.Ad | None, reason: str | None) -> bool:
    """The job's ad after a Hold or Release says it took."""
    if ad is None:
        return False
    if action == "Release":
        return ad.get("JobStatus") != observe.HELD
    return (
        ad.get("JobStatus") == observe.HELD
        and observe.hold_code(ad) == observe.USER_HOLD
        and str(ad.get("HoldReason", "")).startswith(reason or "")
    )


def _could(action: str, ad: observe.Ad | None) -> bool:
    """The job is now in the state the action needs (it was not when the action ran)."""
    if ad is None:
        return False
    if action == "Hold":
        return bool(ad.get("JobStatus") == observe.IDLE)
    return ad.get("JobStatus") == observe.HELD and observe.hold_code(ad) != observe.SPOOLING
