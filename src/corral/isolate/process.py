"""One worker process seen from the event loop: started in its own session (process group),
answers resolved by request id as their lines arrive (no polling), stderr logged line by line,
and on death the whole process group killed and every call in flight failed as transient."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import BackendUnavailable, CallTimedOut, RemoteError, WorkerDied
from corral.printable import printable

WORKER = Path(__file__).with_name("worker.py")
LINE_LIMIT = 256 * 1024 * 1024
"""The longest answer line (a status answer for 10^5 jobs is a few MB)."""
DROP_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH")
"""corral's own interpreter settings, never handed to the foreign one."""


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start a worker: the interpreter, an optional environment script sourced first
    (``diracos/diracosrc``), extra environment, the worker module, its threads."""

    python: str
    module: str
    paths: Sequence[str] = ()
    environment_script: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    threads: int = 4
    start_timeout: float = 60.0

    def argv(self) -> list[str]:
        worker = [self.python, str(WORKER), self.module, "--threads", str(self.threads)]
        for path in self.paths:
            worker += ["--path", path]
        if self.environment_script is None:
            return worker
        # the script's own output goes to stderr (logged); the protocol starts at exec
        return ["/bin/sh", "-c", '. "$0" >&2 && exec "$@"', self.environment_script, *worker]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
        env.update(self.environment)
        return env


class Worker:
    """One live worker. ``pending`` holds the futures of calls in flight, by request id."""

    def __init__(self, launch: Launch, name: str, cwd: Path, on_exit: Callable[[], None]) -> None:
        self.launch, self.name, self.cwd, self.on_exit = launch, name, cwd, on_exit
        self.log = logging.getLogger(f"corral.isolate.{name}")
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.methods: dict[str, str] = {}
        self.exclusive_busy = False
        self.retiring = False
        self.dead = False
        self._next = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Future[dict[str, Any]] | None = None

    @property
    def running(self) -> bool:
        """Not yet reaped."""
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.cwd.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ready = loop.create_future()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.launch.argv(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.cwd,
                env=self.launch.env(),
                start_new_session=True,  # its own process group: killed whole
                limit=LINE_LIMIT,
            )
        except OSError as exc:
            raise BackendUnavailable(
                f"{self.name}: cannot start {self.launch.python}: {exc}"
            ) from exc
        self._tasks = [
            loop.create_task(self._read_answers(), name=f"{self.name}-answers"),
            loop.create_task(self._read_stderr(), name=f"{self.name}-stderr"),
        ]
        try:
            async with asyncio.timeout(self.launch.start_timeout):
                hello = await self._ready
        except TimeoutError:
            await self.kill()
            raise BackendUnavailable(
                f"{self.name}: not ready after {self.launch.start_timeout} s"
            ) from None
        except BackendUnavailable:
            await self.kill()
            raise
        self.methods = dict(hello.get("methods", {}))

    async def _read_answers(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async for line in self.proc.stdout:
                self._answer(line)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            self.log.error("%s: unreadable answer: %s", self.name, exc)
        finally:
            self._ended()

    def _answer(self, line: bytes) -> None:
        message = json.loads(line)
        if "ready" in message or "failed" in message:
            if self._ready is not None and not self._ready.done():
                if "ready" in message:
                    self._ready.set_result(message["ready"])
                else:
                    why = printable(str(message["failed"]))
                    self._ready.set_exception(BackendUnavailable(f"{self.name}: {why}"))
            return
        future = self.pending.pop(message.get("id"), None)
        if future is None or future.done():
            return  # abandoned after a timeout
        if "error" in message:
            error = message["error"]
            future.set_exception(RemoteError(str(error["type"]), str(error.get("message", ""))))
        else:
            future.set_result(message.get("result"))
        if self.retiring and not self.pending:
            self.close_input()

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with contextlib.suppress(ValueError, asyncio.LimitOverrunError):
            async for line in self.proc.stderr:
                text = line.decode(errors="replace").rstrip("\n")
                self.log.info("%s[%s]: %s", self.name, self.pid, printable(text))

    def _ended(self) -> None:
        """stdout closed: the worker exited or died. Its group goes, its calls fail."""
        if self.dead:
            return
        self.dead = True
        self._killpg()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(BackendUnavailable(f"{self.name}: exited before ready"))
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerDied(f"{self.name} (pid {self.pid}) died mid-call"))
        self.on_exit()

    def _killpg(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def call(self, method: str, params: Mapping[str, Any], seconds: float) -> Any:
        if self.dead or self.proc is None or self.proc.stdin is None:
            raise WorkerDied(f"{self.name} is not running")
        self._next += 1
        call_id = self._next
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        line = {"id": call_id, "method": method, "params": dict(params)}
        try:
            self.proc.stdin.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        except (ConnectionError, RuntimeError) as exc:
            self.pending.pop(call_id, None)
            raise WorkerDied(f"{self.name}: {exc}") from exc
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            self.pending.pop(call_id, None)
            self._send({"abandon": call_id})
            raise CallTimedOut(f"{method} timed out after {seconds:g} s in {self.name}") from None

    def _send(self, message: dict[str, Any]) -> None:
        if not self.dead and self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    def close_input(self) -> None:
        """No more calls: the worker finishes what runs and exits."""
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.proc.stdin.close()

    async def kill(self) -> None:
        """SIGKILL the whole process group now and wait for the readers."""
        self._killpg()
        await self.wait()

    async def wait(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.proc is not None:
            await self.proc.wait()
        if not self.dead:
            self._ended()
