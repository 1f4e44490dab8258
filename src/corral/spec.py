"""What to run: the immutable, validated job spec and its splitters.

A ``JobSpec`` is pure data (JSON/TOML round-trips); it never does I/O. Validation errors are turned
into ``InvalidSpec`` naming the field and the bad value, before anything is written.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from corral import inputs
from corral.errors import InvalidSpec

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_MEMORY_FACTOR = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def _parse_memory(value: object) -> object:
    """'2G', '512M', '512' (MB) or an int (MB) -> MB."""
    if isinstance(value, str):
        match = _MEMORY.match(value)
        if not match:
            raise ValueError(f"not a memory size like '512M' or '2G': {value!r}")
        number, unit = match.groups()
        return max(1, round(float(number) * _MEMORY_FACTOR[unit.upper()]))
    return value


def _parse_walltime(value: object) -> object:
    """'[D-]HH:MM:SS', 'MM:SS', '90s', '30m', '2h' or an int (seconds) -> seconds."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:].lower())
    if unit and text[:-1].isdigit():
        return int(text[:-1]) * unit
    days = 0
    if "-" in text:
        day_part, text = text.split("-", 1)
        days = int(day_part) if day_part.isdigit() else -1
    parts = text.split(":")
    if days < 0 or not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a walltime like '1:30:00' or '90m': {value!r}")
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return days * 86400 + seconds


MemoryMB = Annotated[int, BeforeValidator(_parse_memory), Field(ge=1)]
Seconds = Annotated[int, BeforeValidator(_parse_walltime), Field(ge=1)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Frozen):
    """What one job needs. Enforced by every backend, the local one included."""

    cpus: int = Field(default=1, ge=1, le=4096)
    memory_mb: MemoryMB | None = None
    walltime: Seconds | None = None


class ArgSplitter(_Frozen):
    """One subjob per argument list."""

    kind: Literal["args"] = "args"
    args: tuple[tuple[str, ...], ...] = Field(min_length=1)


class SweepSplitter(_Frozen):
    """The cartesian product over named parameters: ``{name}`` in arguments, ``NAME`` in env."""

    kind: Literal["sweep"] = "sweep"
    parameters: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], tuple[str, ...]]

    @model_validator(mode="after")
    def _non_empty(self) -> SweepSplitter:
        if not self.parameters:
            raise ValueError("a sweep needs at least one parameter")
        for name, values in self.parameters.items():
            if not values:
                raise ValueError(f"sweep parameter {name!r} has no values")
        return self


class FileSplitter(_Frozen):
    """Input files in chunks of ``chunk``; ``{files}`` in arguments expands to the chunk."""

    kind: Literal["files"] = "files"
    chunk: int = Field(default=1, ge=1)


Splitter = Annotated[ArgSplitter | SweepSplitter | FileSplitter, Field(discriminator="kind")]


class JobSpec(_Frozen):
    """Everything needed to run one job, anywhere."""

    name: Name = "job"
    command: tuple[str, ...] | None = None
    script: str | None = None
    arguments: tuple[str, ...] = ()
    environment: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}
    working_dir: str | None = None
    input_files: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    resources: Resources = Resources()
    max_attempts: int = Field(default=1, ge=1, le=100)
    tags: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = ()
    backend: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")] = "local"
    backend_options: dict[str, str | int | float | bool | list[str]] = {}
    splitter: Splitter | None = None
    environment_policy: Literal["submit", "clean"] | None = None
    """The submitter's environment ("submit") or a minimal one ("clean"); None: the backend's
    default (see ``corral.environment``)."""
    environment_file: str | None = None
    """Set at submit: the file holding the environment the job runs with."""

    @model_validator(mode="after")
    def _command_or_script(self) -> JobSpec:
        if (self.command is None) == (self.script is None):
            raise ValueError("give exactly one of 'command' (an argv list) or 'script' (text)")
        if self.command is not None and not self.command:
            raise ValueError("'command' must not be empty")
        if isinstance(self.splitter, FileSplitter) and not self.input_files:
            raise ValueError("a file splitter needs 'input_files'")
        inputs.check_places(self.input_files)
        for pattern in self.outputs:
            if pattern.startswith("/") or ".." in Path(pattern).parts:
                raise ValueError(f"output pattern must be relative to the job dir: {pattern!r}")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        message = item["msg"].removeprefix("Value error, ")
        bad = item.get("input")
        shown = "" if isinstance(bad, dict) else f" (got {bad!r})"
        parts.append(f"{where}: {message}{shown}")
    return "invalid job spec: " + "; ".join(parts)


def parse_spec(data: Mapping[str, Any]) -> JobSpec:
    """Validate a mapping into a ``JobSpec``, raising ``InvalidSpec`` with a one-line reason."""
    try:
        return JobSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidSpec(_describe(exc)) from exc


def load_spec(path: Path) -> JobSpec:
    """Read a job file (``.toml`` or ``.json``)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidSpec(f"cannot read job file {str(path)!r}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InvalidSpec(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidSpec(f"{path}: a job file must hold a table/object")
    return parse_spec(data)


def spec_from_json(text: str) -> JobSpec:
    """Rebuild a stored spec (trusted: it was validated before it was stored)."""
    return JobSpec.model_validate_json(text)
