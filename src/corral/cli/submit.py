"""``corral submit``: from a job file (TOML/JSON), or ``corral submit [options] -- cmd args...``.

The spec is built and validated completely (job file, flags, sweep or split, backend) before
anything is written, so bad input changes nothing. Relative input files and working dirs are
made absolute here, by ``admit.absolute_paths`` as a submit through the API makes them (a job
file's against its own directory, the flags' against the working directory), so ``--dry-run``
shows what a submit stores: the monitor that stages them runs elsewhere, in another directory.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from corral import views
from corral.cli import submit_options as o
from corral.cli.common import Json, emit_json, run, session, state, write_text
from corral.errors import InvalidInput
from corral.printable import printable

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.records import JobId
    from corral.registry.status import MonitorStatus
    from corral.spec import JobSpec

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# ASCII digits (\d also takes other scripts' digits), and few enough that int() stays cheap
_RANGE = re.compile(r"^(-?[0-9]{1,30})\.\.(-?[0-9]{1,30})(?:\.\.([0-9]{1,30}))?$")
_INTERPRETERS = {"python", "python3", "sh", "bash", "Rscript", "perl", "julia", "ruby", "node"}


def submit(
    ctx: typer.Context,
    job_file: o.JobFileFlag = None,
    backend: o.BackendFlag = None,
    name: o.NameFlag = None,
    tags: o.TagsFlag = None,
    cpus: o.CpusFlag = None,
    memory: o.MemoryFlag = None,
    walltime: o.WalltimeFlag = None,
    env: o.EnvFlag = None,
    inputs: o.InputsFlag = None,
    outputs: o.OutputsFlag = None,
    setup: o.SetupFlag = None,
    workdir: o.WorkdirFlag = None,
    script: o.ScriptFlag = None,
    sweep: o.SweepFlag = None,
    split: o.SplitFlag = None,
    options: o.OptionsFlag = None,
    max_attempts: o.MaxAttemptsFlag = None,
    dry_run: o.DryRunFlag = False,
    wait: o.WaitFlag = False,
    timeout: o.TimeoutFlag = None,
    quiet: o.QuietFlag = False,
    as_json: Json = False,
) -> None:
    """Submit a job file, or a command: corral submit [OPTIONS] -- CMD [ARGS]...

    --sweep makes one subjob per combination of values, --split one per line of a file.
    """
    from corral.cli import follow

    cli = state(ctx)
    given = locals()  # (the flag parameters, named as build_spec's keys)
    flags = {key: given[key] for key in o.SPEC_FLAGS}
    settings = cli.settings()
    spec = build_spec(job_file, cli.tail, flags, max_values=settings.max_subjobs)
    from corral import admit

    admit.check_submit(settings, spec)  # the real submit's checks, so --dry-run runs them too
    _hint_relative(spec)
    if dry_run:
        _dry_run(settings, spec, as_json)
        return
    job_id, count, status = run(_submit(settings, spec))
    if as_json:
        emit_json(views.submitted_view(job_id, count, spec.backend))
    elif quiet:
        print(job_id)
    else:
        print(
            f"submitted job {job_id}"
            + (f": {count} subjobs" if count else "")
            + f" on {spec.backend}"
        )
    _check_monitor(settings, job_id, spec.backend, status)
    if wait:
        raise typer.Exit(
            follow.wait_for(settings, [job_id], timeout=timeout, quiet=quiet or as_json)
        )


async def _submit(settings: Settings, spec: JobSpec) -> tuple[JobId, int, MonitorStatus | None]:
    from corral.errors import RegistryError

    async with session(settings, "daemon") as sess:
        job_id = await sess.submit(spec)
        try:  # (after the daemon the submit started, if any; hints never fail a submit)
            status = await sess.monitor_status()
        except RegistryError:
            status = None
    return job_id, spec.subjob_count, status


# ---------------------------------------------------------------- building the spec
def build_spec(
    job_file: Path | None,
    tail: list[str] | None,
    flags: dict[str, Any],
    *,
    max_values: int = 50_000,
) -> JobSpec:
    """The validated spec from a job file and/or the flags (flags win, lists are appended);
    a sweep range of more than ``max_values`` values is refused before it is made."""
    from corral.admit import absolute_paths
    from corral.spec import load_spec, parse_spec

    data: dict[str, Any] = {}
    if job_file is not None:
        if job_file.suffix not in (".toml", ".json"):
            raise InvalidInput(
                f"a job file ends in .toml or .json: {str(job_file)!r}; to run a "
                f"command, put it after --: corral submit -- {job_file}"
            )
        loaded = absolute_paths(load_spec(job_file), str(job_file.parent.absolute()))
        data = loaded.model_dump(exclude_unset=True)
    if tail is not None and not tail:
        raise InvalidInput(
            "nothing after '--': give the command to run, e.g. corral submit -- echo hello"
        )
    if tail and job_file is not None:
        raise InvalidInput("give a job file or a command after '--', not both")
    if tail and flags["script"] is not None:
        raise InvalidInput("give --script FILE or a command after '--', not both")
    if tail:
        data.pop("script", None)
        data["command"] = list(tail)
    _apply_flags(data, flags, max_values)
    if "command" not in data and "script" not in data:
        raise InvalidInput(
            "nothing to run: give a job file, --script FILE, or a command after "
            "'--' (corral submit -- echo hello)"
        )
    return absolute_paths(parse_spec(data))  # the flags' (the job file's are already)


def _apply_flags(data: dict[str, Any], f: dict[str, Any], max_values: int) -> None:
    for key, flag in (("backend", "backend"), ("name", "name"), ("max_attempts", "max_attempts")):
        if f[flag] is not None:
            data[key] = f[flag]
    resources = dict(data.get("resources") or {})
    for key, flag in (("cpus", "cpus"), ("memory_mb", "memory"), ("walltime", "walltime")):
        if f[flag] is not None:
            resources[key] = f[flag]
    if resources:
        data["resources"] = resources
    data["tags"] = [*data.get("tags", ()), *(f["tags"] or ())]
    data["outputs"] = [*data.get("outputs", ()), *(f["outputs"] or ())]
    data["setup"] = [*data.get("setup", ()), *(f["setup"] or ())]
    data["input_files"] = [*data.get("input_files", ()), *(f["inputs"] or ())]
    data["environment"] = {**data.get("environment", {}), **_pairs(f["env"], "--env")}
    data["backend_options"] = {**data.get("backend_options", {}), **_options(f["options"])}
    if f["workdir"] is not None:
        data["working_dir"] = str(f["workdir"])
    if f["script"] is not None:  # replaces a job file's command or script
        data.pop("command", None)
        data["script"] = _read(f["script"], "--script")
    if f["sweep"] and f["split"] is not None:
        raise InvalidInput("give --sweep or --split, not both (a job has one splitter)")
    if f["sweep"]:
        data["splitter"] = {"kind": "sweep", "parameters": parse_sweep(f["sweep"], max_values)}
    if f["split"] is not None:
        data["splitter"] = {"kind": "args", "args": parse_split(f["split"])}


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{flag} expects KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def _options(items: list[str] | None) -> dict[str, Any]:
    from corral.config import parse_value

    return {key: parse_value(value) for key, value in _pairs(items, "--option").items()}


def _read(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{flag}: cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{flag}: {str(path)!r} is not UTF-8 text (byte {exc.start})") from exc


def parse_sweep(items: list[str], max_values: int = 50_000) -> dict[str, list[str]]:
    """``["seed=1,2,3", "n=1..4"]`` -> ``{"seed": ["1", "2", "3"], "n": ["1", "2", "3", "4"]}``."""
    parameters: dict[str, list[str]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep:
            raise InvalidInput(
                f"--sweep {item!r}: expected NAME=V1,V2,... (e.g. --sweep seed=1,2,3)"
            )
        if not _NAME.match(name):
            raise InvalidInput(
                f"--sweep {item!r}: {name!r} is not a parameter name "
                "(letters, digits and _, not starting with a digit)"
            )
        if name in parameters:
            raise InvalidInput(f"--sweep {item!r}: parameter {name!r} is given twice")
        values = [v for part in text.split(",") for v in _expand(part.strip(), item, max_values)]
        if not values or "" in values:
            raise InvalidInput(
                f"--sweep {item!r}: every value must be non-empty (e.g. {name}=1,2,3)"
            )
        parameters[name] = values
    return parameters


def _expand(part: str, item: str, limit: int) -> list[str]:
    from corral.splitters import range_values

    match = _RANGE.match(part)
    if not match:
        return [part]
    start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
    try:
        return [str(v) for v in range_values(start, stop, step, limit)]
    except InvalidInput as exc:
        raise InvalidInput(f"--sweep {item!r}: {exc}") from None


def parse_split(path: Path) -> list[list[str]]:
    """One argument list per non-empty, non-comment line, split like a shell would."""
    lines: list[list[str]] = []
    for number, line in enumerate(_read(path, "--split").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            lines.append(shlex.split(line))
        except ValueError as exc:
            raise InvalidInput(f"--split {path}:{number}: {exc}") from exc
    if not lines:
        raise InvalidInput(f"--split {path}: no argument lines in it")
    return lines


# ---------------------------------------------------------------- checks and output
def _hint_relative(spec: JobSpec) -> None:
    if spec.working_dir is not None or spec.command is None:
        return
    staged = {Path(p).name for p in spec.input_files}
    for word in spec.command[:2]:
        if word not in staged and not Path(word).is_absolute() and Path(word).is_file():
            note = (
                f"note: jobs run in their own sandbox dir, where {word!r} is not; stage it with "
                f"-i {word} or run in this dir with --workdir ."
            )
            print(printable(note), file=sys.stderr)
            return
        if Path(word).name not in _INTERPRETERS:
            return


def _check_monitor(
    settings: Settings, job_id: JobId, backend: str, status: MonitorStatus | None
) -> None:
    """After a submit, say what will keep the job from moving: its backend is down, no monitor
    runs, or the last monitor died (the registry keeps its error)."""
    from corral import modes
    from corral.cli import health_view
    from corral.cli.common import ago

    if (loose := modes.home_warning(settings.home)) is not None:
        print(loose, file=sys.stderr)  # reported, never changed: it may be shared on purpose
    facts = health_view.facts_of(status)
    down = facts.latest_down(backend)
    if down is not None:
        seen = "" if facts.running is not None else f" (seen {ago(down.updated_at)})"
        reason = printable(down.reason or "no reason given")
        print(
            f"warning: backend {backend} is down: {reason}{seen}; job {job_id} will wait for it",
            file=sys.stderr,
        )
    if facts.running is not None:
        return
    death = health_view.death_note(facts)
    if death is not None:
        drive = "" if not settings.autostart else "; run 'corral monitor' to drive the jobs"
        print(f"warning: {death} (see {settings.log_path}){drive}", file=sys.stderr)
    if not settings.autostart:
        print(
            "note: autostart is off; 'corral monitor' or 'corral wait' will run the jobs",
            file=sys.stderr,
        )
    elif death is None:
        print(
            f"warning: the background monitor did not start (see {settings.log_path}); "
            "run 'corral monitor' to drive the jobs",
            file=sys.stderr,
        )


def _dry_run(settings: Settings, spec: JobSpec, as_json: bool) -> None:
    from itertools import islice

    from corral.sandbox import render_job_script
    from corral.splitters import iter_split

    count = spec.subjob_count
    # Only what is shown is made: a sweep at the max_subjobs cap is checked in well under a second.
    subjobs = list(islice(iter_split(spec), None if as_json else 5))
    first = subjobs[0] if subjobs else spec
    where = settings.work_dir / "NEW" / ("0" if subjobs else "") / "attempt-1"
    script = render_job_script(first, where)
    if as_json:
        emit_json(views.dry_run_view(spec, subjobs, script))
        return
    what = f"{count} subjobs" if count else "1 job"
    name = printable(repr(spec.name))
    print(f"valid: {what} named {name} on {spec.backend} (dry run: nothing submitted)")
    for i, sub in enumerate(subjobs):
        env = " ".join(f"{k}={v}" for k, v in sub.environment.items() if k not in spec.environment)
        argv = shlex.join([*(sub.command or ("<script>",)), *sub.arguments])
        print(printable(f"  .{i}  {argv}  {env}".rstrip()))
    if count > len(subjobs):
        print(f"  ... and {count - len(subjobs)} more")
    print(printable(f"--- the script{' of subjob .0' if subjobs else ''} ({where}/job.sh) ---"))
    write_text(script)
