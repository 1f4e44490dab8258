"""Input files and their place in the sandbox (pure: no I/O).

An input is ``SRC`` (copied to the sandbox under its base name) or ``SRC:DEST`` (copied to
``DEST``, a relative path inside the sandbox; the split is at the last colon, so a source whose
name holds a colon needs an explicit DEST). Two inputs that would land on the same place, or one
inside the other (``d`` and ``d/x``), are refused when the spec is validated: later steps that
gather many files rely on each input keeping its own name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath


def place(entry: str) -> tuple[str, str]:
    """``(source, dest)`` of one input entry; ``ValueError`` for a DEST outside the sandbox."""
    source, sep, dest = entry.rpartition(":")
    if not sep or not source:
        source, dest = entry, PurePosixPath(entry).name
    if not dest:
        raise ValueError(f"input {entry!r}: empty destination after ':'")
    parts = PurePosixPath(dest).parts
    if dest.startswith("/") or ".." in parts or not parts or parts == (".",):
        raise ValueError(f"input {entry!r}: the destination must be a path inside the sandbox")
    if "\0" in entry or "\n" in dest:
        raise ValueError(f"input {entry!r}: control characters in the name")
    return source, str(PurePosixPath(*[p for p in parts if p != "."]))


def check_places(entries: Iterable[str]) -> None:
    """``ValueError`` if two inputs land on the same name (or one inside the other)."""
    taken: dict[str, str] = {}
    for entry in entries:
        _, dest = place(entry)
        for other_dest, other in taken.items():
            if (
                dest == other_dest
                or other_dest.startswith(dest + "/")
                or dest.startswith(other_dest + "/")
            ):
                raise ValueError(
                    f"inputs {other!r} and {entry!r} would both land on {other_dest!r} in the "
                    "sandbox; give one a place of its own with SRC:DEST"
                )
        taken[dest] = entry
