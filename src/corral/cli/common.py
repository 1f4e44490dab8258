"""What every verb shares: the settings built at the edge, id/selection options, JSON output.

Heavy modules (the async session, SQLAlchemy, Rich) are imported inside the functions that need
them: a cold ``corral ls`` on 100,000 jobs has 0.5 s in all, and those imports alone take half.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from corral.errors import InvalidInput, NotFound
from corral.records import JobId
from corral.selection import Selection
from corral.states import ACTIVE, FINAL, JobState

if TYPE_CHECKING:
    from rich.console import Console

    from corral.config import Settings
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


def parse_ids(values: list[str] | None) -> tuple[JobId, ...]:
    return tuple(JobId.parse(v) for v in values or ())


def parse_states(values: list[str] | None) -> tuple[JobState, ...]:
    found: list[JobState] = []
    known: dict[str, tuple[JobState, ...]] = {s.value: (s,) for s in JobState}
    known.update(active=tuple(sorted(ACTIVE)), final=tuple(sorted(FINAL)))
    for value in values or ():
        for word in filter(None, (w.strip().lower() for w in value.split(","))):
            if word not in known:
                raise InvalidInput(f"unknown state {word!r} (states: {', '.join(known)})")
            found += [s for s in known[word] if s not in found]
    return tuple(found)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, what: str) -> float:
    """'90', '90s', '30m', '2h', '7d', '1w' -> seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise InvalidInput(f"{what}: not a duration like 30s, 10m, 2h or 7d: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def job_filter(
    ids: list[str] | None = None,
    states: list[str] | None = None,
    names: list[str] | None = None,
    tags: list[str] | None = None,
    backends: list[str] | None = None,
    older_than: str | None = None,
    newer_than: str | None = None,
) -> Selection:
    """The filter named by the shared options (validated: bad input raises ``InvalidInput``)."""
    return Selection(
        ids=parse_ids(ids),
        states=parse_states(states),
        names=tuple(names or ()),
        tags=tuple(tags or ()),
        backends=tuple(backends or ()),
        older_than=None if older_than is None else parse_duration(older_than, "--older-than"),
        newer_than=None if newer_than is None else parse_duration(newer_than, "--newer-than"),
    )


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


def session(settings: Settings, monitor: MonitorMode = "off") -> AsyncSession:
    from corral.session import AsyncSession

    return AsyncSession(settings, monitor=monitor)
