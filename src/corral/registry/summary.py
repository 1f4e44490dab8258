"""Lean, read-only listings (``corral ls``, ``monitor --status``, ``show``'s health): the reader
side of the registry seam, without SQLAlchemy.

``RegistryStore.select`` builds full ``JobRecord``s and parses every stored spec: right for a
few jobs, far too slow for 100,000. A ``ListingReader`` reads only what a listing shows and
returns it formatted, so that the database does the per-row work (on SQLite, ``printf`` and
``json_object`` run in C; formatting 100,000 rows in Python takes longer than the query).
``open_reader`` picks the implementation by the registry's location: today the SQLite one in
``corral.registry.sqlite_summary``; a PostgreSQL registry adds one module beside it.

What a reader guarantees: it never creates a registry (``open_reader`` is None when there is
none), it migrates one that is older than the code before it reads (or raises
``RegistryError``), and every line of ``listing`` is one line of printable text: names, tags and
backends that hold control characters (rows stored before entry checks refused them) are shown
through ``corral.printable.printable``, so a stored name cannot forge rows or clear a screen.
Presentation (a terminal's colours) is the caller's: ``Widths.state_at`` says where a line's
STATE column starts. What ``corral ls`` itself needs is lean (``corral.registry.listing_shape``
and, on SQLite, ``corral.registry.sqlite_listing``): a cold ``ls`` imports neither this module
nor dataclasses.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from corral.records import BackendHealth, JobId
from corral.registry.listing_shape import DOWN_MARK as DOWN_MARK
from corral.registry.listing_shape import EMPTY as EMPTY
from corral.registry.listing_shape import NAME_CAP as NAME_CAP
from corral.registry.listing_shape import Widths as Widths
from corral.registry.listing_shape import listing_header as listing_header
from corral.registry.status import LeaseInfo as LeaseInfo
from corral.registry.status import decode_calls as decode_calls
from corral.registry.status import from_latest_monitor as from_latest_monitor
from corral.registry.status import health_of as health_of
from corral.selection import Selection
from corral.states import FINAL, JobState


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One job of a listing. ``counts`` holds subjob states (a plain job counts as itself)."""

    id: JobId
    name: str
    state: JobState
    backend: str
    subjobs: int
    counts: dict[JobState, int]

    @property
    def units(self) -> int:
        """Runnable units: the subjobs of a master, or the job itself."""
        return self.subjobs or 1

    @property
    def done(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FINAL)


class ListingReader(Protocol):
    """The lean read side of one registry (see the module docstring)."""

    def close(self) -> None: ...

    def widths(self, subjob_ids: bool = False) -> Widths:
        """Column widths over the whole registry (cheap: from indexes, not a scan)."""
        ...

    def listing(self, filt: Selection, now: float, w: Widths, down: Collection[str] = ()) -> str:
        """The lines of ``corral ls`` under ``listing_header(w)``, joined by newlines."""
        ...

    def listing_json(self, filt: Selection, now: float) -> str:
        """The ``jobs`` array of ``corral ls --json`` (schema 1, docs/cli.md)."""
        ...

    def summaries(self, filt: Selection) -> list[JobSummary]:
        """The matching jobs as structured summaries."""
        ...

    def count_active(self) -> int: ...
    def lease_info(self) -> LeaseInfo | None: ...
    def backend_health(self) -> list[BackendHealth]: ...
    def down_backends(self) -> dict[str, str]:
        """``{name: reason}`` of the backends the latest monitor last saw down."""
        ...


def open_reader(location: Path) -> ListingReader | None:
    """The reader of the registry at ``location``, or None if there is none yet."""
    from corral.registry.sqlite_summary import SQLiteReader

    return SQLiteReader.open(location)
