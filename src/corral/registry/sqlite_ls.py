"""``SQLiteListing``: what ``corral ls`` reads from one SQLite registry file (the queries are
``corral.registry.sqlite_listing``'s; ``corral.registry.sqlite_summary.SQLiteReader`` adds the
structured reads on top). Listings come back in parts, to be written one after the other
(joining tens of MB would copy them once more).

One query per listing, on one connection: reading two halves at once in two threads was
tried and doubled the CPU time for no gain in wall time (SQLite's allocator takes one
process-wide mutex, which the two threads then fight over).
"""

from __future__ import annotations

import os

from corral.registry import halves
from corral.registry import sqlite_listing as q
from corral.registry.driver import sqlite3
from corral.registry.listing_shape import Widths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from pathlib import Path
    from typing import Self, TypeVar

    from corral.selection import Selection

    T = TypeVar("T")


# Job numbers: a registry spanning fewer is read in one process (forking costs more than it
# saves; a 100,000-job listing takes about 0.2 s to format).
SPLIT_AT = 20_000


def _between(parts: list[bytes], separator: bytes) -> list[bytes]:
    return [
        piece for i, part in enumerate(parts) for piece in ((separator, part) if i else (part,))
    ]


def ensure_schema(path: Path) -> None:
    """Migrate a registry whose tables are missing or old (imports SQLAlchemy and Alembic)."""
    from corral.registry.engine import open_engines

    writer, reader = open_engines(path)
    writer.dispose()
    reader.dispose()


class SQLiteListing:
    """What ``corral ls`` reads from one registry file (``corral.registry.summary``'s
    ``ListingReader`` without the structured reads, which ``SQLiteReader`` adds)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> Self | None:
        """A read-only connection to the registry, or None if there is none (nothing is made)."""
        return cls(path, q.connect(path)) if os.path.exists(path) else None

    def close(self) -> None:
        self._conn.close()

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a lean read; if the registry predates the current schema, migrate it and retry."""
        try:
            try:
                return query(self._conn)
            except sqlite3.OperationalError:
                ensure_schema(self.path)
                return query(self._conn)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: Exception) -> Exception:
        from corral.errors import RegistryError

        return RegistryError(f"cannot read the registry {self.path}: {exc}")

    def widths(self, subjob_ids: bool = False) -> Widths:
        return self._read(lambda c: q.widths(c, subjob_ids))

    def _in_halves(
        self, read: Callable[[sqlite3.Connection, q.Span | None], bytes], filt: Selection | None
    ) -> list[bytes]:
        """``read`` of every listed job, in parts in job order: where the jobs it may list
        span many job numbers, in two halves read at once, the second in a forked child
        (``corral.registry.halves``). Jobs named by id span only their own numbers (``ls 7 8``
        on a large registry is a few rows: a fork would cost more than it reads)."""
        low, high = self._read(q.id_range)
        if filt is not None and filt.ids:
            numbers = [i.job for i in filt.ids]
            low, high = max(low, min(numbers)), min(high, max(numbers))
        if high - low < SPLIT_AT or not halves.can_fork():
            return [self._read(lambda c: read(c, None))]
        middle = (low + high) // 2
        rest = (middle, 1 << 62)  # (open-ended: a job stored since id_range is listed too)
        self._conn.close()  # no connection crosses the fork
        child = halves.Child(lambda: read(q.connect(self.path), rest))
        self._conn = q.connect(self.path)
        first = self._read(lambda c: read(c, (low, middle)))
        second = child.result()
        if second is None:  # the child failed: read its half here, raising what it raised
            second = self._read(lambda c: read(c, rest))
        return [first, second]

    def listing_parts(
        self, filt: Selection | None, now: float, w: Widths, down: Collection[str] = ()
    ) -> list[bytes]:
        """The lines of ``corral ls`` under ``listing_header(w)``, as UTF-8, in parts to be
        joined by a newline (empty parts left out)."""

        def read(conn: sqlite3.Connection, span: q.Span | None) -> bytes:
            text, rows = q.listing(conn, filt, now, w, down, span=span)
            if text and not self._clean(text, rows):
                text, rows = q.listing(conn, filt, now, w, down, escape=True, span=span)
            return text

        return [part for part in self._in_halves(read, filt) if part]

    def _clean(self, text: bytes, rows: int) -> bool:
        try:
            return q.clean(text, rows)
        except UnicodeDecodeError as exc:  # (text that is not UTF-8, stored by another tool)
            raise self._unreadable(exc) from exc

    def listing(self, filt: Selection, now: float, w: Widths, down: Collection[str] = ()) -> str:
        """The lines of ``corral ls`` under ``listing_header(w)``, joined by newlines."""
        return b"\n".join(self.listing_parts(filt, now, w, down)).decode()

    def listing_json_parts(self, filt: Selection | None, now: float) -> list[bytes]:
        """The ``jobs`` array of ``corral ls --json``, as UTF-8, in parts to be written one
        after the other."""

        def read(conn: sqlite3.Connection, span: q.Span | None) -> bytes:
            try:
                return q.listing_json(conn, filt, now, span=span)
            except sqlite3.OperationalError as exc:  # (not a schema to migrate: see `exact`)
                if "JSON" not in str(exc):
                    raise
            return q.listing_json(conn, filt, now, exact=True, span=span)

        items = [part for part in self._in_halves(read, filt) if part]
        return [b"[", *_between(items, b",\n"), b"]"]

    def listing_json(self, filt: Selection, now: float) -> str:
        """The ``jobs`` array of ``corral ls --json`` (schema 1, docs/cli.md)."""
        return b"".join(self.listing_json_parts(filt, now)).decode()

    def down_backends(self) -> dict[str, str]:
        return self._read(q.down_backends)
