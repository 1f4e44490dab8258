"""The one exception tree of corral.

    CorralError                      root: every error corral raises on purpose
    ├── InvalidInput                 bad user input (spec, id, selection, config); nothing changed
    │   ├── InvalidSpec              a job spec failed validation (names the field and value)
    │   └── ConfigError              the config file or an environment variable is wrong
    ├── NotFound                     no job with that id
    ├── StateConflict                the verb does not apply to the job's current state
    ├── MonitorBusy                  another monitor holds the registry's lease
    ├── LeaseLost                    this monitor was fenced out by a newer one
    ├── RegistryError                the registry cannot be opened or migrated
    └── BackendError                 a backend failed; ``transient`` says whether a retry may help
        ├── BackendUnavailable       unknown backend, or its tools are missing (permanent)
        └── TransientBackendError    a scheduler command failed or timed out (retry later)

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


class StateConflict(CorralError):
    """The requested action does not apply to the job in its current state."""


class MonitorBusy(CorralError):
    """Another monitor already drives this registry."""


class LeaseLost(CorralError):
    """A newer monitor took the lease; this one must stop writing."""


class RegistryError(CorralError):
    """The registry cannot be opened, read or migrated."""


class BackendError(CorralError):
    """A backend failed. ``transient`` tells whether retrying may help."""

    transient: bool = False


class BackendUnavailable(BackendError):
    """The backend does not exist or its tools are missing."""


class TransientBackendError(BackendError):
    """A scheduler command failed or timed out; the monitor retries with back-off.

    ``accepted`` (from ``submit``) maps the uuids that did go through before the failure to
    their native ids; only the others are retried.
    """

    transient = True

    def __init__(self, message: str, *, accepted: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.accepted: Mapping[str, str] = dict(accepted or {})
