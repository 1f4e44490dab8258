"""The backend protocol: bulk by construction.

A backend turns attempts into scheduler jobs and reports what it sees of them. It never decides a
job's state (``corral.states`` does) and never writes the registry (the monitor does).

Every call takes *all* the attempts it concerns, so a monitor cycle costs one scheduler call per
backend whatever the number of jobs. An async backend is awaited on the event loop; a backend
whose client library blocks sets ``blocking = True`` and implements the same methods as plain
functions, which the monitor runs in a bounded thread pool (see ``as_async``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from corral.records import Attempt, Observation

Report = Callable[[Observation], None]
"""How an event-driven backend pushes an observation to the monitor (callable from the loop)."""


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """What a backend is built from: its instance name and its options from the settings."""

    name: str
    work_dir: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    min_interval: float = 0.5
    max_interval: float = 30.0


@runtime_checkable
class Backend(Protocol):
    """An asynchronous backend."""

    blocking: ClassVar[bool]
    config: BackendConfig

    async def start(self, report: Report) -> None:
        """Called once by the monitor before any other call; ``report`` pushes observations."""

    async def stop(self) -> None:
        """Release resources. Running jobs keep running."""

    async def submit(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """Submit prepared attempts; return ``{uuid: native_id}``. A uuid left out failed to
        submit; raising ``TransientBackendError`` means nothing was submitted, try again."""

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        """One bulk status query for all given attempts; leave out those with nothing new."""

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        """Cancel all given attempts (one scheduler call where possible)."""

    async def fetch_outputs(self, attempt: Attempt) -> None:
        """Bring the attempt's files into its attempt dir (a no-op on a shared filesystem)."""

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """For attempts a crash left in ``submitting``: ``{uuid: native_id}`` of those the
        scheduler already has (found by ``Attempt.label``). The others are submitted again."""


class BlockingBackend(Protocol):
    """A backend over a blocking client library; same verbs, plain functions."""

    blocking: ClassVar[bool]
    config: BackendConfig

    def start(self, report: Report) -> None: ...
    def stop(self) -> None: ...
    def submit(self, attempts: Sequence[Attempt]) -> Mapping[str, str]: ...
    def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]: ...
    def cancel(self, attempts: Sequence[Attempt]) -> None: ...
    def fetch_outputs(self, attempt: Attempt) -> None: ...
    def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]: ...


class ThreadedBackend:
    """Runs a ``BlockingBackend`` in a bounded executor so it looks async to the monitor."""

    blocking: ClassVar[bool] = False

    def __init__(self, inner: BlockingBackend, executor: Executor) -> None:
        self._inner = inner
        self._executor = executor
        self.config = inner.config

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self, report: Report) -> None:
        loop = asyncio.get_running_loop()

        def threadsafe(obs: Observation) -> None:
            loop.call_soon_threadsafe(report, obs)

        await self._call(self._inner.start, threadsafe)

    async def stop(self) -> None:
        await self._call(self._inner.stop)

    async def submit(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        result: Mapping[str, str] = await self._call(self._inner.submit, attempts)
        return result

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        result: Mapping[str, Observation] = await self._call(self._inner.status, attempts)
        return result

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        await self._call(self._inner.cancel, attempts)

    async def fetch_outputs(self, attempt: Attempt) -> None:
        await self._call(self._inner.fetch_outputs, attempt)

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        result: Mapping[str, str] = await self._call(self._inner.reconcile, attempts)
        return result
