"""Exit codes (DESIGN.md, "CLI contract") and the one-line error a user sees.

0   ok
1   a job failed or was killed
2   usage or bad input: InvalidInput (InvalidSpec, ConfigError), NotFound, StateConflict
3   backend or monitor unavailable: BackendError, MonitorBusy, MonitorUnavailable, LeaseLost,
    RegistryError (StorageFull: a full disk)
4   ``wait --timeout`` expired
70  internal error: anything that is not a CorralError is a bug, never disguised as bad input
130 interrupted (Ctrl-C)
"""

from __future__ import annotations

from corral.errors import (
    BackendError,
    CorralError,
    InvalidInput,
    LeaseLost,
    MonitorBusy,
    MonitorUnavailable,
    NotFound,
    RegistryError,
    StateConflict,
    WaitTimeout,
)

__all__ = [
    "INTERNAL",
    "INTERRUPTED",
    "JOB_FAILED",
    "OK",
    "TIMEOUT",
    "UNAVAILABLE",
    "USAGE",
    "ClickException",
    "NoArgsIsHelpError",
    "Unavailable",
    "UsageError",
    "WaitTimeout",
    "exit_code",
    "message",
]

OK = 0
JOB_FAILED = 1
USAGE = 2
UNAVAILABLE = 3
TIMEOUT = 4
INTERNAL = 70
INTERRUPTED = 130

try:  # typer >= 0.2x vendors click; older ones depend on it
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import (  # type: ignore[import-not-found,no-redef]
        ClickException,
        UsageError,
    )

    class NoArgsIsHelpError(UsageError):  # type: ignore[no-redef]
        """Older click prints the help itself and never raises this."""


class Unavailable(CorralError):
    """Something the command needs is missing (e.g. IPython for ``corral shell``)."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, WaitTimeout):
        return TIMEOUT
    if isinstance(exc, InvalidInput | NotFound | StateConflict | UsageError):
        return USAGE
    unavailable = BackendError | MonitorBusy | MonitorUnavailable | LeaseLost | RegistryError
    if isinstance(exc, unavailable | Unavailable):
        return UNAVAILABLE
    if isinstance(exc, CorralError):
        return USAGE
    if isinstance(exc, ClickException):
        return USAGE  # e.g. a file argument that cannot be opened
    return INTERNAL


def one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def message(exc: BaseException) -> str:
    """The single line printed on stderr (after ``corral: ``)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else "corral"
        return f"{one_line(exc.format_message())} (see '{where} --help')"
    if isinstance(exc, ClickException):
        return one_line(exc.format_message())
    if isinstance(exc, CorralError):
        return one_line(str(exc)) or type(exc).__name__
    detail = one_line(str(exc))
    return (
        f"internal error: {type(exc).__name__}{': ' + detail if detail else ''}; "
        "please report it (run again with --debug for the traceback)"
    )
