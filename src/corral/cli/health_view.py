"""How the backends and the last monitor are doing, as the registry says: shared by
``monitor --status``, ``plugins``, ``show``, ``ls`` and ``submit``.

Health rows are written by the monitor. A row is *stale* when no monitor runs now, or when it
was written before the current monitor took the lease: a dead monitor's "up" is history, not
news. They are read through the session (``AsyncSession.monitor_status``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corral.cli.common import ago, markup, when
from corral.errors import RegistryError
from corral.printable import printable
from corral.registry import summary
from corral.views import backend_health_view

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.records import BackendHealth
    from corral.registry.status import MonitorStatus
    from corral.registry.summary import LeaseInfo


@dataclass(frozen=True, slots=True)
class Facts:
    """The lease, the health rows and who holds the monitor lock, read together."""

    lease: LeaseInfo | None = None
    backends: list[BackendHealth] = field(default_factory=list)
    running: int | None = None
    """The pid holding the monitor lock, or None when no monitor runs."""

    def health(self, name: str) -> BackendHealth | None:
        return next((h for h in self.backends if h.name == name), None)

    def stale(self, health: BackendHealth) -> bool:
        if self.running is None or self.lease is None or self.lease.released:
            return True
        return not summary.from_latest_monitor(health, self.lease)

    def health_json(self, name: str) -> dict[str, Any] | None:
        found = self.health(name)
        return None if found is None else backend_health_view(found, self.stale(found))

    def latest_down(self, name: str) -> BackendHealth | None:
        """The backend's row if the latest monitor (running or not) last saw it down."""
        found = self.health(name)
        if found is None or not found.down or not summary.from_latest_monitor(found, self.lease):
            return None
        return found


def read(settings: Settings) -> Facts:
    """Facts of the registry, as the session's ``monitor_status`` reads them (empty ones if
    there is no registry yet, which is not created, or it cannot be read: these are hints
    beside a command's real work, never a reason for it to fail)."""
    from corral.cli.common import run, session

    async def status() -> MonitorStatus:
        async with session(settings, create=False) as sess:
            return await sess.monitor_status()

    try:
        return facts_of(run(status()))
    except RegistryError:
        return Facts()


def facts_of(status: MonitorStatus | None) -> Facts:
    """The facts in a ``monitor_status`` a verb read in its own session (None: it could not)."""
    return Facts() if status is None else Facts(status.lease, status.backends, status.pid)


# ---------------------------------------------------------------- text
def death_note(facts: Facts) -> str | None:
    """How the last monitor ended, if no monitor runs and it did not end cleanly."""
    lease = facts.lease
    if facts.running is not None or lease is None:
        return None
    if lease.error_is_latest:
        pid = lease.last_error_pid or lease.pid
        return (
            f"the last monitor (pid {pid}) died at {when(lease.last_error_at)}: "
            f"{printable(lease.last_error or '')}"
        )
    if not lease.released and lease.pid is not None:
        return (
            f"the last monitor (pid {lease.pid}) ended without releasing its lease (killed?); "
            f"its last heartbeat was at {when(lease.heartbeat)}"
        )
    return None


def calls_text(calls: Mapping[str, int]) -> str:
    return ", ".join(f"{cmd} {n}" for cmd, n in sorted(calls.items())) or "-"


def errors_text(h: BackendHealth) -> str:
    if h.consecutive_errors:
        return f"{h.errors} ({h.consecutive_errors} in a row)"
    return str(h.errors)


def state_text(h: BackendHealth, stale: bool) -> str:
    """The state as Rich markup: red when down, dim and marked when stale."""
    if stale:
        return f"[dim]{h.state} (stale)[/dim]"
    style = {"up": "green", "down": "red", "starting": "yellow"}.get(h.state)
    return f"[{style}]{h.state}[/{style}]" if style else h.state


def summary_text(h: BackendHealth, stale: bool) -> str:
    """One plain line: ``down: sbatch not found; last poll never, every 30.0 s, ...``."""
    state = f"{h.state} (stale, written {ago(h.updated_at)})" if stale else h.state
    head = f"{state}: {printable(h.reason)}" if h.reason else state
    return (
        f"{head}; last poll {ago(h.last_poll)}, every {h.interval:.1f} s, {h.active} active, "
        f"{errors_text(h)} errors, calls {calls_text(h.calls)}"
    )


def print_table(facts: Facts) -> None:
    """A line per backend: name, kind, state, last poll, interval, active, errors, calls, reason."""
    from rich.table import Table

    from corral.cli.common import console

    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ("backend", "kind", "state", "last poll", "interval", "active", "errors")
    for column in (*columns, "calls (last cycle)", "reason"):
        table.add_column(column)
    for h in facts.backends:
        stale = facts.stale(h)
        table.add_row(
            markup(h.name),
            markup(h.kind),
            state_text(h, stale),
            ago(h.last_poll),
            f"{h.interval:.1f} s",
            str(h.active),
            errors_text(h),
            markup(calls_text(h.calls)),
            markup(h.reason) or "-",
        )
    console().print(table)
