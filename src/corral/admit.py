"""What a job must pass before anything is stored: the same checks for every way in.

``check_submit`` runs in ``store`` (``AsyncSession.submit``: the API, the shell, ``corral
submit``) and in ``corral submit --dry-run``, so a dry run says "valid" exactly when the real
submit would store the job, and does nothing else. The spec's own validation (``corral.spec``)
has run before: what is left here depends on the settings or on the machine (the subjob cap,
the input files, the backend and its options).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from corral import backends, environment, identity_files, inputs, paths
from corral.errors import InvalidSpec, LeaseLost
from corral.splitters import split

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.records import Attempt, JobId
    from corral.registry.interface import RegistryStore
    from corral.spec import JobSpec


def store(
    settings: Settings, registry: RegistryStore, spec: JobSpec, epoch: int | None
) -> tuple[JobId, list[Attempt]]:
    """Check, capture the environment, split and store, in one hop to the db thread (three
    hops made a submit a third slower): bad input fails here, before anything is stored. With
    ``epoch`` (this process's live monitor), the job is claimed for that monitor in the same
    transaction and its attempts are returned for it; else the monitor's intake finds it."""
    check_submit(settings, spec)
    spec = absolute_paths(spec)
    root = identity_files.job_root(settings.work_dir, registry.registry_uuid)
    spec = environment.capture(spec, settings.backend_kind(spec.backend), root / "env")
    subspecs = split(spec)
    if epoch is not None:
        with contextlib.suppress(LeaseLost):  # a newer monitor took over: its intake claims
            return registry.add_claimed(spec, subspecs, epoch)
    return registry.add(spec, subspecs), []


def absolute_paths(spec: JobSpec, cwd: str | None = None) -> JobSpec:
    """The spec with relative input files and working dir resolved against the submitter's
    ``cwd`` (default: the working directory now), now: the monitor that stages and runs the
    job later may work elsewhere (the daemon works in ``/``, or this process after a
    ``chdir``). Destinations in the sandbox are kept as the entries named them. ``InvalidSpec``
    if a path is relative and the working directory is gone."""
    files = tuple(_absolute_input(entry, cwd) for entry in spec.input_files)
    working_dir = spec.working_dir
    if working_dir is not None:
        working_dir = _absolute(working_dir, cwd, "working_dir")  # (as the CLI makes it)
    if files == spec.input_files and working_dir == spec.working_dir:
        return spec
    return spec.model_copy(update={"input_files": files, "working_dir": working_dir})


def _absolute(path: str, cwd: str | None, where: str) -> str:
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded):
        return str(Path(expanded))
    base = cwd if cwd is not None else paths.working_dir()
    if base is None:
        raise InvalidSpec(
            f"{where}: {path!r} is relative, but the current directory no longer exists"
        )
    return str(Path(base) / expanded)


def _absolute_input(entry: str, cwd: str | None) -> str:
    source, dest = inputs.place(entry)
    if os.path.isabs(source):
        return entry
    absolute = _absolute(source, cwd, "input_files")
    explicit = entry != source  # SRC:DEST (else DEST is SRC's name, the same once absolute)
    return f"{absolute}:{dest}" if explicit or ":" in absolute else absolute


def check_submit(settings: Settings, spec: JobSpec) -> None:
    """Refuse (``InvalidSpec``, ``ConfigError``; ``BackendUnavailable`` if its backend cannot
    load) a job that a submit must not store. Blocking (stats input files): call in a thread."""
    check_environment(spec)
    check_size(settings, spec)
    check_inputs(spec)
    backends.check_spec(settings, spec)


def check_environment(spec: JobSpec) -> None:
    """``CORRAL_*`` and ``SLURM_*`` are set by corral and the scheduler; a job's own value would
    be replaced or, worse, would replace theirs. (Checked here, not in the model: a stored
    subjob of a file splitter carries ``CORRAL_INPUT_FILES``.)"""
    for key in spec.environment:
        if key.upper().startswith(inputs.OWN_PREFIXES):
            raise InvalidSpec(
                f"environment: {key!r} is set by corral or the scheduler; choose another name"
            )


def check_size(settings: Settings, spec: JobSpec) -> None:
    """The subjob count, computed without making the subjobs, within ``max_subjobs``."""
    count = spec.subjob_count
    if count > settings.max_subjobs:
        raise InvalidSpec(
            f"splitter: {count:,} subjobs, more than max_subjobs ({settings.max_subjobs:,}); "
            "split the work into several submits or raise the setting"
        )


def check_inputs(spec: JobSpec) -> None:
    """Every input file exists now (the monitor stages it later, elsewhere)."""
    for entry in spec.input_files:
        name, _ = inputs.place(entry)  # SRC of SRC:DEST
        try:
            found = Path(name).is_file()
        except OSError as exc:  # (a name too long for this filesystem, a loop of links...)
            raise InvalidSpec(f"input_files: cannot use {name!r}: {exc.strerror}") from exc
        if not found:
            raise InvalidSpec(f"input_files: no such file: {name!r}")
