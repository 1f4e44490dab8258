"""The JSON views of corral's records: what ``--json`` prints (schema 1, docs/cli.md) and what a
REST API will serve, built in this one module from plain records. Surfaces add the envelope
(``"schema": 1``) and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.records import Usage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from corral.config import Settings
    from corral.holds import HoldResult
    from corral.monitor.loop import BackendStatus
    from corral.records import BackendHealth, JobId, JobRecord, Transition
    from corral.registry.status import MonitorStatus
    from corral.registry.summary import LeaseInfo
    from corral.spec import JobSpec
    from corral.states import JobState


def transition_view(t: Transition) -> dict[str, Any]:
    """One stored transition (``show --json``'s history; the change stream's events)."""
    return {
        "seq": t.seq,
        "id": str(t.id),
        "at": t.at,
        "attempt": t.attempt,
        "old": t.old.value if t.old else None,
        "new": t.new.value,
        "reason": t.reason,
        "applied": t.applied,
    }


def show_view(
    record: JobRecord,
    history: list[Transition],
    subjobs: list[JobRecord],
    backend_health: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``show --json``; ``backend_health`` is ``backend_health_view`` of the job's backend."""
    return {
        "job": record_view(record),
        "spec": record.spec.model_dump(mode="json"),
        "history": [transition_view(t) for t in history],
        "subjobs": [record_view(s) for s in subjobs],
        "usage_total": _usage(Usage.total(s.usage for s in subjobs) if subjobs else record.usage),
        "backend_health": backend_health,
    }


def _usage(usage: Usage | None) -> dict[str, Any] | None:
    return None if usage is None else usage.to_json()


def record_view(r: JobRecord) -> dict[str, Any]:
    attempt_dir = r.attempt_dir
    return {
        "id": str(r.id),
        "name": r.name,
        "state": r.state.value,
        "backend": r.backend,
        "tags": list(r.tags),
        "attempt": r.attempt,
        "uuid": r.uuid,
        "native_id": r.native_id,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "reason": r.reason,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "subjobs": r.subjobs,
        "counts": {s.value: n for s, n in r.counts.items()} if r.is_master else {r.state.value: 1},
        "kill_requested": r.kill_requested,
        "job_dir": str(r.job_dir) if r.job_dir else None,
        "attempt_dir": str(attempt_dir) if attempt_dir and not r.is_master else None,
        "stdout": str(attempt_dir / "stdout") if attempt_dir and not r.is_master else None,
        "stderr": str(attempt_dir / "stderr") if attempt_dir and not r.is_master else None,
        "output_dir": str(r.output_dir) if r.output_dir else None,
        "outputs": outputs_of(r),
        "problem": r.problem or None,
        "usage": _usage(r.usage),
    }


def outputs_of(record: JobRecord) -> list[str]:
    out = record.output_dir
    if out is None or not out.is_dir():
        return []
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def removed_view(r: JobRecord) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "name": r.name,
        "state": r.state.value,
        "subjobs": r.subjobs,
        "job_dir": str(r.job_dir) if r.job_dir else None,
    }


def backend_health_view(h: BackendHealth, stale: bool) -> dict[str, Any]:
    return {
        "name": h.name,
        "kind": h.kind,
        "state": h.state,
        "reason": h.reason,
        "since": h.since,
        "active": h.active,
        "interval": h.interval,
        "last_poll": h.last_poll,
        "polls": h.polls,
        "errors": h.errors,
        "consecutive_errors": h.consecutive_errors,
        "calls": dict(h.calls),
        "updated_at": h.updated_at,
        "stale": stale,
    }


def last_error_view(lease: LeaseInfo | None) -> dict[str, Any] | None:
    if lease is None or lease.last_error is None:
        return None
    return {
        "error": lease.last_error,
        "at": lease.last_error_at,
        "pid": lease.last_error_pid,
        "stale": not lease.error_is_latest,
    }


def monitor_status_view(
    status: MonitorStatus, stale: Callable[[BackendHealth], bool], settings: Settings
) -> dict[str, Any]:
    """``monitor --status --json``: who drives the registry, its lease, the backends' health
    (``stale`` says which rows are history) and the daemon settings."""
    from dataclasses import asdict

    lease = status.lease
    return {
        "running": status.pid is not None,
        "pid": status.pid,
        "lease": None if lease is None else asdict(lease),
        "active": status.active,
        "log": str(settings.log_path),
        "autostart": settings.autostart,
        "idle_exit": settings.idle_exit,
        "backends": [backend_health_view(h, stale(h)) for h in status.backends],
        "last_error": last_error_view(lease),
    }


def wait_view(jobs: list[JobRecord], counts: dict[JobState, int]) -> dict[str, Any]:
    """``wait --json``: ``ok`` is false when a unit failed or was killed."""
    from corral.states import JobState

    bad = counts.get(JobState.FAILED, 0) + counts.get(JobState.KILLED, 0)
    return {
        "ok": not bad,
        "counts": {s.value: n for s, n in counts.items()},
        "jobs": [
            {
                "id": str(j.id),
                "state": j.state.value,
                "counts": (
                    {s.value: n for s, n in j.counts.items()} if j.is_master else {j.state.value: 1}
                ),
            }
            for j in jobs
        ],
    }


# ---------------------------------------------------------------- what a verb did
def _ids(ids: Iterable[JobId]) -> list[str]:
    return [str(i) for i in ids]


def submitted_view(job_id: JobId, subjobs: int, backend: str) -> dict[str, Any]:
    """``submit --json``: the new job, its number of subjobs (0: a plain job), its backend."""
    return {"id": str(job_id), "subjobs": subjobs, "backend": backend}


def dry_run_view(spec: JobSpec, subjobs: Sequence[JobSpec], script: str) -> dict[str, Any]:
    """``submit --dry-run --json``: the validated spec, its subjobs' specs and the job script
    the first of them (or the job itself) would run; nothing was stored."""
    return {
        "dry_run": True,
        "spec": spec.model_dump(mode="json"),
        "subjobs": [s.model_dump(mode="json") for s in subjobs],
        "script": script,
    }


def copied_view(job_id: JobId, source: JobId) -> dict[str, Any]:
    """``copy --json``: the new job and the one whose spec it copied."""
    return {"id": str(job_id), "source": str(source)}


def killed_view(ids: Iterable[JobId]) -> dict[str, Any]:
    """``kill --json``: the (sub)jobs a kill was requested for."""
    return {"killed": _ids(ids)}


def resubmitted_view(ids: Iterable[JobId]) -> dict[str, Any]:
    """``resubmit --json``: the (sub)jobs given a new attempt."""
    return {"resubmitted": _ids(ids)}


def hold_view(verb: str, result: HoldResult) -> dict[str, Any]:
    """``hold --json`` (``verb`` "held") and ``release --json`` ("released"): the jobs acted
    on, and why each other one was not."""
    return {verb: _ids(result.done), "refused": {str(k): v for k, v in result.refused.items()}}


def removal_view(removed: Iterable[JobRecord], dry_run: bool) -> dict[str, Any]:
    """``rm --json`` and ``gc --json``: the jobs removed (or, with ``dry_run``, that would be)."""
    return {"dry_run": dry_run, "removed": [removed_view(r) for r in removed]}


def stopped_view(pid: int | None) -> dict[str, Any]:
    """``monitor --stop --json``: the pid of the monitor stopped, None if none ran."""
    return {"stopped": pid}


def loop_status_view(s: BackendStatus) -> dict[str, Any]:
    """One backend loop of a monitor run in the foreground, as it stopped."""
    return {
        "name": s.name,
        "active": s.active,
        "interval": s.interval,
        "last_poll": s.last_poll,
        "polls": s.polls,
        "errors": s.errors,
        "last_error": s.last_error,
    }


def foreground_view(statuses: Iterable[BackendStatus]) -> dict[str, Any]:
    """``monitor --json`` (``--once`` or the live view, once it stops): its backend loops."""
    return {"backends": [loop_status_view(s) for s in statuses]}


# ---------------------------------------------------------------- settings and plugins
def config_view(
    settings: Settings, rows: Iterable[tuple[str, Any, str]], exists: bool
) -> dict[str, Any]:
    """``config show --json``: the config file, whether it ``exists``, and every effective
    setting as ``(dotted key, value, source)`` rows."""
    return {
        "config_file": str(settings.config_file),
        "config_file_exists": exists,
        "settings": {k: {"value": v, "source": src} for k, v, src in rows},
    }


def plugins_view(
    kinds: Sequence[Mapping[str, Any]], instances: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``plugins --json``: the backend kinds (``backend_kind_view``) and the configured or
    used instances (``backend_instance_view``)."""
    return {"backends": list(kinds), "instances": list(instances)}


def backend_kind_view(kind: str, cls: type[Any] | None, error: str | None) -> dict[str, Any]:
    """A backend kind: whether its class loads (``cls``; else ``error`` says why) and its
    options (its pydantic ``Options`` model's fields) with their defaults."""
    if cls is None:
        return {"name": kind, "ok": False, "error": error, "options": [], "option_fields": []}
    fields = [
        {
            "name": name,
            "default": None if info.is_required() else info.get_default(call_default_factory=True),
            "required": info.is_required(),
            "description": info.description,
        }
        for name, info in sorted(cls.Options.model_fields.items())
    ]
    return {
        "name": kind,
        "ok": True,
        "error": None,
        "options": [f["name"] for f in fields],
        "option_fields": fields,
        "class": f"{cls.__module__}.{cls.__qualname__}",
    }


def backend_instance_view(
    name: str,
    kind: str,
    *,
    configured: bool,
    options: Mapping[str, Any] | None,
    valid: bool,
    error: str | None,
    health: dict[str, Any] | None,
) -> dict[str, Any]:
    """A backend instance: its kind, whether its section is in the config, its checked
    ``options`` (None unless they are: then ``ok``), whether the section is ``valid`` (False
    only for a bad section), the ``error`` met, and its last known ``health``."""
    return {
        "name": name,
        "kind": kind,
        "configured": configured,
        "ok": options is not None,
        "valid": valid,
        "error": error,
        "options": None if options is None else dict(options),
        "health": health,
    }
