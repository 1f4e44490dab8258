"""The Local backend: jobs run detached on this machine under a small ``sh`` wrapper.

Each attempt runs in its own session under ``local_wrapper.sh``, which writes ``run-start.0`` and,
at the end, ``run-exit.0`` into the attempt dir; jobs therefore outlive the monitor and are
re-attached after a restart. How every process of a job is reached (a cgroup, a PID namespace or
a process group) is ``local_control``'s business. Everything in the attempt dir is hostile input
(the job can write there): it is read with ``runfiles.read_small``, and a run marker naming
another attempt is an error, never "already ran". While the monitor runs, completion is
event-driven: a pidfd per wrapper is registered with the event loop, so a finished job is seen at
once and nothing polls files. A concurrency cap counts
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
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import Field, StringConstraints

from corral import faults
from corral.backends import local_gpus, procinfo
from corral.backends.base import AsyncBackend, BackendConfig, BackendOptions, Report, Submitted
from corral.backends.local_control import Control, ControlUnavailable, Mode, detect, kill_group
from corral.backends.local_files import MARKER as MARKER
from corral.backends.local_files import RUN_EXIT as RUN_EXIT
from corral.backends.local_files import RUN_START as RUN_START
from corral.backends.local_files import _read_exit as _read_exit
from corral.backends.local_files import marker_problem as marker_problem
from corral.backends.local_gpus import Devices
from corral.backends.runfiles import Untrusted, parse_start, read_small
from corral.environment import spawn_environment
from corral.errors import BackendUnavailable, InvalidSpec
from corral.records import Attempt, Observation
from corral.spawn import Spawner
from corral.states import JobState

if TYPE_CHECKING:
    from corral.spec import JobSpec

WRAPPER = Path(__file__).with_name("local_wrapper.sh")


@dataclass(slots=True)
class _Running:
    attempt: Attempt
    pid: int
    pidfd: int
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class LocalOptions(BackendOptions):
    max_cpus: int | None = Field(None, ge=1, le=100_000, description="Cpus jobs may use at once.")
    gpus: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_:.-]{1,64}$")]] = Field(
        default_factory=list, max_length=1024, description="GPU device ids jobs may be given."
    )
    kill_grace: float = Field(5.0, ge=0, le=3600, description="Seconds from SIGTERM to SIGKILL.")
    process_control: Mode = Field(
        "auto",
        description="How a job's processes are reached: cgroup, pidns, pgroup or auto (the "
        "first that works here).",
    )


class LocalBackend(AsyncBackend):
    """Runs jobs on this machine; see the module docstring."""

    Options: ClassVar[type[BackendOptions]] = LocalOptions
    submit_chunk: ClassVar[int] = 16  # the first jobs run while the rest are prepared
    honours: ClassVar[frozenset[str]] = frozenset({"gpus"})
    options: LocalOptions

    @classmethod
    def check_job(cls, spec: JobSpec, options: BackendOptions) -> None:
        super().check_job(spec, options)
        assert isinstance(options, LocalOptions)
        why = _too_big(spec, _cap(options))
        if why:
            raise InvalidSpec(f"resources.cpus: {why}")
        if spec.resources.gpus > len(options.gpus):
            raise InvalidSpec(
                f"resources.gpus: the job asks for {spec.resources.gpus} GPUs; the local backend "
                f"has {len(options.gpus)} ([backends.local] gpus = [...] lists device ids)"
            )

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.cap = _cap(self.options)
        self.kill_grace = self.options.kill_grace
        self._report: Report = lambda obs: None
        self._queue: deque[Attempt] = deque()
        self._running: dict[str, _Running] = {}
        self._used = 0
        self.devices = Devices(self.options.gpus)
        self._wake = asyncio.Event()
        self._ended: list[_Running] = []
        self._cancelled: set[str] = set()
        self._launching: set[str] = set()
        self._release: list[str] = []  # cgroups of ended jobs, removed off the launch path
        self._releasing = asyncio.Event()
        self._ended_uuids: set[str] = set()  # seen ending: never strangers to status()
        self.control = Control("pgroup")

    def _cpus(self, attempt: Attempt) -> int:
        return min(attempt.spec.resources.cpus, self.cap)

    async def start(self, report: Report) -> None:
        self._report = report
        try:
            self.control = await asyncio.to_thread(detect, self.options.process_control)
        except ControlUnavailable as exc:
            raise BackendUnavailable(f"process_control: {exc}") from exc
        await asyncio.to_thread(self.control.sweep)  # what SIGKILLed monitors left behind

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for job in self._running.values():
            loop.remove_reader(job.pidfd)
            os.close(job.pidfd)
        self._running.clear()
        if self._release:  # empty cgroups of jobs that ended last
            done, self._release = self._release, []
            await asyncio.to_thread(self.control.release_all, done)

    async def serve(self) -> None:
        """Launch queued jobs as slots free up and turn ended wrappers into observations; ended
        jobs' cgroups are removed beside it (that takes a moment: launches must not wait)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._releaser())
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._ended:
                    ended, self._ended = self._ended, []
                    self._used -= sum(self._cpus(job.attempt) for job in ended)
                    for job in ended:
                        self.devices.give_back(job.attempt.uuid)
                    for obs in await asyncio.to_thread(_reap, ended, self.control, self._cancelled):
                        self._report(obs)
                    self._release.extend(job.attempt.uuid for job in ended)
                await self._launch_what_fits()
                if self._release:
                    self._releasing.set()

    async def _releaser(self) -> None:
        while await self._releasing.wait():
            self._releasing.clear()
            done, self._release = self._release, []
            await asyncio.to_thread(self.control.release_all, done)

    async def _launch_what_fits(self) -> None:
        batch: list[Attempt] = []
        while (
            self._queue
            and (self._used == 0 or self._used + self._cpus(self._queue[0]) <= self.cap)
            and self.devices.fits(self._queue[0].spec.resources.gpus)
        ):
            attempt = self._queue.popleft()
            self._used += self._cpus(attempt)  # reserved now, released below or when it ends
            self.devices.take(attempt.uuid, attempt.spec.resources.gpus)
            batch.append(attempt)
        if not batch:
            return
        # While they are being spawned they are neither queued nor watched: status() must not
        # take them for strangers (it would queue them again, and the second wrapper, finding
        # the run marker, would end at once without an exit code).
        self._launching.update(a.uuid for a in batch)
        try:
            chosen = {a.uuid: self.devices.held.get(a.uuid, ()) for a in batch}
            launched = await asyncio.to_thread(_spawn_all, batch, self.control, chosen)
        finally:
            self._launching.difference_update(a.uuid for a in batch)
        faults.point("after_spawn")  # jobs run, the registry does not know yet
        for attempt, pid, error in launched:
            self._used -= self._cpus(attempt)
            if error is not None or pid is None:
                self.devices.give_back(attempt.uuid)
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
            self._ended_uuids.add(attempt.uuid)
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
        self._ended_uuids.add(job.attempt.uuid)
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
        return await asyncio.to_thread(
            lambda: {a.uuid: "" for a in attempts if os.path.lexists(a.attempt_dir / MARKER)}
        )

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        """Tracked jobs report by events; only strangers (after a restart) are looked at (not
        ended ones the monitor finalises: looking again each cycle cost more than running them)."""
        self._ended_uuids.intersection_update(a.uuid for a in attempts)  # forgotten: final
        known = {a.uuid for a in self._queue} | self._launching | self._ended_uuids
        strangers = [a for a in attempts if a.uuid not in self._running and a.uuid not in known]
        if not strangers:
            return {}
        found = await asyncio.to_thread(_inspect_all, strangers, self.control)
        result: dict[str, Observation] = {}
        for attempt, pid, obs, devices in found:
            if pid is not None:
                self.devices.adopt(attempt.uuid, devices)
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
        self._cancelled.update(job.attempt.uuid for job in targets)
        for job in targets:
            # the wrapper's session: the wrapper (or unshare and the namespace's init) and the job
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(job.pid), signal.SIGTERM)
        if targets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.kill_grace):
                    await asyncio.gather(*(job.ended.wait() for job in targets))
        late = [job for job in targets if job.attempt.uuid in self._running]
        if late:
            await asyncio.to_thread(_hard_kill_all, late, self.control)

    async def fetch_outputs(self, attempt: Attempt) -> None:
        return None  # the attempt dir is local


def _spawn_all(
    batch: Sequence[Attempt], control: Control, devices: Mapping[str, tuple[str, ...]]
) -> list[tuple[Attempt, int | None, str | None]]:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        with Spawner({0: devnull, 1: devnull, 2: devnull}) as spawner:
            return [_spawn(a, spawner, control, devices.get(a.uuid, ())) for a in batch]
    finally:
        os.close(devnull)


def _spawn(
    attempt: Attempt, spawner: Spawner, control: Control, devices: tuple[str, ...]
) -> tuple[Attempt, int | None, str | None]:
    resources = attempt.spec.resources
    env = spawn_environment(attempt.spec)
    if devices:
        env = {**env, local_gpus.VARIABLE: ",".join(devices)}
        try:
            local_gpus.write(attempt.attempt_dir, devices)
        except OSError as exc:
            return attempt, None, f"cannot record the job's GPUs: {exc.strerror or exc}"
    try:
        place = control.place(attempt.uuid, resources.memory_mb)
    except OSError as exc:
        return attempt, None, f"cannot create the job's cgroup: {exc.strerror or exc}"
    argv = [
        *place.prefix,
        "/bin/sh",
        str(WRAPPER),
        str(attempt.attempt_dir),
        str(resources.walltime or 0),
        str(place.ulimit_kb),
        attempt.uuid,
        place.cgroup,
        place.memory_cgroup,
        control.mode,
    ]
    try:
        pid = spawner.spawn(argv, env)
    except OSError as exc:
        return attempt, None, str(exc)
    return attempt, pid, None


def _reap(ended: Sequence[_Running], control: Control, cancelled: set[str]) -> list[Observation]:
    """Observations for wrappers that ended (blocking: a worker thread). Never raises for
    anything a job did to its files."""
    results = []
    for job in ended:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(job.pid, 0)  # ours if we launched it; re-attached ones are not our children
        uuid = job.attempt.uuid
        obs = _read_exit(job.attempt, oom=control.oom_killed(uuid))
        if obs is None and uuid in cancelled:
            obs = Observation(uuid, JobState.KILLED, "killed")
        if obs is None:
            obs = Observation(uuid, JobState.FAILED, "wrapper ended without an exit code")
        cancelled.discard(uuid)
        results.append(obs)
    return results


def _inspect_all(
    attempts: Sequence[Attempt], control: Control
) -> list[tuple[Attempt, int | None, Observation | None, tuple[str, ...]]]:
    return [(a, *_inspect(a, control), local_gpus.read(a.attempt_dir)) for a in attempts]


def _inspect(attempt: Attempt, control: Control) -> tuple[int | None, Observation | None]:
    """After a restart: (pid to watch, None) or (None, final observation) or (None, None)."""
    directory = attempt.attempt_dir
    obs = _read_exit(attempt)
    if obs is not None:
        control.release(attempt.uuid)
        return None, obs
    try:
        pid_file = directory / RUN_START
        pid = int(parse_start(read_small(pid_file) or "")[1] or "")
        written = os.lstat(pid_file).st_mtime
    except (OSError, ValueError, Untrusted):
        marker = directory / MARKER
        if os.path.lexists(marker):
            age = time.time() - os.lstat(marker).st_mtime
            if age < 10:  # the wrapper is starting right now
                return None, Observation(attempt.uuid, JobState.SUBMITTED, "starting")
            return None, Observation(attempt.uuid, JobState.FAILED, "wrapper died before starting")
        return None, None
    started = procinfo.started_at(pid)
    if pid > 1 and started is not None and abs(started - written) < 5:
        return pid, None
    obs = _read_exit(attempt)  # it may have ended between the two reads
    if obs is not None:
        return None, obs
    return None, Observation(attempt.uuid, JobState.FAILED, "wrapper vanished without an exit code")


def _hard_kill_all(jobs: Sequence[_Running], control: Control) -> None:
    for job in jobs:
        if control.mode == "pgroup":
            kill_group(job.attempt.attempt_dir, job.pid)
        else:
            control.hard_kill(job.attempt.uuid, job.pid)


def _cap(options: LocalOptions) -> int:
    return options.max_cpus or os.cpu_count() or 1


def _too_big(spec: JobSpec, cap: int) -> str:
    cpus = spec.resources.cpus
    if cpus <= cap:
        return ""
    return f"the job asks for {cpus} cpus; the local backend runs at most {cap} (max_cpus)"
