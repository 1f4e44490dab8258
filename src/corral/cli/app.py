"""The ``corral`` command: global options, and every verb registered in one place."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from corral import __version__
from corral.cli.common import CliState
from corral.config import parse_value
from corral.errors import InvalidInput

HELP = """corral: define a job once, run it locally or on a cluster, and let one monitor watch
thousands of them.

Start with [bold]corral demo[/bold], then [bold]corral submit -- echo hello[/bold],
[bold]corral ls[/bold] and [bold]corral show ID[/bold]. Exit codes: 0 ok, 1 a job failed,
2 bad input, 3 backend or monitor unavailable, 4 wait timed out, 70 internal error."""

# verb -> (module, function). Only the verb being run is imported and registered: building
# every command costs Typer ~50 ms of the 0.5 s a cold `corral ls` may take.
COMMANDS = {
    "submit": ("submit", "submit"),
    "ls": ("listing", "ls"),
    "show": ("listing", "show"),
    "peek": ("follow", "peek"),
    "wait": ("follow", "wait"),
    "kill": ("control", "kill"),
    "hold": ("holds_cmd", "hold"),
    "release": ("holds_cmd", "release"),
    "resubmit": ("control", "resubmit"),
    "rm": ("control", "rm"),
    "copy": ("control", "copy"),
    "gc": ("control", "gc"),
    "monitor": ("monitor_cmd", "monitor"),
    "shell": ("shell", "shell"),
    "demo": ("demo", "demo"),
    "plugins": ("config_cmd", "plugins"),
    "config": ("config_cmd", ""),
}


def build(only: str | None = None) -> typer.Typer:
    """The command tree: every verb, or only ``only`` (the one about to run)."""
    app = typer.Typer(
        name="corral",
        help=HELP,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    app.callback()(root)
    for name, (module_name, function) in COMMANDS.items():
        if only not in (None, name):
            continue
        module = importlib.import_module(f"corral.cli.{module_name}")
        if function:
            app.command(name)(getattr(module, function))
        else:
            app.add_typer(module.config_app, name=name)
    return app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"corral {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Use this CORRAL_HOME (registry, jobs, config.toml) for this command.",
            show_default=False,
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a setting for this command, e.g. "
            "idle_exit=10 or backends.local.max_cpus=4 (see corral config show).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of errors.", envvar="CORRAL_DEBUG")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    obj = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    ctx.obj = obj
    obj.debug = debug
    if obj.tail is not None and ctx.invoked_subcommand != "submit":
        raise InvalidInput("only 'corral submit' takes a command after '--'")
    if home is not None:
        obj.overrides["home"] = home.expanduser().absolute()
    for item in settings or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set expects KEY=VALUE, got {item!r}")
        obj.overrides[key.strip()] = parse_value(value.strip())
