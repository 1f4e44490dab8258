"""What ``corral ls`` prints, without Typer: ``corral.cli.listing`` (the Typer verb) and
``corral.cli.fast`` (the lean entry that skips Typer) both print through here, so the two
cannot drift apart."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from corral.printable import printable
from corral.registry import summary
from corral.registry.summary import ListingReader
from corral.selection import Selection

_ANSI = {"completed": "32", "failed": "31", "killed": "35", "running": "36", "completing": "36"}
STATE_COLORS = {
    state: (f"\x1b[{code}m", "\x1b[0m") for state, code in {**_ANSI, "unknown": "33"}.items()
}
"""How a terminal shows a state in ``corral ls``."""


def listing_text(registry: Path, filt: Selection, as_json: bool) -> list[str]:
    """Everything ``corral ls`` writes on stdout, in pieces (a listing of 100,000 jobs is tens
    of MB: joining them would copy it all once more). No registry: none is made."""
    reader = summary.open_reader(registry)
    try:
        return ls_json(reader, filt) if as_json else ls_table(reader, filt)
    finally:
        if reader is not None:
            reader.close()


def write_listing(parts: list[str], filt: Selection, as_json: bool) -> None:
    """Print a listing, with a hint on a terminal's stderr when it lists no job."""
    for part in parts:
        sys.stdout.write(part)
    if not as_json and len(parts) == 1 and sys.stderr.isatty():  # the header alone
        print(
            "no jobs match" if not filt.empty else "no jobs yet: try 'corral demo'", file=sys.stderr
        )


def ls_json(reader: ListingReader | None, filt: Selection) -> list[str]:
    if reader is None:  # no registry yet: no jobs, and no monitor ever wrote health
        return ['{"schema": 1, "jobs": []}\n']
    jobs = reader.listing_json(filt, time.time())
    down = json.dumps(reader.down_backends())
    return ['{"schema": 1, "jobs": ', jobs, ', "backends_down": ' + down + "}\n"]


def ls_table(reader: ListingReader | None, filt: Selection) -> list[str]:
    if reader is None:
        return [summary.listing_header(summary.EMPTY) + "\n"]
    now = time.time()
    w = reader.widths(any(i.sub is not None for i in filt.ids))
    down = reader.down_backends()  # a few rows: "slurm (down)" in BACKEND
    if down:
        shown = (len(printable(n)) + len(summary.DOWN_MARK) for n in down)
        w = replace(w, backend=max(w.backend, *shown))
    body = reader.listing(filt, now, w, down=down)
    if body and sys.stdout.isatty() and "NO_COLOR" not in os.environ:
        body = colour_states(body, w)
    header = summary.listing_header(w) + "\n"
    return [header, body, "\n"] if body else [header]


def colour_states(body: str, w: summary.Widths) -> str:
    """The lines of a listing with each STATE in its terminal colour (``STATE_COLORS``)."""
    at, end = w.state_at, w.state_at + w.state
    lines = body.split("\n")
    for i, line in enumerate(lines):
        style = STATE_COLORS.get(line[at:end].rstrip())
        if style is not None:
            lines[i] = f"{line[:at]}{style[0]}{line[at:end]}{style[1]}{line[end:]}"
    return "\n".join(lines)
