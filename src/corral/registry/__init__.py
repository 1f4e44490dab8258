"""The durable registry of jobs, attempts and state transitions.

The names below are imported on first use, so a lean reader (``corral.registry.summary``) can be
imported without SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corral.registry.store import LeaseInfo as LeaseInfo
    from corral.registry.store import Registry as Registry
    from corral.registry.updates import Update as Update
    from corral.selection import Selection as Selection

_EXPORTS = {
    "Selection": "corral.selection",
    "LeaseInfo": "corral.registry.store",
    "Registry": "corral.registry.store",
    "Update": "corral.registry.updates",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'corral.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
