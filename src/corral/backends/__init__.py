"""Backends, found by name through the ``corral.backends`` entry-point group (built-ins too).

Discovery is lazy and cached; a plugin that fails to load is remembered with its error so
``corral plugins`` (and error messages) can say why.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from corral.errors import BackendUnavailable

GROUP = "corral.backends"


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


@cache
def load(kind: str) -> type[Any]:
    """The backend class registered as ``kind``."""
    points = _entry_points()
    if kind not in points:
        raise BackendUnavailable(
            f"unknown backend {kind!r} (available: {', '.join(sorted(points)) or 'none'})"
        )
    try:
        cls: type[Any] = points[kind].load()
    except Exception as exc:  # a broken plugin must not take corral down with it
        raise BackendUnavailable(f"backend {kind!r} failed to load: {exc}") from exc
    return cls
