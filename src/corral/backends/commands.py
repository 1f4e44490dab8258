"""Run a scheduler's commands as asyncio subprocesses, with a timeout and a count of every call.

Shared by every backend that drives command-line tools (Slurm, and the batch backends after it).
The count (``Runner.calls``) is what the monitor reports per cycle and what the benchmarks and
tests read to prove that a cycle costs one status command whatever the number of jobs. A missing
tool is ``BackendUnavailable`` (the backend is down), a slow or failing one is transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corral.errors import BackendUnavailable, TransientBackendError

log = logging.getLogger("corral.backends.commands")


@dataclass(frozen=True, slots=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        message = self.stderr.strip().splitlines()[-1:] or ["no message"]
        return f"{self.argv[0]} exited {self.returncode}: {message[0]}"


@dataclass(slots=True)
class Runner:
    """Runs one command at a time per call; never blocks the event loop."""

    timeout: float = 60.0
    calls: Counter[str] = field(default_factory=Counter)
    missing_hint: str = "is it installed and on PATH?"

    async def run(self, argv: Sequence[str], cwd: Path | None = None) -> Result:
        """Run ``argv``; a missing tool is ``BackendUnavailable``, a slow one is transient."""
        self.calls[argv[0]] += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"{argv[0]} not found: {self.missing_hint}") from exc
        except OSError as exc:
            raise TransientBackendError(f"cannot run {argv[0]}: {exc}") from exc
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate()
        except TimeoutError as exc:
            await _kill(proc)
            raise TransientBackendError(f"{argv[0]} timed out after {self.timeout:g} s") from exc
        except asyncio.CancelledError:
            await _kill(proc)  # a cancelled caller must not leave the command running
            raise
        result = Result(
            tuple(argv),
            proc.returncode or 0,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
        )
        log.debug("%s -> %d", " ".join(argv[:3]), result.returncode)
        return result

    async def check(self, argv: Sequence[str], cwd: Path | None = None) -> Result:
        """Run ``argv``; any non-zero exit is a transient error (the scheduler is unwell)."""
        result = await self.run(argv, cwd)
        if result.returncode != 0:
            raise TransientBackendError(result.describe())
        return result


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
