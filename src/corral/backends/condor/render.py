"""Attempts -> HTCondor submissions (pure): one cluster per group of attempts with the same
resources, each attempt one proc of it through ``itemdata``, and the constraints of every query.

Every proc carries two job attributes: ``CorralLabel`` (the attempt's label, so a crash between
the submit call and its commit is reconciled by one query) and ``CorralRegistry`` (the registry
uuid: short ids repeat across registries). A sweep of N points is ONE submit call.

In spool mode a job runs in HTCondor's scratch dir on the execute side, which sees none of the
submitter's files: ``condor-job.sh`` (rendered here, per attempt) is the executable, the attempt's
``sandbox`` dir, environment file and user script go in ``transfer_input_files``, and ``stdout``,
``stderr`` and the ``sandbox`` dir come back with ``retrieve()``. In shared mode the job runs the
attempt's own ``job.sh`` in its attempt dir and nothing is transferred.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from corral import environment
from corral.records import Attempt
from corral.sandbox import JOB_SCRIPT, SANDBOX, USER_SCRIPT
from corral.spec import JobSpec

LABEL = "CorralLabel"
REGISTRY = "CorralRegistry"
SCRIPT = "condor-job.sh"
"""The executable of a spool-mode job, in its attempt dir."""
MARKER = "condor-submit"
"""Written in the attempt dir before the submit call: a retried submit reconciles first."""
PROJECTION = [
    "ClusterId", "ProcId", "JobStatus", "HoldReasonCode", "HoldReasonSubCode", "HoldReason",
    "ExitCode", "ExitBySignal", "ExitSignal", "RemoveReason", "NumJobStarts", LABEL,
    "RemoteUserCpu", "RemoteSysCpu", "ResidentSetSize", "RemoteWallClockTime", "LastRemoteHost",
    "VacateReason",
]  # fmt: skip
"""The attributes every status query asks for (a projection: never whole job ads)."""
_UNSAFE = set('",\n\r\t$;')


@dataclass(frozen=True, slots=True)
class Group:
    """Attempts submitted by one call: one cluster, one proc per attempt (in this order)."""

    attempts: tuple[Attempt, ...]
    cpus: int
    memory_mb: int | None
    walltime: int | None
    requirements: str | None
    gpus: int | None = None

    def native_ids(self, cluster: int) -> dict[str, str]:
        return {a.uuid: f"{cluster}.{i}" for i, a in enumerate(self.attempts)}


def unsafe_path(path: Path) -> bool:
    """A path that cannot go into a submit description or a comma-separated file list."""
    return any(c in _UNSAFE for c in str(path))


def plan(attempts: Sequence[Attempt], requirements: str | None) -> list[Group]:
    """Group attempts by what the submit description holds for a whole cluster."""
    groups: dict[tuple[int, int | None, int | None, str | None, int | None], list[Attempt]] = {}
    for attempt in attempts:
        res = attempt.spec.resources
        job_req = attempt.spec.backend_options.get("requirements")
        parts = [r for r in (requirements, job_req) if isinstance(r, str) and r]
        req = " && ".join(f"({r})" for r in parts) or None
        key = (res.cpus, res.memory_mb, res.walltime, req, res.gpus or None)
        groups.setdefault(key, []).append(attempt)
    return [Group(tuple(members), *key) for key, members in groups.items()]


def description(group: Group, registry: str, mode: str) -> dict[str, str]:
    """The submit description of one cluster; per-proc values are itemdata macros."""
    desc = {
        "universe": "vanilla",
        "executable": "$(corral_exe)",
        "initialdir": "$(corral_dir)",
        "output": "stdout",
        "error": "stderr",
        "input": "/dev/null",
        "request_cpus": str(group.cpus),
        f"+{LABEL}": '"$(corral_label)"',
        f"+{REGISTRY}": f'"{registry}"',
        "batch_name": "corral",
    }
    if mode == "spool":
        desc.update(
            should_transfer_files="YES",
            when_to_transfer_output="ON_EXIT_OR_EVICT",
            transfer_input_files="$(corral_inputs)",
            transfer_output_files=SANDBOX,
            # as condor_submit -spool: a finished job waits in the queue for retrieve(), then goes
            leave_in_queue="(JobStatus == 4) && ((StageOutFinish =?= UNDEFINED) || "
            "(StageOutFinish == 0))",
        )
    else:
        desc.update(should_transfer_files="NO", getenv="False")
    if group.memory_mb is not None:
        desc["request_memory"] = str(group.memory_mb)
    if group.gpus:
        desc["request_gpus"] = str(group.gpus)
    if group.walltime is not None:
        desc["allowed_execute_duration"] = str(group.walltime)
    if group.requirements:
        desc["requirements"] = group.requirements
    return desc


def itemdata(group: Group, mode: str) -> list[dict[str, str]]:
    rows = []
    for attempt in group.attempts:
        exe = SCRIPT if mode == "spool" else JOB_SCRIPT
        row = {
            "corral_exe": str(attempt.attempt_dir / exe),
            "corral_dir": str(attempt.attempt_dir),
            "corral_label": attempt.label,
        }
        if mode == "spool":
            row["corral_inputs"] = ",".join(transfer_inputs(attempt.spec, attempt.attempt_dir))
        rows.append(row)
    return rows


def transfer_inputs(spec: JobSpec, attempt_dir: Path) -> list[str]:
    files = [str(attempt_dir / SANDBOX)]  # no trailing slash: the dir itself
    if spec.environment_file is not None:
        files.append(spec.environment_file)
    if spec.script is not None:
        files.append(str(attempt_dir / USER_SCRIPT))
    return files


def render_script(spec: JobSpec) -> str:
    """A spool-mode job's executable: the job as ``job.sh`` runs it, with every path relative
    to the scratch dir its inputs land in."""
    lines = ["#!/bin/sh", "# generated by corral: the job, run in HTCondor's scratch dir"]
    if spec.environment_file is not None:
        here = "./" + Path(spec.environment_file).name
        lines += environment.script_lines(spec.model_copy(update={"environment_file": here}))
    lines += list(spec.setup)
    lines += [f"export {key}={shlex.quote(value)}" for key, value in spec.environment.items()]
    lines.append(f"cd {SANDBOX} || exit 127")
    if spec.script is not None:
        argv = ["/bin/sh", f"../{USER_SCRIPT}"]
        if spec.script.startswith("#!"):
            lines.append(f"chmod 700 ../{USER_SCRIPT}")
            argv = [f"../{USER_SCRIPT}"]
    else:
        assert spec.command is not None
        argv = list(spec.command)
    argv += list(spec.arguments)
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines) + "\n"


def split_id(native_id: str) -> tuple[int, int]:
    cluster, _, proc = native_id.partition(".")
    return int(cluster), int(proc or 0)


def ids_constraint(native_ids: Iterable[str]) -> str:
    """``(ClusterId == 5 && member(ProcId, {0, 1})) || ...``: one clause per cluster."""
    by_cluster: dict[int, list[int]] = {}
    for native_id in native_ids:
        cluster, proc = split_id(native_id)
        by_cluster.setdefault(cluster, []).append(proc)
    clauses = [
        f"(ClusterId == {c} && member(ProcId, {{{', '.join(map(str, sorted(p)))}}}))"
        for c, p in sorted(by_cluster.items())
    ]
    return " || ".join(clauses) or "false"


def clusters_constraint(native_ids: Iterable[str]) -> str:
    clusters = sorted({split_id(n)[0] for n in native_ids})
    return f"member(ClusterId, {{{', '.join(map(str, clusters))}}})" if clusters else "false"


def labels_constraint(registry: str, labels: Iterable[str]) -> str:
    quoted = ", ".join(f'"{label}"' for label in sorted(labels))
    mine = f'{REGISTRY} == "{registry}" && ' if registry else ""
    return f"{mine}member({LABEL}, {{{quoted}}})"


def native_id(ad: Mapping[str, object]) -> str:
    return f"{ad.get('ClusterId')}.{ad.get('ProcId')}"
