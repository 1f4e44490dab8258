"""The durable registry of jobs, attempts and state transitions."""

from corral.registry.rows import Selection as Selection
from corral.registry.store import LeaseInfo as LeaseInfo
from corral.registry.store import Registry as Registry
from corral.registry.updates import Update as Update
