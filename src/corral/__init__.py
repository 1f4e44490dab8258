"""corral: define a job once, run it anywhere, and let one asyncio monitor watch thousands.

Importing corral does no work: settings, the registry and the monitor start with a session, and
the names below are imported on first use (a cold ``corral ls`` must not pay for SQLAlchemy and
asyncio, most of its time budget).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from corral.api import Session as Session
    from corral.config import Settings as Settings
    from corral.config import load_settings as load_settings
    from corral.errors import CorralError as CorralError
    from corral.records import JobId as JobId
    from corral.records import JobRecord as JobRecord
    from corral.registry import Selection as Selection
    from corral.session import AsyncSession as AsyncSession
    from corral.spec import JobSpec as JobSpec
    from corral.states import JobState as JobState

_EXPORTS = {
    "Session": "corral.api",
    "Settings": "corral.config",
    "load_settings": "corral.config",
    "CorralError": "corral.errors",
    "JobId": "corral.records",
    "JobRecord": "corral.records",
    "Selection": "corral.registry",
    "AsyncSession": "corral.session",
    "JobSpec": "corral.spec",
    "JobState": "corral.states",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'corral' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
