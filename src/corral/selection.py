"""Which jobs a verb or a listing applies to: plain data, no SQL (the lean ``ls`` path and the
SQLAlchemy path both read it; ``registry.rows.where`` turns it into a condition)."""

from __future__ import annotations

from dataclasses import dataclass

from corral.records import JobId
from corral.states import JobState


@dataclass(frozen=True, slots=True)
class Selection:
    """Empty fields match everything; fields combine with AND."""

    ids: tuple[JobId, ...] = ()
    states: tuple[JobState, ...] = ()
    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    older_than: float | None = None  # seconds of age
    newer_than: float | None = None

    @property
    def empty(self) -> bool:
        return not (self.ids or self.states or self.names or self.tags or self.backends) and (
            self.older_than is None and self.newer_than is None
        )
