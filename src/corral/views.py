"""The JSON views of corral's records: what ``--json`` prints (schema 1, docs/cli.md) and what a
REST API will serve, built in this one module from plain records. Surfaces add the envelope
(``"schema": 1``) and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.records import Usage

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.config import Settings
    from corral.records import BackendHealth, JobRecord, Transition
    from corral.registry.status import MonitorStatus
    from corral.registry.summary import LeaseInfo
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
    record: JobRecord, history: list[Transition], subjobs: list[JobRecord]
) -> dict[str, Any]:
    return {
        "job": record_view(record),
        "spec": record.spec.model_dump(mode="json"),
        "history": [transition_view(t) for t in history],
        "subjobs": [record_view(s) for s in subjobs],
        "usage_total": _usage(Usage.total(s.usage for s in subjobs) if subjobs else record.usage),
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
