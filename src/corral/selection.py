"""Which jobs a verb or a listing applies to: plain data, no SQL (the lean ``ls`` path and the
SQLAlchemy path both read it; ``registry.rows.where`` turns it into a condition)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from corral import inputs
from corral.errors import InvalidInput
from corral.records import JobId
from corral.states import JobState


def parse_states(values: Iterable[JobState | str]) -> tuple[JobState, ...]:
    """States by value (``"failed"``); ``InvalidInput`` naming the known ones otherwise."""
    many = isinstance(values, list | tuple | set | frozenset | Iterator)
    items: Iterable[object] = values if many else (values,)  # (one state; None is refused)
    found = []
    for value in items:
        try:
            found.append(JobState(cast(str, value)))
        except (ValueError, TypeError):
            known = ", ".join(s.value for s in JobState)
            raise InvalidInput(f"not a job state: {inputs.shown(value)} (known: {known})") from None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Selection:
    """Empty fields match everything; fields combine with AND. Checked when built: a bad
    state, id or age is ``InvalidInput`` (from the API as from the CLI)."""

    ids: tuple[JobId, ...] = ()
    states: tuple[JobState, ...] = ()
    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    older_than: float | None = None  # seconds of age
    newer_than: float | None = None

    def __post_init__(self) -> None:
        for field in ("ids", "states", "names", "tags", "backends"):
            value = getattr(self, field)
            if isinstance(value, list):  # (a list is what a script most often passes)
                object.__setattr__(self, field, tuple(value))
            elif not isinstance(value, tuple):
                raise InvalidInput(
                    f"selection {field}: expected a tuple, got {inputs.shown(value)}"
                )
        object.__setattr__(self, "ids", tuple(JobId.of(i) for i in self.ids))
        object.__setattr__(self, "states", parse_states(self.states))  # "failed" is fine too
        for field in ("names", "tags", "backends"):
            for value in getattr(self, field):
                if not isinstance(value, str) or inputs.text_problem(value):
                    raise InvalidInput(f"selection {field}: not text: {inputs.shown(value)}")
        for field in ("older_than", "newer_than"):
            age = getattr(self, field)
            if age is None:
                continue
            if isinstance(age, bool) or not isinstance(age, int | float):
                raise InvalidInput(f"selection {field}: expected seconds, got {inputs.shown(age)}")
            if not math.isfinite(age) or not 0 <= age <= 1e12:
                raise InvalidInput(f"selection {field}: expected seconds >= 0, got {age!r}")

    @property
    def empty(self) -> bool:
        return not (self.ids or self.states or self.names or self.tags or self.backends) and (
            self.older_than is None and self.newer_than is None
        )
