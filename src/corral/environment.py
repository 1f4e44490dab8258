"""The environment a job runs with: the submitter's, as it was at submit time.

``sbatch`` propagates the submitting shell's environment by default, and so does corral, for
every backend: at submit the session writes the environment to a file and the spec records its
path (``environment_file``); the job script sources it. So a job never runs with the environment
of whichever shell started the background monitor, and the environment never travels through the
scheduler client's own (one ``sbatch`` serves many jobs).

- The file is ``<work_dir>/<registry uuid>/env/<sha256>``, 0600, content-addressed: every job
  submitted from the same environment (a sweep of 1,000 subjobs, a loop of submits) shares one.
- ``CORRAL_*`` variables are removed, and so are names a shell cannot ``export``.
- ``environment_policy = "clean"`` in the spec keeps only HOME, USER, LOGNAME, SHELL, LANG and TZ
  and sets ``PATH=/usr/local/bin:/usr/bin:/bin``; the spec's own ``environment`` comes on top
  either way. Without a policy the backend's default applies: "submit" for local, Slurm, HTCondor
  and Grid Engine; "clean" for DIRAC (a grid job must not carry the submitter's PATH or tokens).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from corral import modes
from corral.errors import ConfigError, StorageFull

if TYPE_CHECKING:
    from corral.spec import JobSpec

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
CLEAN_KEEP = ("HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ")
CLEAN_DEFAULT = frozenset({"dirac"})
"""Backend kinds whose jobs get a clean environment unless the spec says otherwise."""
CLEAN_LAUNCH = "CORRAL_CLEAN_LAUNCH"
"""Set (to 1) where the job script starts with no environment but PATH: nothing to drop."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def policy(spec: JobSpec, kind: str) -> str:
    if spec.environment_policy is not None:
        return spec.environment_policy
    return "clean" if kind in CLEAN_DEFAULT else "submit"


def select(environ: Mapping[str, str], how: str) -> dict[str, str]:
    """What of ``environ`` a job gets (pure)."""
    if how == "clean":
        kept = {k: environ[k] for k in CLEAN_KEEP if k in environ}
        return {**kept, "PATH": CLEAN_PATH}
    return {
        k: v
        for k, v in environ.items()
        if _NAME.match(k) and not k.startswith("CORRAL_") and "\0" not in v
    }


def render(env: Mapping[str, str]) -> str:
    """A file ``sh`` can source: one ``export`` per variable, sorted, quoted."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))


def capture(
    spec: JobSpec, kind: str, env_dir: Path, environ: Mapping[str, str] | None = None
) -> JobSpec:
    """The spec with ``environment_file`` set to this process's environment, stored once
    (blocking I/O: call from a thread). An environment unchanged since the last submit is not
    rendered and hashed again (a loop of submits pays one ``stat``)."""
    how = policy(spec, kind)
    source = os.environ if environ is None else environ
    snapshot = tuple(source.items())
    last = _LAST.get((how, env_dir))
    path = last[1] if last is not None and last[0] == snapshot else None
    try:
        if path is None or not path.exists():
            text = render(select(source, how))
            path = env_dir / hashlib.sha256(text.encode()).hexdigest()
            if not path.exists():
                modes.makedirs(env_dir)
                modes.write_atomic(path, text)
            _LAST[(how, env_dir)] = (snapshot, path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(f"no space left to store the job's environment in {env_dir}") from exc
        raise ConfigError(
            f"work_dir: cannot store the job's environment in {env_dir}: {exc}"
        ) from exc
    return spec.model_copy(update={"environment_file": str(path)})


_LAST: dict[tuple[str, Path], tuple[tuple[tuple[str, str], ...], Path]] = {}
"""(policy, env dir) -> (the environment last captured, its file)."""


def script_lines(spec: JobSpec) -> list[str]:
    """The job script's lines that set the environment (before the spec's own variables)."""
    if spec.environment_file is None:
        return []
    quoted = shlex.quote(spec.environment_file)
    return [
        f"[ -f {quoted} ] || {{ echo 'corral: the environment file is gone: '{quoted} >&2; "
        "exit 127; }",
        # Exactly the captured environment: drop what the launcher carried (one sbatch, or the
        # monitor, is shared by many submitters), keeping only the scheduler's own variables.
        # Builtins and one subshell only: every exec costs a millisecond per job. The local
        # wrapper starts with PATH alone (``spawn_environment``): nothing to drop, no forks.
        f'[ "${{{CLEAN_LAUNCH}-}}" = 1 ] || '
        "for _corral_v in $(export -p | while read -r _w _r; do "
        '[ "$_w" = export ] && echo "${_r%%=*}"; done); do '
        'case "$_corral_v" in SLURM_*|SLURMD_*|SGE_*|_CONDOR_*|CORRAL_DEVICES) ;; '
        f'*) unset "$_corral_v" 2>/dev/null ;; esac; done; unset _corral_v {CLEAN_LAUNCH}',
        f". {quoted}",
        # GPUs the local backend assigned (corral.backends.local_gpus) win over captured ones
        '[ -z "${CORRAL_DEVICES:-}" ] || export CUDA_VISIBLE_DEVICES="$CORRAL_DEVICES"; '
        "unset CORRAL_DEVICES",
    ]


def spawn_environment(spec: JobSpec) -> Mapping[str, str]:
    """What a local wrapper starts with: a minimal one when the job script sets the captured
    environment (so nothing of the monitor's shell leaks in), else the monitor's own (jobs
    stored before environments were captured)."""
    if spec.environment_file is None:
        return os.environ
    return {"PATH": CLEAN_PATH, CLEAN_LAUNCH: "1"}
