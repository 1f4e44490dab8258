"""What a job must pass before anything is stored: the same checks for every way in.

``check_submit`` runs in ``AsyncSession.submit`` (the API, the shell, ``corral submit``) and in
``corral submit --dry-run``, so a dry run says "valid" exactly when the real submit would store
the job, and does nothing else. The spec's own validation (``corral.spec``) has run before: what
is left here depends on the settings or on the machine (the subjob cap, the input files, the
backend and its options).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from corral import backends, inputs
from corral.errors import InvalidSpec

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.spec import JobSpec


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
