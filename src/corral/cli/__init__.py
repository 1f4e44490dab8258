"""The ``corral`` command line: ``main`` maps every outcome to an exit code and one line.

Verbs live in modules by group (submit, listing, control, follow, monitor_cmd, config_cmd,
shell, demo); ``app`` registers them. Exit codes are documented in ``corral.cli.errors`` and
docs/cli.md.
"""

from __future__ import annotations

import os
import sys


def split_tail(args: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``corral submit [options] -- cmd args...`` at the first ``--``: the command after
    it is kept verbatim (options after ``--`` belong to the job, not to corral)."""
    if "--" not in args:
        return args, None
    at = args.index("--")
    return args[:at], args[at + 1 :]


def _verb(args: list[str]) -> str | None:
    """The first word that is not a global option or its value."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--home", "--set"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _wants_debug(args: list[str]) -> bool:
    return "--debug" in args or os.environ.get("CORRAL_DEBUG", "").lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (the console script exits with it)."""
    args, tail = split_tail(list(sys.argv[1:] if argv is None else argv))
    debug = _wants_debug(args)
    try:
        from corral.cli import fast

        code = fast.ls(args) if tail is None else None  # a plain `corral ls`, without Typer
        return _full(args, tail, debug) if code is None else code
    except BaseException as exc:  # the one boundary where every failure becomes an exit code
        return _failed(exc, debug)


def _full(args: list[str], tail: list[str] | None, debug: bool) -> int:
    import typer

    from corral.cli.app import COMMANDS, build
    from corral.cli.common import CliState
    from corral.cli.errors import INTERRUPTED

    verb = _verb(args)
    command = typer.main.get_command(build(verb if verb in COMMANDS else None))
    result = command.main(
        args=args,
        prog_name="corral",
        standalone_mode=False,
        obj=CliState(tail=tail, debug=debug),
    )
    code = result if isinstance(result, int) else 0
    if code == INTERRUPTED:
        print("corral: interrupted", file=sys.stderr)
    return code


def _failed(exc: BaseException, debug: bool) -> int:
    from corral.cli.errors import NoArgsIsHelpError, exit_code, message

    if isinstance(exc, NoArgsIsHelpError):
        print(exc.format_message())
        return 0
    if isinstance(exc, SystemExit):  # e.g. a closed pipe (`corral ls | head`)
        return exc.code if isinstance(exc.code, int) else 1
    cause = _unwrap(exc)
    print(f"corral: {message(cause)}", file=sys.stderr)
    if debug:
        import traceback  # (not imported up front: a cold `corral ls` never needs it)

        traceback.print_exception(exc)
    return exit_code(cause)


def _unwrap(exc: BaseException) -> BaseException:
    """A task group wraps what failed inside it; one wrapped error is reported as itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
