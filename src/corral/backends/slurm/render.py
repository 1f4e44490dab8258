"""Plan and render submissions (pure): attempts -> batches -> one batch script each.

Attempts that need the same sbatch options form one batch, and a batch is ONE ``sbatch --array``
(split only by the cluster's ``MaxArraySize``), whatever their arguments and environment: those
live in each attempt's ``job.sh``, and each array task finds its attempt dir on line
``SLURM_ARRAY_TASK_ID + 1`` of the batch's task list. The batch script and the task list are
written into the first attempt's dir, so they go away with the job.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.backends import batch as batchkit
from corral.backends.batch import OptionError as OptionError
from corral.backends.batch import chunk_ids as chunk_ids
from corral.backends.batch import render_tasks as render_task_list
from corral.records import Attempt
from corral.spec import Resources

SCRIPT = "slurm-batch.sh"
TASKS = "slurm-tasks"
ERRORS = "slurm-errors"

_VALUED = {
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "constraint": "--constraint",
}
JOB_OPTIONS = frozenset({*_VALUED, "extra_sbatch_args", "array_limit"})
"""Options a job's ``backend_options`` may set (the backend's own options may set them too)."""
BACKEND_OPTIONS = frozenset({*JOB_OPTIONS, "command_timeout", "lost_after"})
# Options corral itself relies on: a user setting them would break status files or reconcile.
_RESERVED = (
    "--job-name",
    "-J",
    "--array",
    "-a",
    "--output",
    "-o",
    "--error",
    "-e",
    "--chdir",
    "-D",
    "--parsable",
    "--wrap",
    "--open-mode",
)


@dataclass(frozen=True, slots=True)
class SbatchOptions:
    """The flags that decide where and how a job runs (batches are grouped by them)."""

    flags: tuple[str, ...]
    array_limit: int | None = None


Batch = batchkit.Batch[SbatchOptions]
"""Attempts submitted by one sbatch call; the first one's label names the Slurm job."""


def native_ids(batch: Batch, job_id: str) -> dict[str, str]:
    """``{uuid: native id}`` once sbatch has answered with ``job_id``."""
    if not batch.is_array:
        return {batch.attempts[0].uuid: job_id}
    return {a.uuid: f"{job_id}_{i}" for i, a in enumerate(batch.attempts)}


def time_limit(seconds: int) -> str:
    """Seconds -> ``D-HH:MM:SS`` (Slurm keeps minutes and rounds up)."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def resource_flags(resources: Resources) -> list[str]:
    flags = [f"--cpus-per-task={resources.cpus}"]
    if resources.nodes is not None:
        flags.append(f"--nodes={resources.nodes}")
    if resources.tasks_per_node is not None:
        flags.append(f"--ntasks-per-node={resources.tasks_per_node}")
    if resources.gpus:
        flags.append(f"--gres=gpu:{resources.gpus}")
    if resources.memory_mb is not None:
        flags.append(f"--mem={resources.memory_mb}M")
    if resources.walltime is not None:
        flags.append(f"--time={time_limit(resources.walltime)}")
    return flags


def _text(key: str, value: object) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or "\n" in str(value):
        raise OptionError(f"backend option {key!r} must be a single-line string (got {value!r})")
    return str(value)


def _extra(value: object) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise OptionError(
            f"backend option 'extra_sbatch_args' must be a list of strings (got {value!r})"
        )
    for arg in value:
        flag = arg.split("=", 1)[0]
        if flag in _RESERVED or any(flag.startswith(r) for r in _RESERVED if len(r) == 2):
            raise OptionError(f"extra_sbatch_args: {arg!r} would override what corral sets")
        if "\n" in arg or '"' in arg:
            raise OptionError(f"extra_sbatch_args: newlines and quotes are not allowed: {arg!r}")
    return list(value)


def check_options(options: Mapping[str, Any], allowed: frozenset[str] = JOB_OPTIONS) -> None:
    """Raise ``OptionError`` for an unknown key or a bad value (usable at spec validation)."""
    for key in options:
        if key not in allowed:
            raise OptionError(
                f"unknown slurm backend option {key!r} (known: {', '.join(sorted(allowed))})"
            )
    sbatch_options(options, {}, Resources())


def sbatch_options(
    backend: Mapping[str, Any], job: Mapping[str, Any], resources: Resources
) -> SbatchOptions:
    """The backend's options, overridden key by key by the job's; extra args add up."""
    merged = {**backend, **job}
    flags = resource_flags(resources)
    flags += [f"{flag}={_text(key, merged[key])}" for key, flag in _VALUED.items() if key in merged]
    flags += _extra(backend.get("extra_sbatch_args", [])) + _extra(job.get("extra_sbatch_args", []))
    limit = merged.get("array_limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise OptionError(
            f"backend option 'array_limit' must be a positive integer (got {limit!r})"
        )
    return SbatchOptions(tuple(flags), limit)


def plan(
    attempts: Sequence[Attempt], backend: Mapping[str, Any], max_array_size: int
) -> tuple[list[Batch], dict[str, str]]:
    """Group attempts into batches; also return ``{uuid: reason}`` for those that cannot go."""

    def options_of(attempt: Attempt) -> SbatchOptions:
        for key in attempt.spec.backend_options:
            if key not in JOB_OPTIONS:
                raise OptionError(f"unknown slurm backend option {key!r}")
        return sbatch_options(backend, attempt.spec.backend_options, attempt.spec.resources)

    return batchkit.plan(attempts, options_of, max_array_size)


def _directive(flag: str) -> str:
    # sbatch reads #SBATCH lines up to whitespace unless the text is double-quoted
    return f'#SBATCH "{flag}"' if any(c.isspace() for c in flag) else f"#SBATCH {flag}"


WRAPPER = """\
# corral's Slurm wrapper: run one attempt's job.sh and record its start and exit in the attempt
# dir. A requeued job runs this again, so the files are keyed by SLURM_RESTART_COUNT.
umask 077
task=${{SLURM_ARRAY_TASK_ID:-0}}
dir=$(sed -n "$((task + 1))p" {tasks})
cd "$dir" 2>/dev/null || {{ echo "task $task: cannot enter '$dir'" >> {errors}; exit 125; }}
run=${{SLURM_RESTART_COUNT:-0}}
id=$SLURM_JOB_ID
[ -n "${{SLURM_ARRAY_TASK_ID:-}}" ] && id=${{SLURM_ARRAY_JOB_ID}}_$SLURM_ARRAY_TASK_ID
echo "$(date +%s.%N) $id ${{SLURMD_NODENAME:-?}}" > {start}.$run.tmp
mv -f {start}.$run.tmp {start}.$run
# Slurm's TERM (cancel, time limit, requeue) reaches job.sh too; the flag tells the monitor that
# this end needs the scheduler's word on why.
terminated=0
trap 'terminated=1' TERM
sh ./job.sh </dev/null >stdout 2>stderr
rc=$?
times > {usage}.$run.tmp 2>/dev/null && mv -f {usage}.$run.tmp {usage}.$run
echo "$rc $terminated $(date +%s.%N)" > {exit}.$run.tmp
mv -f {exit}.$run.tmp {exit}.$run
exit $rc
"""


def identity_flags(batch: Batch) -> list[str]:
    """The flags corral relies on (the label, one task per attempt, no Slurm output file). They
    go on sbatch's command line, where no ``SBATCH_*`` variable of the user can override them."""
    flags = [f"--job-name={batch.label}", "--output=/dev/null"]
    if batch.is_array:
        limit = f"%{batch.options.array_limit}" if batch.options.array_limit else ""
        flags.append(f"--array=0-{len(batch.attempts) - 1}{limit}")
    return flags


def sbatch_argv(batch: Batch) -> list[str]:
    return ["sbatch", "--parsable", *identity_flags(batch), str(batch.dir / SCRIPT)]


def render_script(batch: Batch) -> str:
    """The batch script: the job's own sbatch directives, then the wrapper every task runs."""
    call = f"sbatch {' '.join(shlex.quote(flag) for flag in identity_flags(batch))}"
    directives = [_directive(flag) for flag in batch.options.flags]
    return batchkit.render_script(batch, call, directives, WRAPPER, (TASKS, ERRORS))


def render_tasks(batch: Batch) -> str:
    """The task list: line i + 1 is the attempt dir of array task i."""
    return render_task_list(batch.attempts)
