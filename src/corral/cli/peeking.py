"""The engine of ``corral peek``: it renders ``AsyncSession.tail`` / ``follow``, chunk by chunk.

Memory stays constant (the session streams the output in chunks). On a terminal every control
character but newline and tab is escaped (``corral.printable``): a job's output cannot move the
cursor, clear the screen or retitle the window. Piped or redirected, the output is written as
the job wrote it (decoded as UTF-8; bytes that are not UTF-8 become U+FFFD).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, TextIO

from corral.cli.common import session
from corral.printable import printable

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.records import JobId

POLL = 0.2


async def peek(settings: Settings, job_id: JobId, stream: str, lines: int, follow: bool) -> None:
    out = sys.stdout
    escape = out.isatty()
    stderr = stream == "stderr"
    async with session(settings) as sess:
        record = await sess.get(job_id)
        chunks = (
            sess.follow(job_id, stderr=stderr, lines=lines, poll=POLL)
            if follow
            else sess.tail(job_id, stderr=stderr, lines=lines)
        )
        wrote = False
        async for text in chunks:
            shown = printable(text, keep_lines=True) if escape else text
            await asyncio.to_thread(_write, out, shown)
            wrote = True
        if not wrote and not follow and not record.state.final:
            print(f"(job {job_id} is {record.state.value}; no output yet)", file=sys.stderr)


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()
