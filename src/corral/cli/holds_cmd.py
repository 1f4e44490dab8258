"""``corral hold`` and ``corral release``: the same targets as ``kill`` (ids, selections, a
sweep's subjobs). Exit 0 when every job was acted on; exit 2 when any was not (a running job
cannot be held), after saying which and why."""

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
    require_target,
    run,
    session,
    state,
)
from corral.cli.control import _listed, _target
from corral.printable import printable

if TYPE_CHECKING:
    from corral.holds import HoldResult

Reason = Annotated[
    str, typer.Option("--reason", "-r", help="Why (shown in the job's reason and by HTCondor).")
]


def hold(
    ctx: typer.Context,
    ids: Ids = None,
    states: States = None,
    names: Names = None,
    tags: Tags = None,
    backends: Backends = None,
    reason: Reason = "held by the user",
    as_json: Json = False,
) -> None:
    """Hold queued jobs (they stay submitted, "held: ..."); running jobs cannot be held."""
    _change(ctx, "hold", job_filter(ids, states, names, tags, backends), reason, as_json)


def release(
    ctx: typer.Context,
    ids: Ids = None,
    states: States = None,
    names: Names = None,
    tags: Tags = None,
    backends: Backends = None,
    as_json: Json = False,
) -> None:
    """Release held jobs."""
    _change(ctx, "release", job_filter(ids, states, names, tags, backends), None, as_json)


def _change(ctx: typer.Context, verb: str, filt: object, reason: str | None, as_json: bool) -> None:
    from corral.selection import Selection

    assert isinstance(filt, Selection)
    require_target(filt, verb)
    settings = state(ctx).settings()
    need_registry(settings, verb)

    async def act() -> HoldResult:
        async with session(settings, "off") as sess:
            if reason is None:
                return await sess.release(_target(filt))
            return await sess.hold(_target(filt), reason=reason)

    result = run(act())
    done = "held" if verb == "hold" else "released"
    if as_json:
        from corral.views import hold_view

        emit_json(hold_view(done, result))
    else:
        if result.done:
            n = len(result.done)
            print(f"{done} {n} job{'s' * (n != 1)}: {_listed(result.done)}")
        for job_id, why in sorted(result.refused.items()):
            print(f"not {done}: {job_id}: {printable(why)}")
        if not result.done and not result.refused:
            print(f"nothing to {verb}: no runnable job among them")
    if result.refused:
        raise typer.Exit(2)
