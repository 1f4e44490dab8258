"""Changing jobs: ``kill``, ``resubmit``, ``rm``, ``copy``, ``gc``.

Every verb takes ids (``42``, ``42.3``) and/or a selection (``--state running --tag x``). Writes
go through the async session, which makes sure a monitor runs to act on them.
"""

from __future__ import annotations

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
    parse_duration,
    parse_ids,
    require_target,
    run,
    session,
    state,
)
from corral.errors import InvalidInput, NotFound, StateConflict
from corral.printable import printable
from corral.selection import Selection
from corral.states import FINAL
from corral.views import copied_view, killed_view, removal_view, resubmitted_view

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.records import JobId, JobRecord


def _target(filt: Selection) -> list[JobId] | Selection:
    """Plain ids go to the session as ids (each checked to exist); anything else as a selection."""
    if filt.ids and filt == Selection(ids=filt.ids):
        return list(filt.ids)
    return filt


def _listed(ids: list[JobId], limit: int = 20) -> str:
    shown = " ".join(str(i) for i in ids[:limit])
    return shown + (f" ... (+{len(ids) - limit})" if len(ids) > limit else "")


def kill(
    ctx: typer.Context,
    ids: Ids = None,
    states: States = None,
    names: Names = None,
    tags: Tags = None,
    backends: Backends = None,
    as_json: Json = False,
) -> None:
    """Kill jobs (queued ones at once; running ones through their backend)."""
    filt = job_filter(ids, states, names, tags, backends)
    require_target(filt, "kill")
    settings = state(ctx).settings()
    need_registry(settings, "kill")

    async def act() -> list[JobId]:
        async with session(settings, "daemon") as sess:
            return await sess.kill(_target(filt))

    touched = run(act())
    if as_json:
        emit_json(killed_view(touched))
    elif touched:
        print(
            f"kill requested for {len(touched)} job{'s' * (len(touched) != 1)}: {_listed(touched)}"
        )
    else:
        print("nothing to kill: no active job among them")


def resubmit(
    ctx: typer.Context,
    ids: Ids = None,
    states: States = None,
    names: Names = None,
    tags: Tags = None,
    backends: Backends = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all", help="Also rerun completed (sub)jobs, not only failed and killed ones."
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Run failed and killed (sub)jobs again, as new attempts (all final ones with --all)."""
    filt = job_filter(ids, states, names, tags, backends)
    require_target(filt, "resubmit")
    settings = state(ctx).settings()
    need_registry(settings, "resubmit")

    async def act() -> list[JobId]:
        async with session(settings, "daemon") as sess:
            return await sess.resubmit(_target(filt), include_all=everything)

    touched = run(act())
    if as_json:
        emit_json(resubmitted_view(touched))
    elif touched:
        print(f"resubmitted {len(touched)} job{'s' * (len(touched) != 1)}: {_listed(touched)}")
    else:
        extra = "" if everything else " (--all also reruns completed ones)"
        print(f"nothing to resubmit: no failed or killed job among them{extra}")


def copy(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(metavar="ID", help="The job to copy.", show_default=False)],
    as_json: Json = False,
) -> None:
    """Submit a new job with the same spec as an existing one."""
    (job_id,) = parse_ids([job])
    settings = state(ctx).settings()
    need_registry(settings, f"no job {job_id}")

    async def act() -> JobId:
        async with session(settings, "daemon") as sess:
            return await sess.copy(job_id)

    new = run(act())
    if as_json:
        emit_json(copied_view(new, job_id))
    else:
        print(f"submitted job {new} (a copy of {job_id})")


def rm(
    ctx: typer.Context,
    ids: Ids = None,
    states: States = None,
    names: Names = None,
    tags: Tags = None,
    backends: Backends = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Kill active jobs first.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    as_json: Json = False,
) -> None:
    """Delete whole jobs: their registry rows (with subjobs and history) and their job dirs."""
    filt = job_filter(ids, states, names, tags, backends)
    require_target(filt, "rm")
    if any(i.sub is not None for i in filt.ids):
        raise InvalidInput("rm deletes whole jobs: give 42, not 42.3")
    settings = state(ctx).settings()
    need_registry(settings, "rm")
    removed = run(_remove(settings, filt, force=force, dry_run=dry_run))
    _say_removed(removed, dry_run, as_json)


def gc(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", metavar="AGE", help="Finished jobs created more than AGE ago."
        ),
    ] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    as_json: Json = False,
) -> None:
    """Delete finished jobs older than AGE (registry rows and job dirs)."""
    age = parse_duration(older_than, "--older-than")
    settings = state(ctx).settings()
    if not settings.registry.exists():
        return _say_removed([], dry_run, as_json)
    selection = Selection(states=tuple(sorted(FINAL)), older_than=age)
    removed = run(_remove(settings, selection, force=False, dry_run=dry_run))
    _say_removed(removed, dry_run, as_json)


async def _remove(
    settings: Settings, selection: Selection, *, force: bool, dry_run: bool
) -> list[JobRecord]:
    from corral.selection import Selection

    async with session(settings, "daemon") as sess:
        records = await sess.select(selection)
        if selection.ids and selection == Selection(ids=selection.ids):
            found = {r.id for r in records}
            for job_id in selection.ids:
                if job_id not in found:
                    raise NotFound(f"no job {job_id}")
        active = [r.id for r in records if not r.state.final]
        if active and not force:
            raise StateConflict(
                f"still active: {_listed(active, 10)}; kill first "
                f"(corral kill {active[0]}) or use rm --force"
            )
        if dry_run or not records:
            return records
        # (active ones are killed and kept as tombstones until the monitor sees them final)
        return await sess.remove([r.id for r in records], force=force)


def _say_removed(removed: list[JobRecord], dry_run: bool, as_json: bool) -> None:
    if as_json:
        emit_json(removal_view(removed, dry_run))
        return
    if not removed:
        print("nothing to remove")
        return
    verb = "would remove" if dry_run else "removed"
    for r in removed:
        subs = f" and {r.subjobs} subjobs" if r.subjobs else ""
        print(
            printable(
                f"{verb} job {r.id} ({r.name}, {r.state.value}): registry rows{subs} with their "
                f"history; job dir {r.job_dir or '-'}"
            )
        )
