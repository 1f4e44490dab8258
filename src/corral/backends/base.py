"""The backend contract: every hook the core uses, declared once.

A backend turns attempts into scheduler jobs and reports what it sees of them. It never decides a
job's state (``corral.states`` does) and never writes the registry (the monitor does).

Every verb takes *all* the attempts it concerns, so a monitor cycle costs one scheduler call per
backend whatever the number of jobs::

    BackendBase                 what the core reads off a class: Options, JobOptions, check_job
    ├── AsyncBackend            verbs are coroutines, awaited on the event loop
    │   └── ThreadedBackend     (internal) a BlockingBackend seen through its own thread limiter
    └── BlockingBackend         verbs are plain functions; each instance gets its own bounded
                                limiter (option ``threads``), its ``serve`` its own thread

Failure rules (the monitor applies them; a backend only raises):

- ``BackendUnavailable`` from any verb (tools missing, login needed, server down): the backend
  is *down*; the monitor retries with back-off, no job changes state.
- ``TransientBackendError``: the call failed, retry later; several in a row make it down too.
  From ``submit`` it carries what went through (``partial``); only the rest is retried.
- A job the backend will never run is *refused* in ``Submitted.refused`` with a reason: that job
  fails, the others go on.
- ``submit`` must be idempotent per attempt uuid: if it is called again for an attempt it saw
  before (a timeout, a crash), it looks for the attempt's label first and never submits twice.
- ``status`` answers for every attempt it is asked about that it can see; the poll loop leaves
  out what did not change. A job the scheduler does not know is ``JobState.UNKNOWN``.
- Holds (``can_hold``): ``hold``/``release`` act on all given attempts in one scheduler call and
  return ``{uuid: why not}`` for those they could not act on (a running job cannot be held). A
  held queued job is observed ``SUBMITTED`` with ``Observation.held`` set (reason "held: ...");
  the scheduler's own hold of a running job is a requeue (``requeue=True``, ``held`` set); a
  hold that can never succeed on retry is ``FAILED`` with the reason "held: ..." and the backend
  removes the job from the queue itself.

Options are pydantic models (``Options`` for a ``[backends.NAME]`` section, ``JobOptions`` for a
job's ``backend_options``) that check values as well as names. They are validated only by the
verbs that use a backend (submit, monitor, plugins, config show), never on the read path.
A path-valued option is declared ``OptionPath`` (``OptionCommand`` for a program): checking
resolves it against the directory of the config file that set it (``corral.paths``).
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corral import inputs
from corral.backends.option_paths import OptionCommand as OptionCommand
from corral.backends.option_paths import OptionPath as OptionPath
from corral.errors import ConfigError, HoldUnsupported, InvalidSpec
from corral.records import Attempt, Observation

if TYPE_CHECKING:
    from corral.spec import JobSpec

Report = Callable[[Observation], None]
"""How an event-driven backend pushes an observation to the monitor (callable from the loop)."""

M = TypeVar("M", bound=BaseModel)


class BackendOptions(BaseModel):
    """Options of a ``[backends.NAME]`` section (beyond type/min_interval/max_interval).
    Strict: ``"abc"`` is not a number, ``true`` is not 1, NaN is not a number at all."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class BlockingOptions(BackendOptions):
    threads: int = Field(4, ge=1, le=256, description="Threads of this backend's own limiter.")


class JobOptions(BaseModel):
    """A job's ``backend_options`` for one backend kind; none by default."""

    # (named like the class attribute ``BackendBase.JobOptions`` that holds a subclass of it)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def validation_message(exc: ValidationError, where: str) -> str:
    """One line naming every bad key and value: ``where.key: what is wrong (got value)``."""
    parts = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"])
        name = f"{where}.{key}" if key else where
        if error["type"] == "extra_forbidden":
            parts.append(f"{name}: unknown option")
        else:
            what = error["msg"].removeprefix("Value error, ")  # our own validators' messages
            parts.append(f"{name}: {what[:1].lower()}{what[1:]} (got {error['input']!r})")
    return "; ".join(parts)


def parse_model(
    model: type[M],
    raw: Mapping[str, Any],
    where: str,
    error: type[Exception],
    bases: Mapping[str, Path | None] | None = None,
) -> M:
    """``raw`` checked against ``model``; ``bases`` say what each key's relative paths are
    relative to (keys not in it: the working directory now)."""
    bad = inputs.bad_text(raw)  # every backend's options, whatever its model declares
    if bad is not None:
        raise error(f"{where}.{bad}")
    try:
        return model.model_validate(dict(raw), context={"bases": bases or {}})
    except ValidationError as exc:
        raise error(validation_message(exc, where)) from exc


_ASKED = ("gpus", "nodes", "tasks_per_node")


def refuse_resources(cls: type[BackendBase], spec: JobSpec) -> None:
    """``InvalidSpec`` naming the first of gpus/nodes/tasks_per_node that ``cls`` cannot give."""
    for name in _ASKED:
        value = getattr(spec.resources, name)
        if name not in cls.honours and (value or 0) > (0 if name == "gpus" else 1):
            raise InvalidSpec(
                f"resources.{name}: the {cls.__name__.removesuffix('Backend').lower()} backend "
                f"cannot honour {name} = {value}"
            )


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """What a backend is built from: its instance name, kind and raw options from the settings."""

    name: str
    work_dir: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    min_interval: float = 0.5
    max_interval: float = 30.0
    kind: str = ""
    registry_uuid: str = ""
    """The registry uuid (32 hex) for backends that tag scheduler jobs with it; "" if unknown."""
    bases: Mapping[str, Path | None] = field(default_factory=dict)
    """What relative paths in each option are relative to (``BackendSettings.bases``)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """What ``submit`` did: ``accepted`` maps uuid -> native id ("" when the backend has none
    yet), ``refused`` maps uuid -> why the backend will never run it."""

    accepted: Mapping[str, str] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    def __or__(self, other: Submitted) -> Submitted:
        return Submitted({**self.accepted, **other.accepted}, {**self.refused, **other.refused})


class BackendBase:
    """What every backend class declares. Subclass ``AsyncBackend`` or ``BlockingBackend``."""

    blocking: ClassVar[bool] = False
    can_hold: ClassVar[bool] = False
    """True if ``hold`` and ``release`` work (slurm, condor, sge)."""
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    JobOptions: ClassVar[type[JobOptions]] = JobOptions
    extra: ClassVar[str | None] = None
    """The pip extra that installs this backend's dependencies (for the hint when missing)."""
    submit_chunk: ClassVar[int] = 0
    """Hand a batch to ``submit`` in chunks of this many, each as soon as its job dirs are
    prepared, so the first jobs start while later ones are prepared (0: one call per batch,
    e.g. so that a sweep is one scheduler array)."""
    honours: ClassVar[frozenset[str]] = frozenset()
    """Which of the resources ``gpus``, ``nodes`` and ``tasks_per_node`` this backend can give a
    job (maybe only with some options: its ``check_job`` says). A job asking for another is
    refused at submit by the default ``check_job``."""

    config: BackendConfig
    options: BackendOptions

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.options = self.check_options(config.name, config.options, config.bases)

    @classmethod
    def check_options(
        cls, name: str, raw: Mapping[str, Any], bases: Mapping[str, Path | None] | None = None
    ) -> BackendOptions:
        """A ``[backends.NAME]`` section's options, checked: ``ConfigError`` names key and value.
        ``bases``: what each key's relative paths are relative to (see ``parse_model``)."""
        return parse_model(cls.Options, raw, f"backends.{name}", ConfigError, bases)

    @classmethod
    def check_job(cls, spec: JobSpec, options: BackendOptions) -> None:
        """Refuse, before anything is stored, a job this backend instance cannot run as asked
        (``InvalidSpec``). The default checks ``spec.backend_options`` against ``JobOptions``
        and refuses resources the class does not honour."""
        cls.job_options(spec)
        refuse_resources(cls, spec)

    @classmethod
    def job_options(cls, spec: JobSpec) -> BaseModel:
        return parse_model(cls.JobOptions, spec.backend_options, "backend_options", InvalidSpec)

    def call_counts(self) -> Mapping[str, int]:
        """Scheduler calls made so far, by command (the monitor reports them per cycle)."""
        return {}


class AsyncBackend(BackendBase, ABC):
    """A backend whose verbs are coroutines on the monitor's event loop."""

    async def start(self, report: Report) -> None:
        """Called before any other verb (and again after the backend was down); raise
        ``BackendUnavailable`` if it cannot work. ``report`` pushes event-driven observations."""
        return None

    async def serve(self) -> None:
        """Event-driven work, run beside the poll loop until cancelled (the default has none).
        If it raises, the backend is down and is restarted."""
        return None

    async def stop(self) -> None:
        """Release resources. Running jobs keep running."""
        return None

    @abstractmethod
    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        """Submit prepared attempts (idempotent per uuid, see the module docstring)."""

    @abstractmethod
    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        """One bulk status query for all given attempts: ``{uuid: observation}``."""

    @abstractmethod
    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        """Cancel all given attempts (one scheduler call where possible)."""

    @abstractmethod
    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """For attempts a crash left in ``submitting``: ``{uuid: native_id}`` of those the
        scheduler already has (found by ``Attempt.label``). The others are submitted again."""

    async def fetch_outputs(self, attempt: Attempt) -> None:
        """Bring the attempt's files into its attempt dir (the default: a shared filesystem)."""
        return None

    async def hold(self, attempts: Sequence[Attempt], reason: str) -> Mapping[str, str]:
        """Hold queued attempts in ONE scheduler call; returns ``{uuid: why not}`` for those it
        could not hold (e.g. already running). Default: ``HoldUnsupported``."""
        raise HoldUnsupported(f"backend {self.config.name} cannot hold jobs")

    async def release(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        """Release held attempts in one call; ``{uuid: why not}`` for failures."""
        raise HoldUnsupported(f"backend {self.config.name} cannot hold or release jobs")


class BlockingBackend(BackendBase, ABC):
    """A backend over a blocking client library: the same verbs as plain functions. Each
    instance runs them in its own limiter of ``threads`` threads; never on the loop."""

    blocking: ClassVar[bool] = True
    Options: ClassVar[type[BackendOptions]] = BlockingOptions
    options: BlockingOptions

    def start(self, report: Report) -> None:
        """``report`` may be called from any thread."""
        return None

    def serve(self, stopping: threading.Event) -> None:
        """Event-driven work in a thread of its own (outside the limiter) until ``stopping``."""
        return None

    def stop(self) -> None:
        return None

    @abstractmethod
    def submit(self, attempts: Sequence[Attempt]) -> Submitted: ...

    @abstractmethod
    def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]: ...

    @abstractmethod
    def cancel(self, attempts: Sequence[Attempt]) -> None: ...

    @abstractmethod
    def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]: ...

    def fetch_outputs(self, attempt: Attempt) -> None:
        return None

    def hold(self, attempts: Sequence[Attempt], reason: str) -> Mapping[str, str]:
        """As ``AsyncBackend.hold``, run in the limiter."""
        raise HoldUnsupported(f"backend {self.config.name} cannot hold jobs")

    def release(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        raise HoldUnsupported(f"backend {self.config.name} cannot hold or release jobs")


class ThreadedBackend(AsyncBackend):
    """A ``BlockingBackend`` seen as an ``AsyncBackend``: its verbs run in the instance's own
    bounded limiter, its ``serve`` in a dedicated thread, so two blocking backends never wait
    for each other's threads."""

    def __init__(self, inner: BlockingBackend) -> None:  # no super(): inner checked the options
        self.inner = inner
        self.can_hold = inner.can_hold  # type: ignore[misc]  # per instance: the inner class's
        self.config = inner.config
        self.options = inner.options
        self._limiter = ThreadPoolExecutor(
            max_workers=inner.options.threads, thread_name_prefix=f"corral-{inner.config.name}"
        )

    def call_counts(self) -> Mapping[str, int]:
        return self.inner.call_counts()

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._limiter, fn, *args)

    async def start(self, report: Report) -> None:
        loop = asyncio.get_running_loop()

        def threadsafe(obs: Observation) -> None:
            loop.call_soon_threadsafe(report, obs)

        await self._call(self.inner.start, threadsafe)

    async def serve(self) -> None:
        stopping = threading.Event()
        done = asyncio.get_running_loop().create_future()

        def body() -> None:
            try:
                self.inner.serve(stopping)
            except BaseException as exc:  # handed to the loop, which decides what it means
                done.get_loop().call_soon_threadsafe(_settle, done, exc)
            else:
                done.get_loop().call_soon_threadsafe(_settle, done, None)

        thread = threading.Thread(target=body, name=f"corral-{self.config.name}-serve", daemon=True)
        thread.start()
        try:
            await done
        finally:
            stopping.set()  # cancelled (the monitor stops) or ended: the thread sees it and returns

    async def stop(self) -> None:
        try:
            await self._call(self.inner.stop)
        finally:
            self._limiter.shutdown(wait=False, cancel_futures=True)

    async def submit(self, attempts: Sequence[Attempt]) -> Submitted:
        result: Submitted = await self._call(self.inner.submit, attempts)
        return result

    async def status(self, attempts: Sequence[Attempt]) -> Mapping[str, Observation]:
        result: Mapping[str, Observation] = await self._call(self.inner.status, attempts)
        return result

    async def cancel(self, attempts: Sequence[Attempt]) -> None:
        await self._call(self.inner.cancel, attempts)

    async def fetch_outputs(self, attempt: Attempt) -> None:
        await self._call(self.inner.fetch_outputs, attempt)

    async def reconcile(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        result: Mapping[str, str] = await self._call(self.inner.reconcile, attempts)
        return result

    async def hold(self, attempts: Sequence[Attempt], reason: str) -> Mapping[str, str]:
        result: Mapping[str, str] = await self._call(self.inner.hold, attempts, reason)
        return result

    async def release(self, attempts: Sequence[Attempt]) -> Mapping[str, str]:
        result: Mapping[str, str] = await self._call(self.inner.release, attempts)
        return result


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
