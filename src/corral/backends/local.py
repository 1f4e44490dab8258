"""The Local backend: jobs run detached on this machine under a small ``sh`` wrapper.

Each attempt runs in its own session under ``local_wrapper.sh``, which writes ``pid`` and, at the
end, ``exit`` into the attempt dir; jobs therefore outlive the monitor and are re-attached after a
restart. While the monitor runs, completion is event-driven: a pidfd per wrapper is registered with
the event loop, so a finished job is seen at once and nothing polls files. A concurrency cap counts
cpus (default: the machine's cores); jobs waiting for a slot are reported ``submitted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from corral import faults
from corral.backends.base import AsyncBackend, BackendConfig, BackendOptions, Report, Submitted
from corral.backends.runfiles import EXIT, START, parse_exit, parse_start
from corral.errors import InvalidSpec
from corral.records import Attempt, Observation
from corral.states import JobState

if TYPE_CHECKING:
    from corral.spec import JobSpec

WRAPPER = Path(__file__).with_name("local_wrapper.sh")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_BOOT: float | None = None


def _boot_time() -> float:
    global _BOOT  # cached: /proc/stat's btime never changes while we run
    if _BOOT is None:
        with open("/proc/stat") as handle:
            _BOOT = next(float(line.split()[1]) for line in handle if line.startswith("btime"))
    return _BOOT


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return _boot_time() + int(fields[19]) / _CLK_TCK


@dataclass(slots=True)
class _Running:
    attempt: Attempt
    pid: int
    pidfd: int
    ended: asyncio.Event = field(default_factory=asyncio.Event)


RUN_START = f"{START}.0"  # the local wrapper runs an attempt once: run 0 only
RUN_EXIT = f"{EXIT}.0"


def _read_exit(attempt: Attempt) -> Observation | None:
    try:
        record = parse_exit((attempt.attempt_dir / RUN_EXIT).read_text())
    except FileNotFoundError:
        return None
    if record is None:
        return None  # being written right now
    walltime = record.code == 124 and bool(attempt.spec.resources.walltime)  # timeout(1)'s code
    return Observation.ended(attempt.uuid, record.code, killed=record.terminated, walltime=walltime)


class LocalOptions(BackendOptions):
    max_cpus: int | None = Field(None, ge=1, le=100_000, description="Cpus jobs may use at once.")
    kill_grace: float = Field(5.0, ge=0, le=3600, description="Seconds from SIGTERM to SIGKILL.")


class LocalBackend(AsyncBackend):
    """Runs jobs on this machine; see the module docstring."""

    Options: ClassVar[type[BackendOptions]] = LocalOptions
    options: LocalOptions

    @classmethod
    def check_job(cls, spec: JobSpec, options: BackendOptions) -> None:
        super().check_job(spec, options)
        assert isinstance(options, LocalOptions)
        why = _too_big(spec, _cap(options))
        if why:
            raise InvalidSpec(f"resources.cpus: {why}")

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.cap = _cap(self.options)
        self.kill_grace = self.options.kill_grace
        self._report: Report = lambda obs: None
        self._queue: deque[Attempt] = deque()
        self._running: dict[str, _Running] = {}
        self._used = 0
        self._wake = asyncio.Event()
        self._ended: list[_Running] = []

    def _cpus(self, attempt: Attempt) -> int:
        return min(attempt.spec.resources.cpus, self.cap)

    async def start(self, report: Report) -> None:
        self._report = report

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for job in self._running.values():
            loop.remove_reader(job.pidfd)
            os.close(job.pidfd)
        self._running.clear()

    async def serve(self) -> None:
        """Launch queued jobs as slots free up and turn ended wrappers into observations."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._ended:
                ended, self._ended = self._ended, []
                self._used -= sum(self._cpus(job.attempt) for job in ended)
                for obs in await asyncio.to_thread(_reap, ended):
                    self._report(obs)
            await self._launch_what_fits()

    async def _launch_what_fits(self) -> None:
        batch: list[Attempt] = []
        while self._queue and (
            self._used == 0 or self._used + self._cpus(self._queue[0]) <= self.cap
        ):
            attempt = self._queue.popleft()
            self._used += self._cpus(attempt)  # reserved now, released below or when it ends
            batch.append(attempt)
        if not batch:
            return
        launched = await asyncio.to_thread(_spawn_all, batch)
        faults.point("after_spawn")  # jobs run, the registry does not know yet
        for attempt, pid, error in launched:
            self._used -= self._cpus(attempt)
            if error is not None or pid is None:
                self._report(Observation(attempt.uuid, JobState.FAILED, f"launch failed: {error}"))
                continue
            self._watch(attempt, pid)
            self._report(Observation(attempt.uuid, JobState.RUNNING, "started", native_id=str(pid)))

    def _watch(self, attempt: Attempt, pid: int) -> bool:
        """Track a wrapper (it holds its cpus until it ends); False if it already ended."""
        self._used += self._cpus(attempt)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._ended.append(_Running(attempt, pid, -1))
            self._wake.set()
            return False
        job = _Running(attempt, pid, pidfd)
        self._running[attempt.uuid] = job
        asyncio.get_running_loop().add_reader(pidfd, self._on_exit, job)
        return True

    def _on_exit(self, job: _Running) -> None:
        asyncio.get_running_loop().remove_reader(job.pidfd)
        os.close(job.pidfd)
        self._running.pop(job.attempt.uuid, None)
        job.ended.set()
        self._ended.append(job)
        self._wake.set()

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        refused = {a.uuid: why for a in attempts if (why := _too_big(a.spec, self.cap))}
        fits = [a for a in attempts if a.uuid not in refused]
        self._queue.extend(fits)
        self._wake.set()
        return Submitted({a.uuid: "" for a in fits}, refused)

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """A crash left these in ``submitting``: those whose wrapper started are found by its
        lock dir; the others are submitted again (the lock makes a double launch impossible)."""
        found = await asyncio.to_thread(
            lambda: {a.uuid: "" for a in attempts if (a.attempt_dir / ".corral-run").exists()}
        )
        return found

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        """Tracked jobs report by events; only strangers (after a restart) are looked at."""
        queued = {a.uuid for a in self._queue}
        strangers = [a for a in attempts if a.uuid not in self._running and a.uuid not in queued]
        if not strangers:
            return {}
        found = await asyncio.to_thread(_inspect_all, strangers)
        result: dict[str, Observation] = {}
        for attempt, pid, obs in found:
            if pid is not None:
                if self._watch(attempt, pid):
                    result[attempt.uuid] = Observation(
                        attempt.uuid, JobState.RUNNING, "re-attached", native_id=str(pid)
                    )
            elif obs is not None:
                result[attempt.uuid] = obs
            else:
                self._queue.append(attempt)  # accepted but never launched: launch it now
                self._wake.set()
        return result

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        uuids = {a.uuid for a in attempts}
        for attempt in [a for a in self._queue if a.uuid in uuids]:
            self._queue.remove(attempt)
            self._report(Observation(attempt.uuid, JobState.KILLED, "killed while queued"))
        targets = [self._running[u] for u in uuids if u in self._running]
        for job in targets:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGTERM)  # the wrapper leads the job's process group
        if targets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.kill_grace):
                    await asyncio.gather(*(job.ended.wait() for job in targets))
        for job in targets:
            if job.attempt.uuid in self._running:
                await asyncio.to_thread(_kill_group, job.attempt.attempt_dir)

    async def fetch_outputs(self, attempt: Attempt) -> None:
        return None  # the attempt dir is local


def _spawn_all(batch: Sequence[Attempt]) -> list[tuple[Attempt, int | None, str | None]]:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        return [_spawn(a, devnull) for a in batch]
    finally:
        os.close(devnull)


def _spawn(attempt: Attempt, devnull: int) -> tuple[Attempt, int | None, str | None]:
    resources = attempt.spec.resources
    argv = [
        "sh",
        str(WRAPPER),
        str(attempt.attempt_dir),
        str(resources.walltime or 0),
        str((resources.memory_mb or 0) * 1024),
    ]
    try:
        pid = os.posix_spawn(
            "/bin/sh",
            argv,
            os.environ,
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ],
        )
    except OSError as exc:
        return attempt, None, str(exc)
    return attempt, pid, None


def _reap(ended: Sequence[_Running]) -> list[Observation]:
    results = []
    for job in ended:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(job.pid, 0)  # ours if we launched it; re-attached ones are not our children
        obs = _read_exit(job.attempt)
        if obs is None:
            obs = Observation(
                job.attempt.uuid, JobState.FAILED, "wrapper ended without an exit code"
            )
        results.append(obs)
    return results


def _inspect_all(
    attempts: Sequence[Attempt],
) -> list[tuple[Attempt, int | None, Observation | None]]:
    return [(a, *_inspect(a)) for a in attempts]


def _inspect(attempt: Attempt) -> tuple[int | None, Observation | None]:
    """After a restart: (pid to watch, None) or (None, final observation) or (None, None)."""
    directory = attempt.attempt_dir
    obs = _read_exit(attempt)
    if obs is not None:
        return None, obs
    try:
        pid_file = directory / RUN_START
        pid = int(parse_start(pid_file.read_text())[1] or "")
        written = pid_file.stat().st_mtime
    except (FileNotFoundError, ValueError):
        if (directory / ".corral-run").exists():
            age = time.time() - (directory / ".corral-run").stat().st_mtime
            if age < 10:  # the wrapper is starting right now
                return None, Observation(attempt.uuid, JobState.SUBMITTED, "starting")
            return None, Observation(attempt.uuid, JobState.FAILED, "wrapper died before starting")
        return None, None
    started = _started_at(pid)
    if started is not None and abs(started - written) < 5:
        return pid, None
    obs = _read_exit(attempt)  # it may have ended between the two reads
    if obs is not None:
        return None, obs
    return None, Observation(attempt.uuid, JobState.FAILED, "wrapper vanished without an exit code")


def _kill_group(attempt_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        pgid = int((attempt_dir / "jobpgid").read_text())
        os.killpg(pgid, signal.SIGKILL)


def _cap(options: LocalOptions) -> int:
    return options.max_cpus or os.cpu_count() or 1


def _too_big(spec: JobSpec, cap: int) -> str:
    cpus = spec.resources.cpus
    if cpus <= cap:
        return ""
    return f"the job asks for {cpus} cpus; the local backend runs at most {cap} (max_cpus)"
