"""Job specs as JDL text, and back (pure).

DIRAC's JDL is a ClassAd: ``Name = value;`` lines, strings in double quotes, lists in braces.
Only what corral renders is parsed back (the test pilot reads it; no DiracX route returns a job's
JDL). A DIRAC job's environment is clean by default: only the spec's own ``environment`` goes in.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from corral.spec import JobSpec

SCRIPT = "corral-script"
"""The name a spec's inline script has in the input sandbox."""
STDOUT = "stdout"
STDERR = "stderr"
MAX_JOB_NAME = 128


@dataclass(frozen=True, slots=True)
class Placement:
    site: Sequence[str] = ()
    banned_sites: Sequence[str] = ()
    tags: Sequence[str] = ()
    platform: str | None = None
    cpu_time: int | None = None


@dataclass(frozen=True, slots=True)
class JobDescription:
    """What one DIRAC job is, before it is text."""

    job_name: str
    job_group: str
    executable: str
    arguments: Sequence[str] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    input_sandbox: Sequence[str] = ()
    output_sandbox: Sequence[str] = ()
    placement: Placement = Placement()


def describe(
    spec: JobSpec, label: str, group: str, placement: Placement, sandbox_pfn: str | None
) -> JobDescription:
    """The description of an attempt's job; ``sandbox_pfn`` is its uploaded input sandbox."""
    if spec.script is not None:
        if spec.script.startswith("#!"):
            executable, arguments = SCRIPT, list(spec.arguments)
        else:
            executable, arguments = "/bin/sh", [SCRIPT, *spec.arguments]
    else:
        assert spec.command is not None
        executable, arguments = spec.command[0], [*spec.command[1:], *spec.arguments]
    cpu_time = placement.cpu_time
    if cpu_time is None and spec.resources.walltime is not None:
        cpu_time = spec.resources.walltime * spec.resources.cpus
    return JobDescription(
        job_name=label,
        job_group=group,
        executable=executable,
        arguments=arguments,
        environment=dict(spec.environment),
        input_sandbox=[sandbox_pfn] if sandbox_pfn else [],
        output_sandbox=[STDOUT, STDERR, *spec.outputs],
        placement=Placement(
            placement.site,
            placement.banned_sites,
            placement.tags,
            placement.platform,
            cpu_time,
        ),
    )


def quote(value: str) -> str:
    """A JDL string literal. Control characters have no escape in ClassAds: refused upstream."""
    if any(ord(c) < 0x20 for c in value):
        raise ValueError(f"control character in a JDL value: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(values: Sequence[str]) -> str:
    return "{" + ", ".join(quote(v) for v in values) + "}"


def render(job: JobDescription) -> str:
    """The JDL text of one job (keys in a fixed order, so a ticket compares byte for byte)."""
    lines = [
        f"JobName = {quote(job.job_name)};",
        f"JobGroup = {quote(job.job_group)};",
        f"Executable = {quote(job.executable)};",
    ]
    if job.arguments:
        lines.append(f"Arguments = {quote(shlex.join(job.arguments))};")
    if job.environment:
        pairs = [f"{key}={value}" for key, value in sorted(job.environment.items())]
        lines.append(f"Environment = {_list(pairs)};")
    lines.append(f"StdOutput = {quote(STDOUT)};")
    lines.append(f"StdError = {quote(STDERR)};")
    if job.input_sandbox:
        lines.append(f"InputSandbox = {_list(job.input_sandbox)};")
    lines.append(f"OutputSandbox = {_list(job.output_sandbox)};")
    place = job.placement
    if place.site:
        lines.append(f"Site = {_list(place.site)};")
    if place.banned_sites:
        lines.append(f"BannedSite = {_list(place.banned_sites)};")
    if place.tags:
        lines.append(f"Tags = {_list(place.tags)};")
    if place.platform:
        lines.append(f"Platform = {quote(place.platform)};")
    if place.cpu_time is not None:
        lines.append(f"CPUTime = {place.cpu_time};")
    return "\n".join(lines) + "\n"


_ATTR = re.compile(r"^\s*(\w+)\s*=\s*(.*?);\s*$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse(text: str) -> dict[str, str | int | list[str]]:
    """The attributes of a JDL that ``render`` wrote: strings, integers and string lists."""
    result: dict[str, str | int | list[str]] = {}
    for line in text.splitlines():
        match = _ATTR.match(line)
        if not match:
            continue
        key, raw = match.groups()
        if raw.startswith("{"):
            result[key] = [_unquote(s) for s in _STRING.findall(raw)]
        elif raw.startswith('"'):
            found = _STRING.fullmatch(raw)
            result[key] = _unquote(found.group(1)) if found else raw
        else:
            result[key] = int(raw) if raw.lstrip("-").isdigit() else raw
    return result


def environment(attrs: Mapping[str, object]) -> dict[str, str]:
    """``Environment = {"K=V", ...}`` as a dict."""
    pairs = attrs.get("Environment", [])
    assert isinstance(pairs, list)
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)
