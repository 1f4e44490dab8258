"""What ``corral ls`` prints, without Typer: ``corral.cli.listing`` (the Typer verb) and
``corral.cli.fast`` (the lean entry that skips Typer) both print through here, so the two
cannot drift apart.

A listing comes from the registry as UTF-8 bytes and goes to ``sys.stdout.buffer`` as it is
(decoded only to colour it for a terminal, or for a stdout that is not UTF-8). Lean: no
dataclasses, no Selection import (None selects every top-level job).
"""

from __future__ import annotations

import os
import sys
import time

from corral.printable import printable
from corral.registry import listing_shape
from corral.registry.listing_shape import DOWN_MARK, EMPTY, Widths, listing_header

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO

    from corral.registry.sqlite_ls import SQLiteListing
    from corral.selection import Selection

_ANSI = {"completed": "32", "failed": "31", "killed": "35", "running": "36", "completing": "36"}
STATE_COLORS = {
    state: (f"\x1b[{code}m", "\x1b[0m") for state, code in {**_ANSI, "unknown": "33"}.items()
}
"""How a terminal shows a state in ``corral ls``."""


def listing_text(registry: Path, filt: Selection | None, as_json: bool) -> list[bytes]:
    """Everything ``corral ls`` writes on stdout, in pieces of UTF-8 (a listing of 100,000 jobs
    is tens of MB: joining them would copy it all once more). No registry: none is made."""
    reader = listing_shape.open_listing(registry)
    try:
        return ls_json(reader, filt) if as_json else ls_table(reader, filt)
    finally:
        if reader is not None:
            reader.close()


def write_listing(parts: list[bytes], filt: Selection | None, as_json: bool) -> None:
    """Print a listing, with a hint on a terminal's stderr when it lists no job."""
    out = sys.stdout
    binary = getattr(out, "buffer", None)
    if binary is not None and (out.encoding or "").lower().replace("-", "") == "utf8":
        out.flush()  # (anything written as text before goes first)
        if sum(len(part) for part in parts) > _BIG:
            _widen_pipe(out)
        for part in parts:
            binary.write(part)
    else:
        for part in parts:
            out.write(part.decode())
    if not as_json and len(parts) == 1 and sys.stderr.isatty():  # the header alone
        empty = filt is None or filt.empty
        print("no jobs yet: try 'corral demo'" if empty else "no jobs match", file=sys.stderr)


_BIG = 1 << 20  # bytes of listing


def _widen_pipe(out: TextIO) -> None:
    """A pipe as stdout holds 64 KiB: make it hold 1 MiB (Linux's limit for a user), so tens
    of MB go through in tens of writes, not hundreds (the reader wakes up as often)."""
    try:
        import fcntl
        import stat

        fd = out.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError, ValueError):
        pass  # (not Linux, not a pipe, or no more pipe memory for this user: as it is)


def ls_json(reader: SQLiteListing | None, filt: Selection | None) -> list[bytes]:
    if reader is None:  # no registry yet: no jobs, and no monitor ever wrote health
        return [b'{"schema": 1, "jobs": []}\n']
    jobs = reader.listing_json_parts(filt, time.time())
    down = reader.down_backends()
    if down:
        import json

        tail = ', "backends_down": ' + json.dumps(down) + "}\n"
    else:
        tail = ', "backends_down": {}}\n'
    return [b'{"schema": 1, "jobs": ', *jobs, tail.encode()]


def ls_table(reader: SQLiteListing | None, filt: Selection | None) -> list[bytes]:
    if reader is None:
        return [(listing_header(EMPTY) + "\n").encode()]
    now = time.time()
    subjobs = filt is not None and any(i.sub is not None for i in filt.ids)
    w = reader.widths(subjobs)
    down = reader.down_backends()  # a few rows: "slurm (down)" in BACKEND
    if down:
        shown = (len(printable(n)) + len(DOWN_MARK) for n in down)
        w = w.replace(backend=max(w.backend, *shown))
    body = reader.listing_parts(filt, now, w, down=down)
    if body and sys.stdout.isatty() and "NO_COLOR" not in os.environ:
        body = [colour_states(b"\n".join(body).decode(), w).encode()]
    header = (listing_header(w) + "\n").encode()
    return [header, *(line for part in body for line in (part, b"\n"))]


def colour_states(body: str, w: Widths) -> str:
    """The lines of a listing with each STATE in its terminal colour (``STATE_COLORS``)."""
    at, end = w.state_at, w.state_at + w.state
    lines = body.split("\n")
    for i, line in enumerate(lines):
        style = STATE_COLORS.get(line[at:end].rstrip())
        if style is not None:
            lines[i] = f"{line[:at]}{style[0]}{line[at:end]}{style[1]}{line[end:]}"
    return "\n".join(lines)
