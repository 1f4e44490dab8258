"""The one exception tree of corral.

    CorralError                      root: every error corral raises on purpose
    ├── InvalidInput                 bad user input (spec, id, selection, config); nothing changed
    │   ├── InvalidSpec              a job spec failed validation (names the field and value)
    │   └── ConfigError              the config file or an environment variable is wrong
    ├── NotFound                     no job with that id
    ├── WaitTimeout                  ``wait`` gave up after its timeout (also a TimeoutError)
    ├── StateConflict                the verb does not apply to the job's current state
    ├── MonitorBusy                  another monitor holds the registry's lease
    ├── MonitorUnavailable           no monitor drives the registry and none could be started
    ├── LeaseLost                    this monitor was fenced out by a newer one
    ├── RegistryError                the registry cannot be opened, read or written
    │   └── StorageFull              no space left for the registry or job dirs (transient)
    └── BackendError                 a backend failed; ``transient`` says whether a retry may help
        ├── BackendUnavailable       the backend is down: it cannot load, start or answer
        │                            (tools missing, extra not installed, login needed, server
        │                            down). The monitor retries it; no job changes state for it.
        └── TransientBackendError    one call failed or timed out (retry later)

CLI exit codes map onto this tree in ``corral.cli``; anything else is an internal bug.
"""

from __future__ import annotations

from collections.abc import Mapping


class CorralError(Exception):
    """Root of every error corral raises on purpose."""


class InvalidInput(CorralError):
    """Bad user input; nothing was changed."""


class InvalidSpec(InvalidInput):
    """A job spec failed validation."""


class ConfigError(InvalidInput):
    """The configuration is invalid."""


class NotFound(CorralError):
    """No job matches the given id."""


class WaitTimeout(CorralError, TimeoutError):
    """``wait`` gave up before every job was final (the CLI's exit code 4). Also a builtin
    ``TimeoutError``, so ``except TimeoutError`` written for earlier versions still works."""


class StateConflict(CorralError):
    """The requested action does not apply to the job in its current state."""


class MonitorBusy(CorralError):
    """Another monitor already drives this registry."""


class MonitorUnavailable(CorralError):
    """No monitor drives the registry (it died, or autostart is off) and none could be started."""


class LeaseLost(CorralError):
    """A newer monitor took the lease; this one must stop writing."""


class RegistryError(CorralError):
    """The registry cannot be opened, read, written or migrated."""

    transient: bool = False


class BackendError(CorralError):
    """A backend failed. ``transient`` tells whether retrying may help."""

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
