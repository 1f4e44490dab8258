"""What every verb shares: the settings built at the edge, id/selection options, JSON output.

Heavy modules (the async session, SQLAlchemy, Rich) are imported inside the functions that need
them: a cold ``corral ls`` on 100,000 jobs has 0.5 s in all, and those imports alone take half.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from corral.cli.filters import job_filter as job_filter
from corral.cli.filters import parse_duration as parse_duration
from corral.cli.filters import parse_ids as parse_ids
from corral.cli.filters import parse_states as parse_states
from corral.errors import InvalidInput, NotFound
from corral.states import JobState

if TYPE_CHECKING:
    from rich.console import Console

    from corral.config import Settings
    from corral.selection import Selection
    from corral.session import AsyncSession, MonitorMode

T = TypeVar("T")
SCHEMA = 1


@dataclass
class CliState:
    """Per-invocation state: global flags, and the settings, loaded on first use."""

    overrides: dict[str, Any] = field(default_factory=dict)
    debug: bool = False
    tail: list[str] | None = None  # the command after `--`, for `corral submit`
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            from corral.config import load_settings

            self._settings = load_settings(self.overrides, origin="flag --set/--home")
        return self._settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


# ---------------------------------------------------------------- options shared by verbs
Ids = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="IDS",
        help="Job ids: 42 (a job or a whole sweep) or 42.3 (one subjob).",
        show_default=False,
    ),
]
States = Annotated[
    list[str] | None,
    typer.Option(
        "--state",
        "-s",
        metavar="STATE",
        help="Only jobs in this state (repeat, or comma-separate; also 'active', 'final').",
        show_default=False,
    ),
]
Tags = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        "-t",
        metavar="TAG",
        help="Only jobs with this tag (repeatable: any of them).",
        show_default=False,
    ),
]
Names = Annotated[
    list[str] | None,
    typer.Option(
        "--name",
        "-n",
        metavar="GLOB",
        help="Only jobs whose name matches this glob (repeatable).",
        show_default=False,
    ),
]
Backends = Annotated[
    list[str] | None,
    typer.Option(
        "--backend",
        "-b",
        metavar="NAME",
        help="Only jobs on this backend (repeatable).",
        show_default=False,
    ),
]
Json = Annotated[
    bool, typer.Option("--json", help="Machine-readable output (schema 1, see docs/cli.md).")
]


def require_target(filt: Selection, verb: str) -> None:
    if filt.empty:
        raise InvalidInput(
            f"{verb}: give job ids or a selection (--state, --tag, --name, --backend)"
        )


# ---------------------------------------------------------------- output
def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"schema": SCHEMA, **payload}, default=str) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 160  # piped or logged: don't cut paths to 80 columns
    return out


def when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{seconds:.0f}s ago"


STATE_STYLE = {
    JobState.COMPLETED: "green",
    JobState.FAILED: "red",
    JobState.KILLED: "magenta",
    JobState.RUNNING: "cyan",
    JobState.COMPLETING: "cyan",
    JobState.UNKNOWN: "yellow",
}


def markup(text: str) -> str:
    """Text from a job, a user or a backend as Rich markup: its brackets escaped for Rich and
    its control characters for the terminal (``corral.printable``)."""
    from rich.markup import escape

    from corral.printable import printable

    return escape(printable(text))


def write_text(text: str) -> None:
    """Multi-line text from a job or a user (a script, an output) on stdout: on a terminal with
    control characters but newline and tab escaped, piped as it is."""
    from corral.printable import printable

    sys.stdout.write(printable(text, keep_lines=True) if sys.stdout.isatty() else text)


def styled(state: JobState) -> str:
    style = STATE_STYLE.get(state)
    return f"[{style}]{state.value}[/{style}]" if style else state.value


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


def need_registry(settings: Settings, what: str) -> None:
    """Reading verbs never create a registry: with none yet, there is no such job."""
    if not settings.registry.exists():
        raise NotFound(f"{what}: there are no jobs yet (no registry at {settings.registry})")


def session(
    settings: Settings, monitor: MonitorMode = "off", *, create: bool = True
) -> AsyncSession:
    """The async session a verb runs in (``create=False``: a read, which never creates a
    registry; see ``AsyncSession``)."""
    from corral.session import AsyncSession

    return AsyncSession(settings, monitor=monitor, create=create)
