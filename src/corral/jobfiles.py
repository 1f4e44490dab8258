"""Reading and deleting job files off the event loop (``AsyncSession`` runs these in threads).

A job's output is read in chunks of at most ``CHUNK`` bytes, from an offset found by scanning
backwards (``tail_offset``): memory stays constant however long the output or its lines.
"""

from __future__ import annotations

import asyncio
import codecs
import shutil
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from corral.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from corral.records import JobRecord

CHUNK = 256 * 1024


def output_path(record: JobRecord, stream: str) -> Path:
    """Where a (sub)job's ``stream`` (``"stdout"`` or ``"stderr"``) is written."""
    if record.attempt_dir is None:
        raise NotFound(f"job {record.id} has no job dir")
    return record.attempt_dir / stream


def output_of(record: JobRecord, stderr: bool) -> Path:
    """The output ``peek``, ``tail`` and ``follow`` read: one job's, never a master's."""
    if record.is_master:
        raise InvalidInput(f"job {record.id} has subjobs; peek one of them, e.g. {record.id}.0")
    return output_path(record, "stderr" if stderr else "stdout")


def tail_offset(handle: BinaryIO, lines: int, end: int) -> int:
    """Where the last ``lines`` lines of the first ``end`` bytes start (a newline that ends the
    data ends its last line). Reads backwards, ``CHUNK`` bytes at a time."""
    if lines <= 0:
        return end
    found, pos, limit = 0, end, None
    while pos > 0:
        size = min(CHUNK, pos)
        pos -= size
        handle.seek(pos)
        block = handle.read(size)
        at = len(block)
        if limit is None:  # the last block: its final newline ends the last line
            limit = at - 1 if block.endswith(b"\n") else at
            at = limit
        while (at := block.rfind(b"\n", 0, at)) >= 0:
            found += 1
            if found == lines:
                return pos + at + 1
    return 0


class OutputReader:
    """One job output file, read forward in chunks; a file that does not exist yet reads as
    empty (the job has not started writing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._handle: BinaryIO | None = None

    def _open(self) -> BinaryIO | None:
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 -- closed by close()
            except FileNotFoundError:
                return None
        return self._handle

    def seek_tail(self, lines: int) -> int:
        """Start at the last ``lines`` lines written so far; return the size read up to."""
        handle = self._open()
        if handle is None:
            return 0
        end = handle.seek(0, 2)
        self.offset = tail_offset(handle, lines, end)
        return end

    def read(self, until: int | None = None) -> bytes:
        """The next chunk (b"" at the end of what is written, or at offset ``until``)."""
        handle = self._open()
        if handle is None:
            return b""
        size = CHUNK if until is None else min(CHUNK, until - self.offset)
        if size <= 0:
            return b""
        handle.seek(self.offset)
        data = handle.read(size)
        self.offset += len(data)
        return data

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def tail_text(path: Path, lines: int) -> AsyncGenerator[str, None]:
    """The last ``lines`` lines of ``path`` as written now, in chunks of text."""
    reader, decoder = OutputReader(path), _decoder()
    try:
        end = await asyncio.to_thread(reader.seek_tail, line_count(lines))
        while data := await asyncio.to_thread(reader.read, end):
            if text := decoder.decode(data):
                yield text
        # (the bytes of a character still being written stay out: this is a snapshot)
    finally:
        reader.close()


async def follow_text(
    path: Path,
    lines: int | None,
    final: Callable[[], Awaitable[bool]],
    check: Callable[[], Awaitable[None]],
    poll: float,
) -> AsyncGenerator[str, None]:
    """``path`` as it grows (from the start, or its last ``lines`` lines), in chunks of text,
    until ``final()`` says the writer is done; ``check()`` between polls (``MonitorWatch``)."""
    reader, decoder = OutputReader(path), _decoder()
    try:
        if lines is not None:
            await asyncio.to_thread(reader.seek_tail, line_count(lines))
        while True:
            done = await final()  # asked before reading: then everything is read
            while data := await asyncio.to_thread(reader.read):
                if text := decoder.decode(data):
                    yield text
            if done:
                if text := decoder.decode(b"", final=True):
                    yield text
                return
            await check()
            await asyncio.sleep(poll)
    finally:
        reader.close()


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def line_count(lines: object) -> int:
    if isinstance(lines, bool) or not isinstance(lines, int) or lines < 0:
        raise InvalidInput(f"lines: expected a whole number >= 0, got {lines!r}")
    return lines


def delete_dirs(paths: Sequence[Path | None]) -> None:
    for path in paths:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
