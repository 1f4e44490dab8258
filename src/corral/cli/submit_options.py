"""The options of ``corral submit``, one type alias each, so the verb's signature stays short."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _opt(*names: str, help: str, metavar: str | None = None) -> Any:
    return typer.Option(*names, help=help, metavar=metavar, show_default=False)


SPEC_FLAGS = (
    "backend",
    "name",
    "tags",
    "cpus",
    "memory",
    "walltime",
    "env",
    "inputs",
    "outputs",
    "setup",
    "workdir",
    "script",
    "sweep",
    "split",
    "options",
    "max_attempts",
)
"""The flags that shape the spec (``submit.build_spec`` reads them by these names)."""

JobFileFlag = Annotated[
    Path | None,
    typer.Argument(
        metavar="JOBFILE",
        help="A job file (.toml or .json); or give the command after --.",
        show_default=False,
    ),
]

BackendFlag = Annotated[
    str | None, _opt("--backend", "-b", metavar="NAME", help="Where to run (default: local).")
]

NameFlag = Annotated[str | None, _opt("--name", "-n", metavar="NAME", help="A name for the job.")]

TagsFlag = Annotated[
    list[str] | None, _opt("--tag", "-t", metavar="TAG", help="A tag (repeatable).")
]

CpusFlag = Annotated[int | None, _opt("--cpus", "-c", metavar="N", help="Cpus per job.")]

MemoryFlag = Annotated[
    str | None, _opt("--memory", "-m", metavar="SIZE", help="Memory per job: 512M, 2G.")
]

WalltimeFlag = Annotated[
    str | None, _opt("--walltime", "-w", metavar="TIME", help="Time limit: 90m, 1:30:00.")
]

EnvFlag = Annotated[
    list[str] | None,
    _opt("--env", "-e", metavar="KEY=VALUE", help="An environment variable (repeatable)."),
]

InputsFlag = Annotated[
    list[str] | None,
    _opt("--input", "-i", metavar="FILE", help="Copy FILE into the job's sandbox (repeatable)."),
]

OutputsFlag = Annotated[
    list[str] | None,
    _opt("--output", "-o", metavar="PATTERN", help="Collect files matching PATTERN (repeatable)."),
]

SetupFlag = Annotated[
    list[str] | None,
    _opt("--setup", metavar="LINE", help="A shell line run before the job (repeatable)."),
]

WorkdirFlag = Annotated[
    Path | None,
    _opt("--workdir", metavar="DIR", help="Run in DIR instead of the job's own sandbox dir."),
]

ScriptFlag = Annotated[
    Path | None,
    _opt("--script", metavar="FILE", help="Run this script (its text is stored with the job)."),
]

SweepFlag = Annotated[
    list[str] | None,
    _opt(
        "--sweep",
        metavar="NAME=V1,V2",
        help="One subjob per combination (repeatable: cartesian product): {name} is "
        "replaced in the command, $NAME exported; ranges like 1..10 or 0..100..5.",
    ),
]

SplitFlag = Annotated[
    Path | None,
    _opt("--split", metavar="FILE", help="One subjob per line of FILE (shell-quoted arguments)."),
]

OptionsFlag = Annotated[
    list[str] | None,
    _opt("--option", "-O", metavar="KEY=VALUE", help="A backend option, e.g. partition=short."),
]

MaxAttemptsFlag = Annotated[
    int | None, _opt("--max-attempts", metavar="N", help="Retry a failed job up to N attempts.")
]

DryRunFlag = Annotated[
    bool, typer.Option("--dry-run", help="Validate and show what would run; submit nothing.")
]

WaitFlag = Annotated[bool, typer.Option("--wait", help="Then wait for the job (like corral wait).")]

TimeoutFlag = Annotated[
    float | None,
    _opt("--timeout", metavar="SECONDS", help="With --wait: give up after this many seconds."),
]

QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the new job id.")]
