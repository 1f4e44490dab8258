"""Plan and render Grid Engine submissions (pure): attempts -> batches -> one qsub each.

Attempts that need the same qsub flags form one batch, submitted as ONE array job (``-t 1-N``;
a batch of one is a plain job). Array task ``SGE_TASK_ID`` (from 1) finds its attempt dir on
that line of the batch's task list; a plain job reads line 1. Every flag goes on qsub's command
line (none in ``#$`` lines, which a user's ``.sge_request`` could not override anyway), and the
script's header repeats them for the reader.

Resources: ``walltime`` -> ``-l h_rt``; ``memory`` -> ``-l h_vmem`` per slot (Grid Engine counts
it per slot); ``cpus`` x ``tasks_per_node`` x ``nodes`` slots > 1 -> ``-pe <pe> <slots>`` with the
parallel environment named by the ``pe`` option (refused without one: Grid Engine has no other
way to give a job several slots); ``gpus`` -> ``-l <gpu_resource>=N`` where the site names its
GPU consumable (refused otherwise).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.backends import batch as batchkit
from corral.backends.batch import OptionError as OptionError
from corral.records import Attempt
from corral.spec import Resources

SCRIPT = "sge-batch.sh"
TASKS = "sge-tasks"
ERRORS = "sge-errors"
MAX_ARRAY = 75_000
"""Grid Engine's default ``max_aj_tasks``; a bigger sweep is several arrays."""

JOB_OPTIONS = frozenset(
    {"queue", "project", "pe", "gpu_resource", "extra_qsub_args", "array_limit"}
)
_RESERVED = ("-N", "-t", "-o", "-e", "-j", "-terse", "-cwd", "-wd", "-S", "-b", "-sync", "-tc")


@dataclass(frozen=True, slots=True)
class QsubOptions:
    """The flags that decide where and how a job runs (batches are grouped by them)."""

    flags: tuple[str, ...]
    array_limit: int | None = None


Batch = batchkit.Batch[QsubOptions]


def slots(resources: Resources) -> int:
    return resources.cpus * (resources.tasks_per_node or 1) * (resources.nodes or 1)


def resource_flags(resources: Resources, merged: Mapping[str, Any]) -> list[str]:
    """The qsub flags for a job's resources; ``OptionError`` for what cannot be asked."""
    flags: list[str] = []
    count = slots(resources)
    if count > 1:
        pe = merged.get("pe")
        if not pe:
            raise OptionError(
                f"{count} slots (cpus x tasks_per_node x nodes) need a parallel environment on "
                'Grid Engine: set the backend option pe (e.g. pe = "smp")'
            )
        flags += ["-pe", _word("pe", pe), str(count)]
    if resources.walltime is not None:
        flags += ["-l", f"h_rt={resources.walltime}"]
    if resources.memory_mb is not None:
        flags += ["-l", f"h_vmem={math.ceil(resources.memory_mb / count)}M"]
    if resources.gpus:
        name = merged.get("gpu_resource")
        if not name:
            raise OptionError(
                "gpus on Grid Engine need the site's GPU resource: set the backend option "
                'gpu_resource (e.g. gpu_resource = "gpu")'
            )
        flags += ["-l", f"{_word('gpu_resource', name)}={resources.gpus}"]
    return flags


def _word(key: str, value: object) -> str:
    text = str(value)
    if not isinstance(value, str) or not text or any(c.isspace() or c in ",=" for c in text):
        raise OptionError(f"backend option {key!r} must be one word (got {value!r})")
    return text


def _extra(value: object) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise OptionError(f"backend option 'extra_qsub_args' must be a list of strings ({value!r})")
    for arg in value:
        if arg in _RESERVED:
            raise OptionError(f"extra_qsub_args: {arg!r} would override what corral sets")
        if "\n" in arg:
            raise OptionError(f"extra_qsub_args: newlines are not allowed: {arg!r}")
    return list(value)


def qsub_options(
    backend: Mapping[str, Any], job: Mapping[str, Any], resources: Resources
) -> QsubOptions:
    """The backend's options, overridden key by key by the job's; extra args add up."""
    for key in job:
        if key not in JOB_OPTIONS:
            raise OptionError(f"unknown sge backend option {key!r}")
    merged = {**backend, **job}
    flags = resource_flags(resources, merged)
    if merged.get("queue"):
        flags += ["-q", _word("queue", merged["queue"])]
    if merged.get("project"):
        flags += ["-P", _word("project", merged["project"])]
    flags += _extra(backend.get("extra_qsub_args", [])) + _extra(job.get("extra_qsub_args", []))
    limit = merged.get("array_limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise OptionError(f"backend option 'array_limit' must be a positive integer ({limit!r})")
    return QsubOptions(tuple(flags), limit)


def plan(
    attempts: Sequence[Attempt], backend: Mapping[str, Any], max_size: int = MAX_ARRAY
) -> tuple[list[Batch], dict[str, str]]:
    """Group attempts into batches; also return ``{uuid: reason}`` for those that cannot go."""

    def options_of(attempt: Attempt) -> QsubOptions:
        spec = attempt.spec
        return qsub_options(backend, spec.backend_options, spec.resources)

    return batchkit.plan(attempts, options_of, max_size)


def native_ids(batch: Batch, job_id: str) -> dict[str, str]:
    """``{uuid: native id}`` once qsub has answered with ``job_id`` (tasks count from 1)."""
    if not batch.is_array:
        return {batch.attempts[0].uuid: job_id}
    return {a.uuid: f"{job_id}.{i}" for i, a in enumerate(batch.attempts, start=1)}


def identity_flags(batch: Batch) -> list[str]:
    """What corral relies on: the label, no Grid Engine output files, one task per attempt."""
    flags = ["-N", batch.label, "-o", "/dev/null", "-e", "/dev/null", "-S", "/bin/sh"]
    if batch.is_array:
        flags += ["-t", f"1-{len(batch.attempts)}"]
        if batch.options.array_limit:
            flags += ["-tc", str(batch.options.array_limit)]
    return flags


def qsub_argv(batch: Batch) -> list[str]:
    return ["qsub", "-terse", *identity_flags(batch), *batch.options.flags, str(batch.dir / SCRIPT)]


WRAPPER = """\
# corral's Grid Engine wrapper: run one attempt's job.sh and record its start and exit in the
# attempt dir. A rescheduled job runs this again: each run takes the next free number (Grid
# Engine's RESTARTED is only 0 or 1, so a second reschedule would find the killed run's exit
# under its own number and the monitor would take it for this run's end).
umask 077
task=${{SGE_TASK_ID:-undefined}}
[ "$task" = undefined ] && task=1
dir=$(sed -n "${{task}}p" {tasks})
cd "$dir" 2>/dev/null || {{ echo "task $task: cannot enter '$dir'" >> {errors}; exit 125; }}
run=0
while [ -e {start}.$run ]; do run=$((run + 1)); done
id=$JOB_ID
[ "${{SGE_TASK_ID:-undefined}}" != undefined ] && id=$JOB_ID.$SGE_TASK_ID
echo "$(date +%s.%N) $id ${{HOSTNAME:-?}}" > {start}.$run.tmp
mv -f {start}.$run.tmp {start}.$run
# qdel and h_rt send TERM (with -notify USR2 first) before KILL: the flag tells the monitor that
# this end needs the scheduler's word on why.
terminated=0
trap 'terminated=1' TERM USR1 USR2
sh ./job.sh </dev/null >stdout 2>stderr
rc=$?
times > {usage}.$run.tmp 2>/dev/null && mv -f {usage}.$run.tmp {usage}.$run
echo "$rc $terminated $(date +%s.%N)" > {exit}.$run.tmp
mv -f {exit}.$run.tmp {exit}.$run
exit $rc
"""


def render_script(batch: Batch) -> str:
    """The job script every task runs; its header shows the qsub call."""
    call = " ".join(shlex.quote(flag) for flag in [*identity_flags(batch), *batch.options.flags])
    return batchkit.render_script(batch, f"qsub -terse {call}", [], WRAPPER, (TASKS, ERRORS))


def render_tasks(batch: Batch) -> str:
    """The task list: line N is the attempt dir of task N (a plain job reads line 1)."""
    return batchkit.render_tasks(batch.attempts)
