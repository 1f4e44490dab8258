"""``corral wait`` and ``corral peek``: the commands. Their async engines, ``tracking`` and
``peeking``, are imported when they run (asyncio is not loaded for commands that never need it)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from corral.cli.common import (
    Backends,
    Ids,
    Json,
    Names,
    States,
    Tags,
    emit_json,
    job_filter,
    need_registry,
    parse_ids,
    run,
    state,
)
from corral.cli.errors import JOB_FAILED, OK
from corral.errors import InvalidInput
from corral.selection import Selection
from corral.states import ACTIVE, JobState

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from corral.config import Settings
    from corral.records import JobId, JobRecord

ORDER = (
    JobState.NEW,
    JobState.SUBMITTING,
    JobState.SUBMITTED,
    JobState.UNKNOWN,
    JobState.RUNNING,
    JobState.COMPLETING,
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.KILLED,
)


def wait(
    ctx: typer.Context,
    ids: Ids = None,
    every: Annotated[bool, typer.Option("--all", "-a", help="Every job active now.")] = False,
    states: States = None,
    names: Names = None,
    tags: Tags = None,
    backends: Backends = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", help="Give up after this many seconds (exit code 4).", show_default=False
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Wait until jobs are final, with a live progress bar; exit 1 if any failed."""
    filt = job_filter(ids, states, names, tags, backends)
    if every and not filt.ids:
        filt = Selection(
            states=filt.states or tuple(sorted(ACTIVE)),
            names=filt.names,
            tags=filt.tags,
            backends=filt.backends,
        )
    elif filt.empty:
        raise InvalidInput("wait: give job ids, a selection (--state, --tag, ...) or --all")
    settings = state(ctx).settings()
    if not settings.registry.exists():
        if filt.ids:
            need_registry(settings, f"no job {filt.ids[0]}")
        raise typer.Exit(report([], as_json, quiet=False))
    targets = list(filt.ids) if filt.ids and filt == Selection(ids=filt.ids) else filt
    raise typer.Exit(wait_for(settings, targets, timeout=timeout, as_json=as_json))


def wait_for(
    settings: Settings,
    targets: list[JobId] | Selection,
    *,
    timeout: float | None,
    as_json: bool = False,
    quiet: bool = False,
    log_changes: bool = False,
) -> int:
    """Follow jobs to the end; 0 if all completed, 1 if any failed or was killed (a timeout
    raises ``WaitTimeout``; a monitor that is gone and cannot be restarted,
    ``MonitorUnavailable``: see ``corral.watch``). Progress is a live bar on a terminal;
    elsewhere silent, or a line per change with ``log_changes``."""
    from corral.cli import tracking
    from corral.inputs import check_timeout

    timeout = check_timeout(timeout)  # (-1 is bad input, exit 2: not a timeout)
    final = run(tracking.wait_until_final(settings, targets, timeout, log_changes))
    return report(final, as_json, quiet)


def totals(counts: Mapping[JobState, int]) -> dict[JobState, int]:
    """Runnable units per state, in ladder order."""
    return {s: counts[s] for s in ORDER if counts.get(s)}


def unit_counts(job: JobRecord) -> dict[JobState, int]:
    """A master's subjobs per state, or a plain job as itself."""
    return dict(job.counts) if job.is_master else {job.state: 1}


def report(jobs: Iterable[JobRecord], as_json: bool, quiet: bool) -> int:
    jobs = list(jobs)
    found: dict[JobState, int] = {}
    for job in jobs:
        for s, n in unit_counts(job).items():
            found[s] = found.get(s, 0) + n
    counts = totals(found)
    bad = counts.get(JobState.FAILED, 0) + counts.get(JobState.KILLED, 0)
    if as_json:
        from corral.views import wait_view

        emit_json(wait_view(jobs, counts))
    elif not quiet:
        units = sum(counts.values())
        parts = ", ".join(f"{n} {s.value}" for s, n in counts.items())
        print(
            f"{units} job{'s' if units != 1 else ''}: {parts}" if units else "nothing to wait for"
        )
    return JOB_FAILED if bad else OK


def peek(
    ctx: typer.Context,
    job: Annotated[
        str, typer.Argument(metavar="ID", help="A job (42) or a subjob (42.3).", show_default=False)
    ],
    stderr: Annotated[
        bool, typer.Option("--stderr", "-e", help="Show stderr, not stdout.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new output until the job ends (Ctrl-C stops)."
        ),
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many last lines.")] = 20,
) -> None:
    """Show the end of a job's output (stdout, or stderr with -e); follow it live with -f."""
    from corral.cli import peeking

    (job_id,) = parse_ids([job])
    if lines < 0:
        raise InvalidInput(f"--lines must be 0 or more, got {lines}")
    settings = state(ctx).settings()
    need_registry(settings, f"no job {job_id}")
    run(peeking.peek(settings, job_id, "stderr" if stderr else "stdout", lines, follow))
    sys.stdout.flush()
