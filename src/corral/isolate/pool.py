"""A pool of long-lived workers: which worker takes a call, retries, restarts, recycling.

- A thread-safe call goes to the live worker with the fewest calls in flight; an exclusive one
  to a worker with no exclusive call in flight (else it waits for one to free), so calls that
  change process state (DIRAC's local-mode submit ``chdir``s) never share a process.
- A worker that dies is gone with its whole process group; its calls in flight fail with
  ``WorkerDied`` (transient). Only calls declared idempotent are tried again (on another worker,
  or on the slot's replacement); the others raise, and the caller reconciles (a submit is found
  by its JobName before it is ever sent again).
- A dead slot is started again when a call needs it, after a back-off that doubles with each
  death in a row (``backoff`` up to ``max_backoff``) and resets after a call succeeds.
- A timed-out call's worker thread is abandoned (its answer dropped); if the call was
  exclusive, its worker is recycled (killed, replaced), since it is stuck mid-change.
- When the credential file changes (checked at most every ``credential_check`` s, off the loop),
  every worker is recycled: it takes no new calls, finishes its calls in flight and exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import BackendError, BackendUnavailable, CallTimedOut, WorkerDied
from corral.isolate.process import Launch, Worker

log = logging.getLogger("corral.isolate")


@dataclass(frozen=True, slots=True)
class Method:
    """The host's policy for one method: whether a retry after a worker's death is safe."""

    idempotent: bool = False
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class PoolSpec:
    name: str
    launch: Launch
    methods: Mapping[str, Method]
    scratch: Path
    workers: int = 2
    credential: Path | None = None
    credential_check: float = 1.0
    retries: int = 2
    backoff: float = 0.2
    max_backoff: float = 30.0
    stop_grace: float = 5.0


@dataclass(eq=False)
class _Slot:
    index: int
    worker: Worker | None = None
    deaths: int = 0
    not_before: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def live(self) -> bool:
        return self.worker is not None and not self.worker.dead


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Pool:
    """``async with Pool(spec) as pool: await pool.call("status", ids=[1, 2])``."""

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self._slots = [_Slot(i) for i in range(spec.workers)]
        self._workers: list[Worker] = []
        """Every worker not yet reaped (live, retiring, dying): ``close`` waits for them all."""
        self._kinds: dict[str, str] = {}
        self._wake: asyncio.Future[None] | None = None
        self._credential: tuple[int, int, int] | None = None
        self._credential_next = 0.0
        self._credential_lock = asyncio.Lock()
        self._started = 0
        self.closed = False
        self.calls: Counter[str] = Counter()
        self.deaths = 0
        self.recycles = 0

    async def __aenter__(self) -> Pool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- lifecycle

    async def start(self) -> None:
        if self.spec.credential is not None:
            self._credential = await asyncio.to_thread(_signature, self.spec.credential)
            self._credential_next = asyncio.get_running_loop().time() + self.spec.credential_check
        outcomes = await asyncio.gather(
            *(self._revive(slot) for slot in self._slots), return_exceptions=True
        )
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            await self.close()
            raise failed[0]

    async def close(self) -> None:
        self.closed = True
        workers = self._workers
        for worker in workers:
            worker.retiring = True
            worker.close_input()
        waits = [asyncio.wait_for(w.wait(), self.spec.stop_grace) for w in workers]
        for worker, outcome in zip(
            workers, await asyncio.gather(*waits, return_exceptions=True), strict=True
        ):
            if isinstance(outcome, BaseException):
                await worker.kill()
        self._notify()

    def pids(self) -> list[int]:
        return [s.worker.pid for s in self._slots if s.live and s.worker and s.worker.pid]

    @property
    def started(self) -> int:
        """Workers started so far (restarts and recycles included)."""
        return self._started

    # ---- calls

    async def call(self, method: str, /, **params: Any) -> Any:
        """Run ``method(**params)`` in a worker; its answer, or the error it raised there."""
        policy = self.spec.methods.get(method)
        if policy is None:
            raise BackendError(f"{self.spec.name}: {method!r} is not an allowed method")
        await self._check_credential()
        tries = 1 + (self.spec.retries if policy.idempotent else 0)
        for attempt in range(tries):
            exclusive = self._kind(method) == "exclusive"
            worker, slot = await self._pick(exclusive)
            if exclusive:
                worker.exclusive_busy = True
            self.calls[method] += 1
            try:
                result = await worker.call(method, params, policy.timeout)
            except WorkerDied:
                if attempt + 1 >= tries:
                    raise
                log.warning("%s: %s retried after a worker died", self.spec.name, method)
                continue
            except CallTimedOut:
                if exclusive:
                    log.warning("%s: %s timed out: worker recycled", self.spec.name, method)
                    worker.retiring = True
                    await worker.kill()
                raise
            finally:
                if exclusive:
                    worker.exclusive_busy = False
                    self._notify()
            slot.deaths = 0
            return result
        raise AssertionError("unreachable")

    def _kind(self, method: str) -> str:
        kind = self._kinds.get(method)
        if kind is None:
            raise BackendError(f"{self.spec.name}: the worker module has no method {method!r}")
        return kind

    async def _pick(self, exclusive: bool) -> tuple[Worker, _Slot]:
        while True:
            if self.closed:
                raise BackendUnavailable(f"{self.spec.name}: the worker pool is closed")
            live = [s for s in self._slots if s.live]
            free = [s for s in live if s.worker and not (exclusive and s.worker.exclusive_busy)]
            if free:
                slot = min(free, key=lambda s: len(s.worker.pending) if s.worker else 0)
                assert slot.worker is not None
                return slot.worker, slot
            empty = [s for s in self._slots if not s.live and not s.lock.locked()]
            if empty:
                await self._revive(min(empty, key=lambda s: s.not_before))
                continue
            if self._wake is None or self._wake.done():
                self._wake = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._wake)

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _revive(self, slot: _Slot) -> None:
        async with slot.lock:
            if slot.live or self.closed:
                return
            delay = slot.not_before - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._started += 1
            name = f"{self.spec.name}-{slot.index}"
            cwd = self.spec.scratch / f"worker-{slot.index}-{self._started}"
            worker = Worker(self.spec.launch, name, cwd, lambda: None)
            worker.on_exit = lambda: self._exited(slot, worker)
            try:
                await worker.start()
            except BackendUnavailable:
                self._died(slot)
                self._notify()
                raise
            self._workers = [w for w in self._workers if w.running] + [worker]
            if self.closed:
                await worker.kill()
                return
            slot.worker = worker
            for method, kind in worker.methods.items():
                self._kinds.setdefault(method, kind)
            self._notify()

    def _exited(self, slot: _Slot, worker: Worker) -> None:
        if slot.worker is worker:
            slot.worker = None
        if not worker.retiring and not self.closed:
            log.warning("%s: worker pid %s died", self.spec.name, worker.pid)
            self.deaths += 1
            self._died(slot)
        self._notify()

    def _died(self, slot: _Slot) -> None:
        slot.deaths += 1
        delay = min(self.spec.backoff * 2 ** (slot.deaths - 1), self.spec.max_backoff)
        slot.not_before = asyncio.get_running_loop().time() + delay

    # ---- credential

    async def _check_credential(self) -> None:
        path = self.spec.credential
        if path is None or asyncio.get_running_loop().time() < self._credential_next:
            return
        async with self._credential_lock:  # calls wait for a check in flight, then go on
            now = asyncio.get_running_loop().time()
            if now < self._credential_next:
                return
            signature = await asyncio.to_thread(_signature, path)
            self._credential_next = now + self.spec.credential_check
            if signature != self._credential:
                self._credential = signature
                self.recycle("the credential changed")

    def recycle(self, why: str) -> None:
        """Every worker finishes its calls in flight and exits; new ones take new calls."""
        log.info("%s: recycling the workers: %s", self.spec.name, why)
        self.recycles += 1
        for slot in self._slots:
            worker, slot.worker = slot.worker, None
            if worker is None or worker.dead:
                continue
            worker.retiring = True
            if not worker.pending:
                worker.close_input()
