"""``SQLiteListing``: what ``corral ls`` reads from one SQLite registry file (the queries are
``corral.registry.sqlite_listing``'s; ``corral.registry.sqlite_summary.SQLiteReader`` adds the
structured reads on top).

A long listing is read in two halves of the job ids at once, each by its own connection, the
second in a thread (SQLite formats rows with the GIL released, so two cores format twice as
many): on 100,000 jobs the query is most of a cold ``ls``. The halves are two statements, as
the widths and the rows already were: a commit between them can show in one half only, never
as a job listed twice or lost. The parts are returned in order, to be written one after the
other (joining tens of MB would copy them once more).
"""

from __future__ import annotations

import os
import sqlite3

from corral.registry import sqlite_listing as q
from corral.registry.listing_shape import Widths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from pathlib import Path
    from typing import Self, TypeVar

    from corral.selection import Selection

    T = TypeVar("T")

SPLIT_FROM = 20_000
"""Top-level ids from which a listing is read in two halves (below, one query is quicker)."""


def ensure_schema(path: Path) -> None:
    """Migrate a registry whose tables are missing or old (imports SQLAlchemy and Alembic)."""
    from corral.registry.engine import open_engines

    writer, reader = open_engines(path)
    writer.dispose()
    reader.dispose()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not Linux)
        return os.cpu_count() or 1


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

    def _spans(self, filt: Selection | None) -> list[q.Span]:
        """The parts to read: two halves of the top-level ids of a long listing, else one."""
        if filt is not None and filt.ids:
            return [None]
        low, high = self._conn.execute(
            "SELECT min(job_id), max(job_id) FROM jobs WHERE sub = -1"
        ).fetchone()
        if low is None or high - low < SPLIT_FROM or _cores() < 2:
            return [None]
        middle = (low + high) // 2
        return [(low - 1, middle), (middle, high)]

    def _in_parts(
        self, filt: Selection | None, read: Callable[[sqlite3.Connection, q.Span], T]
    ) -> list[T]:
        """``read`` over each span of ``filt``, the later ones in threads."""

        def parts(conn: sqlite3.Connection) -> list[T]:
            spans = self._spans(filt)
            if len(spans) == 1:
                return [read(conn, spans[0])]
            import threading

            found: dict[int, T] = {}
            failed: list[BaseException] = []
            second = q.connect(self.path)

            def other() -> None:
                try:
                    found[1] = read(second, spans[1])
                except BaseException as exc:  # (raised again below, in the caller's thread)
                    failed.append(exc)

            worker = threading.Thread(target=other, name="corral-ls")
            worker.start()
            try:
                found[0] = read(conn, spans[0])
            finally:
                worker.join()
                second.close()
            if failed:
                raise failed[0]
            return [found[0], found[1]]

        return self._read(parts)

    def widths(self, subjob_ids: bool = False) -> Widths:
        return self._read(lambda c: q.widths(c, subjob_ids))

    def listing_parts(
        self, filt: Selection | None, now: float, w: Widths, down: Collection[str] = ()
    ) -> list[bytes]:
        """The lines of ``corral ls`` under ``listing_header(w)``, as UTF-8, in parts to be
        joined by a newline (empty parts left out)."""

        def read(conn: sqlite3.Connection, span: q.Span) -> bytes:
            text, rows = q.listing(conn, filt, now, w, down, span=span)
            if text and not self._clean(text, rows):
                text, rows = q.listing(conn, filt, now, w, down, escape=True, span=span)
            return text

        return [part for part in self._in_parts(filt, read) if part]

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

        def read(conn: sqlite3.Connection, span: q.Span) -> bytes:
            try:
                return q.listing_json(conn, filt, now, span=span)
            except sqlite3.OperationalError as exc:  # (not a schema to migrate: see `exact`)
                if "JSON" not in str(exc):
                    raise
            return q.listing_json(conn, filt, now, exact=True, span=span)

        parts = [b"["]
        for part in self._in_parts(filt, read):
            if part:
                parts += [b",\n", part] if len(parts) > 1 else [part]
        return [*parts, b"]"]

    def listing_json(self, filt: Selection, now: float) -> str:
        """The ``jobs`` array of ``corral ls --json`` (schema 1, docs/cli.md)."""
        return b"".join(self.listing_json_parts(filt, now)).decode()

    def down_backends(self) -> dict[str, str]:
        return self._read(q.down_backends)
