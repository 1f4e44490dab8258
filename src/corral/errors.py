"""The one exception tree of corral.

    CorralError                      root: every error corral raises on purpose
    ├── InvalidInput                 bad user input (spec, id, selection, config); nothing changed
    │   ├── InvalidSpec              a job spec failed validation (names the field and value)
    │   └── ConfigError              the config file or an environment variable is wrong
    ├── NotFound                     no job with that id
    ├── WaitTimeout                  ``wait`` gave up after its timeout (also a TimeoutError)
    ├── StateConflict                the verb does not apply to the job's current state
    │   └── HoldUnsupported          the job's backend cannot hold or release jobs
    ├── MonitorBusy                  another monitor holds the registry's lease
    ├── MonitorUnavailable           no monitor drives the registry and none could be started
    ├── MonitorNotStopped            the running monitor could not be stopped (no permission
    │                                to signal it, or it did not stop in time)
    ├── LeaseLost                    this monitor was fenced out by a newer one
    ├── RegistryError                the registry cannot be opened, read or written
    │   ├── StorageFull              no space left for the registry or job dirs (transient)
    │   ├── WriteConflict            a compare-and-set lost a race (retried by the registry)
    │   └── RegistryMismatch         the registry is not the one its home or work_dir knew
    └── BackendError                 a backend failed; ``transient`` says whether a retry may help
        ├── BackendUnavailable       the backend is down: it cannot load, start or answer
        │                            (tools missing, extra not installed, login needed, server
        │                            down). The monitor retries it; no job changes state for it.
        ├── TransientBackendError    one call failed or timed out (retry later)
        │   ├── WorkerDied           an isolated worker (``corral.isolate``) died mid-call
        │   └── CallTimedOut         an isolated call ran past its timeout
        └── RemoteError              a call in an isolated worker raised: its type and message

Every error has one ``kind`` (``classify``): what went wrong, for whoever answers it. CLI exit
codes map from it (``corral.cli.errors``), and so will a REST API's HTTP statuses:

    kind          exit   HTTP (later)   raised as
    bad_input     2      400            InvalidInput (InvalidSpec, ConfigError)
    not_found     2      404            NotFound
    conflict      2      409            StateConflict
    unavailable   3      503            MonitorBusy, MonitorUnavailable, MonitorNotStopped,
                                        LeaseLost, RegistryError (StorageFull), BackendError
    timeout       4      504            a wait that expired (the CLI's WaitTimeout)
    internal      70     500            anything that is not a CorralError: a bug
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

Kind = Literal["bad_input", "not_found", "conflict", "unavailable", "timeout", "internal"]


class CorralError(Exception):
    """Root of every error corral raises on purpose."""

    kind: ClassVar[Kind] = "bad_input"


def classify(exc: BaseException) -> Kind:
    """The one classification of an error that ended a verb (``internal``: not ours, a bug)."""
    return exc.kind if isinstance(exc, CorralError) else "internal"


class InvalidInput(CorralError):
    """Bad user input; nothing was changed."""


class InvalidSpec(InvalidInput):
    """A job spec failed validation."""


class ConfigError(InvalidInput):
    """The configuration is invalid."""


class NotFound(CorralError):
    """No job matches the given id."""

    kind: ClassVar[Kind] = "not_found"


class WaitTimeout(CorralError, TimeoutError):
    """``wait`` gave up before every job was final (the CLI's exit code 4). Also a builtin
    ``TimeoutError``, so ``except TimeoutError`` written for earlier versions still works."""

    kind: ClassVar[Kind] = "timeout"


class StateConflict(CorralError):
    """The requested action does not apply to the job in its current state."""

    kind: ClassVar[Kind] = "conflict"


class HoldUnsupported(StateConflict):
    """The backend cannot hold or release jobs (``BackendBase.can_hold`` is false)."""


class MonitorBusy(CorralError):
    """Another monitor already drives this registry."""

    kind: ClassVar[Kind] = "unavailable"


class MonitorUnavailable(CorralError):
    """No monitor drives the registry (it died, or autostart is off) and none could be started."""

    kind: ClassVar[Kind] = "unavailable"


class MonitorNotStopped(CorralError):
    """``stop_monitor`` could not stop the monitor: no permission to signal its process, or it
    still held the registry's lock when the timeout ran out."""

    kind: ClassVar[Kind] = "unavailable"


class LeaseLost(CorralError):
    """A newer monitor took the lease; this one must stop writing."""

    kind: ClassVar[Kind] = "unavailable"


class RegistryError(CorralError):
    """The registry cannot be opened, read, written or migrated."""

    kind: ClassVar[Kind] = "unavailable"

    transient: bool = False


class WriteConflict(RegistryError):
    """Another writer changed a row between this transaction's read and its compare-and-set
    write; nothing was written, and the registry retries the transaction."""

    transient = True


class RegistryMismatch(RegistryError):
    """The registry's uuid differs from the one recorded next to it (``registry-id``) or in its
    ``work_dir`` marker: it was emptied or replaced, and its job dirs are not its own."""


class BackendError(CorralError):
    """A backend failed. ``transient`` tells whether retrying may help."""

    kind: ClassVar[Kind] = "unavailable"

    transient: bool = False


class StorageFull(RegistryError):
    """No space left on the device of the registry or of the job dirs. Transient: the monitor
    backs off and goes on once space returns; a command exits 3."""

    transient = True


class BackendUnavailable(BackendError):
    """The backend is down: it cannot load, start or answer. Not a verdict on any job."""


class TransientBackendError(BackendError):
    """A scheduler command failed or timed out; the monitor retries with back-off.

    ``accepted`` (from ``submit``) maps the uuids that did go through before the failure to
    their native ids and ``refused`` those refused for good; only the others are retried.
    """

    transient = True

    def __init__(
        self,
        message: str,
        *,
        accepted: Mapping[str, str] | None = None,
        refused: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.accepted: Mapping[str, str] = dict(accepted or {})
        self.refused: Mapping[str, str] = dict(refused or {})


class WorkerDied(TransientBackendError):
    """An isolated worker process died (or was recycled) while the call was in flight."""


class CallTimedOut(TransientBackendError):
    """An isolated call ran past its timeout; its worker thread was abandoned."""


class RemoteError(BackendError):
    """A call inside an isolated worker raised; ``type`` is the exception's class name there
    (the foreign library's classes never cross the boundary)."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(f"{type_}: {message}" if message else type_)
        self.type = type_
        self.remote_message = message
