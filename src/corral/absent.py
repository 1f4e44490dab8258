"""A registry that is not there: what an ``AsyncSession(create=False)`` holds on a home that has
none yet. Reading the monitor's status needs no registry (nobody ever drove one: no lease, no
active jobs, no backend health); anything else that asks for the registry is ``NotFound``, and
nothing is created.
"""

from __future__ import annotations

from corral.errors import NotFound
from corral.registry.aio import AsyncRegistry
from corral.registry.interface import RegistryStore


class NoRegistry(AsyncRegistry):
    """Opens nothing; its ``sync`` store is ``NotFound``: "there are no jobs yet"."""

    async def __aenter__(self) -> NoRegistry:
        return self

    @property
    def sync(self) -> RegistryStore:
        raise NotFound(f"there are no jobs yet (no registry at {self._path})")
