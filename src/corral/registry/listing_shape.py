"""The shape of a ``corral ls`` table: column widths and the header line, for every registry
dialect (``corral.registry.summary`` re-exports them).

Lean on purpose: a cold ``corral ls`` imports this, so it imports nothing (no dataclasses, no
typing): ``Widths`` is a small slotted class.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from corral.registry.sqlite_ls import SQLiteListing

NAME_CAP = 40
"""Longer names are cut to this width (one long name cannot widen every line)."""

DOWN_MARK = " (down)"
"""What ``corral ls`` appends to a backend the monitor sees down."""


class Widths:
    """Column widths of a listing (immutable; ``replace`` makes a changed copy)."""

    _FIELDS = ("id", "name", "state", "backend", "count", "cut_names")
    __slots__ = _FIELDS

    id: int
    name: int
    state: int
    backend: int
    count: int  # digits of the largest subjob count
    cut_names: bool  # some name is longer than ``name``

    def __init__(
        self, id: int, name: int, state: int, backend: int, count: int, cut_names: bool = False
    ) -> None:
        values = (id, name, state, backend, count, cut_names)
        for key, value in zip(self._FIELDS, values, strict=True):
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"Widths is immutable (tried to set {key})")

    def _values(self) -> tuple[int, int, int, int, int, bool]:
        return (self.id, self.name, self.state, self.backend, self.count, self.cut_names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Widths) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        pairs = (f"{k}={v!r}" for k, v in zip(self._FIELDS, self._values(), strict=True))
        return f"Widths({', '.join(pairs)})"

    def replace(self, *, backend: int) -> Widths:
        """A copy with another BACKEND width (a backend shown as ``slurm (down)``)."""
        return Widths(self.id, self.name, self.state, backend, self.count, self.cut_names)

    @property
    def state_at(self) -> int:
        """Where the STATE column starts in a line of a listing (in characters)."""
        return self.id + 2 + self.name + 2


EMPTY = Widths(2, 4, 10, 7, 4)
"""The widths of a listing of no jobs."""


def listing_header(w: Widths) -> str:
    cw = w.count
    return (
        f"{'ID':<{w.id}}  {'NAME':<{w.name}}  {'STATE':<{w.state}}  {'DONE':^{2 * cw + 1}}  "
        f"{'FAIL':>{cw}}  {'RUN':>{cw}}  {'WAIT':>{cw}}  {'AGE':>5}  {'BACKEND':<{w.backend}}  "
        "TAGS"
    )


def open_listing(location: Path) -> SQLiteListing | None:
    """What ``corral ls`` reads from the registry at ``location``, or None if there is none yet
    (the dialect's module is picked here: today SQLite's)."""
    from corral.registry.sqlite_ls import SQLiteListing

    return SQLiteListing.open(location)
