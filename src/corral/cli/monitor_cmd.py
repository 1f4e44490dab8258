"""``corral monitor``: the foreground monitor (live view), ``--once``, ``--status``, ``--stop``.

One monitor drives a registry at a time (an ``flock`` plus a fenced lease): if another holds it,
the foreground monitor says which process and exits with code 3. When a foreground monitor
stops with jobs still active, a background daemon takes them over (unless autostart is off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from corral import views
from corral.cli.common import Json, ago, emit_json, run, session, state, when
from corral.errors import InvalidInput
from corral.registry.status import MonitorStatus

if TYPE_CHECKING:
    from corral.config import Settings


def monitor(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle, then exit.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show which monitor runs.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running monitor.")] = False,
    as_json: Json = False,
) -> None:
    """Run the monitor in the foreground with a live view (one per registry)."""
    if once + status + stop > 1:
        raise InvalidInput("give at most one of --once, --status, --stop")
    settings = state(ctx).settings()
    if status:
        _status(settings, as_json)
    elif stop:
        _stop(settings, as_json)
    else:
        from corral.cli.monitor_view import foreground

        shown = run(foreground(settings, once))
        if as_json:
            emit_json(shown)


# ---------------------------------------------------------------- --status / --stop
def _status(settings: Settings, as_json: bool) -> None:
    from corral.cli import health_view

    st = run(_monitor_status(settings))
    pid, lease, active, backends = st.pid, st.lease, st.active, st.backends
    facts = health_view.Facts(lease, backends, pid)
    if as_json:
        emit_json(views.monitor_status_view(st, facts.stale, settings))
        return
    if pid is None:
        print("no monitor is running" + (f" ({active} active jobs wait for one)" if active else ""))
        note = health_view.death_note(facts)
        if note is not None:
            print(f"  {note}")
    else:
        print(f"monitor running: pid {pid}")
    if lease is not None and pid is not None:
        print(f"  lease     epoch {lease.epoch}, host {lease.host}, corral {lease.version}")
        print(f"  since     {when(lease.acquired_at)}; heartbeat {ago(lease.heartbeat)}")
    print(f"  active    {active} jobs")
    print(f"  log       {settings.log_path}")
    idle = f"exits after {settings.idle_exit:g} s idle" if settings.idle_exit else "never idles out"
    print(f"  daemon    autostart {'on' if settings.autostart else 'off'}; {idle}")
    if backends:
        where = "" if pid is not None else " (as the last monitor left them)"
        print(f"backends{where}:", flush=True)
        health_view.print_table(facts)


async def _monitor_status(settings: Settings) -> MonitorStatus:
    async with session(settings, create=False) as sess:  # (a read must not create a registry)
        return await sess.monitor_status()


def _stop(settings: Settings, as_json: bool) -> None:
    async def stop() -> tuple[int | None, int]:
        async with session(settings, create=False) as sess:
            pid = await sess.stop_monitor()
            return pid, (await sess.monitor_status()).active if pid is not None else 0

    pid, active = run(stop())
    if as_json:
        emit_json(views.stopped_view(pid))
    elif pid is None:
        print("no monitor is running")
    else:
        print(f"stopped the monitor (pid {pid})")
        if active:
            print(
                f"{active} active jobs wait for the next monitor (a submit, corral wait or "
                "corral monitor starts one)"
            )
