"""The job selection the shared options name (ids, --state, --name, --tag, --backend, ages),
parsed and validated without Typer: ``corral.cli.fast`` uses it before Typer is imported."""

from __future__ import annotations

import re

from corral.errors import InvalidInput
from corral.records import JobId
from corral.selection import Selection
from corral.states import ACTIVE, FINAL, JobState


def parse_ids(values: list[str] | None) -> tuple[JobId, ...]:
    return tuple(JobId.parse(v) for v in values or ())


def parse_states(values: list[str] | None) -> tuple[JobState, ...]:
    found: list[JobState] = []
    known: dict[str, tuple[JobState, ...]] = {s.value: (s,) for s in JobState}
    known.update(active=tuple(sorted(ACTIVE)), final=tuple(sorted(FINAL)))
    for value in values or ():
        for word in filter(None, (w.strip().lower() for w in value.split(","))):
            if word not in known:
                raise InvalidInput(f"unknown state {word!r} (states: {', '.join(known)})")
            found += [s for s in known[word] if s not in found]
    return tuple(found)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, what: str) -> float:
    """'90', '90s', '30m', '2h', '7d', '1w' -> seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise InvalidInput(f"{what}: not a duration like 30s, 10m, 2h or 7d: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def job_filter(
    ids: list[str] | None = None,
    states: list[str] | None = None,
    names: list[str] | None = None,
    tags: list[str] | None = None,
    backends: list[str] | None = None,
    older_than: str | None = None,
    newer_than: str | None = None,
) -> Selection:
    """The filter named by the shared options (validated: bad input raises ``InvalidInput``)."""
    return Selection(
        ids=parse_ids(ids),
        states=parse_states(states),
        names=tuple(names or ()),
        tags=tuple(tags or ()),
        backends=tuple(backends or ()),
        older_than=None if older_than is None else parse_duration(older_than, "--older-than"),
        newer_than=None if newer_than is None else parse_duration(newer_than, "--newer-than"),
    )
