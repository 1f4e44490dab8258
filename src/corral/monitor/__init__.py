"""The asyncio monitor (``Monitor``) and its daemon (``python -m corral.monitor``)."""

from corral.monitor.core import Monitor as Monitor
from corral.monitor.loop import BackendStatus as BackendStatus
