"""Exit codes (DESIGN.md, "CLI contract") and the one-line error a user sees.

0   ok
1   a job failed or was killed
2   usage or bad input: the kinds bad_input, not_found, conflict (``corral.errors``), and
    click's usage errors
3   backend or monitor unavailable: the kind unavailable (StorageFull: a full disk)
4   ``wait --timeout`` expired: the kind timeout
70  internal error: anything that is not a CorralError is a bug, never disguised as bad input
130 interrupted (Ctrl-C)
"""

from __future__ import annotations

from corral.errors import CorralError, Kind, WaitTimeout, classify
from corral.printable import printable

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

    kind = "unavailable"


CODES: dict[Kind, int] = {
    "bad_input": USAGE,
    "not_found": USAGE,
    "conflict": USAGE,
    "unavailable": UNAVAILABLE,
    "timeout": TIMEOUT,
    "internal": INTERNAL,
}
"""Exit codes by the one classification of errors (``corral.errors.classify``)."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, ClickException):
        return USAGE  # e.g. a file argument that cannot be opened
    return CODES[classify(exc)]


def one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def message(exc: BaseException) -> str:
    """The single line printed on stderr (after ``corral: ``), control characters escaped (a
    message may quote a job's name, a file's text or a backend's answer)."""
    return printable(_message(exc))


def _message(exc: BaseException) -> str:
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
