"""What to run: the immutable, validated job spec and its splitters.

A ``JobSpec`` is pure data (JSON/TOML round-trips); it never does I/O. Validation errors are turned
into ``InvalidSpec`` naming the field and the bad value, before anything is written.
"""

from __future__ import annotations

import functools
import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from corral import inputs
from corral.errors import InvalidSpec

_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)i?B?\s*$", re.IGNORECASE)
_MEMORY_FACTOR = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes other scripts' digits

MAX_CPUS = 100_000
MAX_MEMORY_MB = 1024**3  # 1 PiB
MAX_WALLTIME = 365 * 86400  # one year
MAX_CHUNK = 1_000_000
MAX_GPUS = 1024
MAX_NODES = 100_000


def _parse_memory(value: object) -> object:
    """'2G', '512M', '512' (MB) or an int (MB) -> MB."""
    inputs.not_bool(value)
    if isinstance(value, str):
        match = _MEMORY.match(value)
        if not match:
            raise ValueError(f"not a memory size like '512M' or '2G': {inputs.shown(value)}")
        number, unit = match.groups()
        megabytes = float(number) * _MEMORY_FACTOR[unit.upper()]
        if not megabytes <= MAX_MEMORY_MB:  # (also inf from a 400-digit number)
            raise ValueError("memory above 1 PiB")
        return max(1, round(megabytes))
    return inputs.finite(value)


def _parse_walltime(value: object) -> object:
    """'[D-]HH:MM:SS', 'MM:SS', '90s', '30m', '2h' or an int (seconds) -> seconds."""
    inputs.not_bool(value)
    if not isinstance(value, str):
        return inputs.finite(value)
    text = value.strip()
    if len(text) > 40:  # (int() of thousands of digits is slow, and no walltime needs them)
        raise ValueError(f"not a walltime like '1:30:00' or '90m': {inputs.shown(value)}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:].lower())
    if unit and _DIGITS.fullmatch(text[:-1]):
        return int(text[:-1]) * unit
    days = 0
    if "-" in text:
        day_part, text = text.split("-", 1)
        days = int(day_part) if _DIGITS.fullmatch(day_part) else -1
    parts = text.split(":")
    if days < 0 or not 1 <= len(parts) <= 3 or not all(_DIGITS.fullmatch(p) for p in parts):
        raise ValueError(f"not a walltime like '1:30:00' or '90m': {inputs.shown(value)}")
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return days * 86400 + seconds


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _tag(value: str) -> str:
    if "," in value or _CONTROL.search(value):
        raise ValueError("a tag has no commas or control characters")
    return inputs.check_text(value)


def _option_value(value: object) -> object:
    """One checked type, one message (a union of pydantic types reports every member)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -inputs.MAX_ID - 1 <= value <= inputs.MAX_ID:
            raise ValueError("integer out of the 64-bit range")
        return value
    if isinstance(value, float):
        return inputs.finite(value)
    if isinstance(value, str):
        return inputs.check_text(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [inputs.check_text(v) for v in value]
    raise ValueError("expected text, a number, true/false or a list of text")


def _program(value: tuple[str, ...]) -> tuple[str, ...]:
    if value and not value[0].strip():
        raise ValueError("the program (first word of 'command') must not be empty")
    return value


# Every string of a spec is Text: valid UTF-8, no NUL (see corral.inputs.text_problem).
Text = Annotated[str, AfterValidator(inputs.check_text)]
PathText = Annotated[str, Field(min_length=1), AfterValidator(inputs.check_path)]
MemoryMB = Annotated[int, BeforeValidator(_parse_memory), Field(ge=1, le=MAX_MEMORY_MB)]
Seconds = Annotated[int, BeforeValidator(_parse_walltime), Field(ge=1, le=MAX_WALLTIME)]
Name = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f/]+$"),
    AfterValidator(inputs.check_text),
]
# A tag is one word of a comma-joined column and a cell of `corral ls`: no separator, no
# control character (a newline or an ANSI escape would forge rows or clear the screen).
Tag = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_tag)]
EnvName = Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
ParamName = Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
OptionName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(inputs.check_text)]
OptionValue = Annotated[str | int | float | bool | list[str], BeforeValidator(_option_value)]
Count = Annotated[int, BeforeValidator(inputs.not_bool)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Frozen):
    """What one job needs. Enforced by every backend, the local one included."""

    cpus: Count = Field(default=1, ge=1, le=MAX_CPUS)
    """CPUs of each task."""
    memory_mb: MemoryMB | None = None
    walltime: Seconds | None = None
    gpus: Count = Field(default=0, ge=0, le=MAX_GPUS)
    """GPUs for the job (a backend that cannot give them refuses the job at submit)."""
    nodes: Count | None = Field(default=None, ge=1, le=MAX_NODES)
    """Nodes of an MPI job (None: whatever the backend gives one job, a single node)."""
    tasks_per_node: Count | None = Field(default=None, ge=1, le=MAX_CPUS)
    """MPI tasks on each node, each with ``cpus`` CPUs."""

    @model_validator(mode="after")
    def _sane_layout(self) -> Resources:
        total = self.cpus * (self.tasks_per_node or 1) * (self.nodes or 1)
        if total > MAX_CPUS * 10:
            raise ValueError(
                f"cpus x tasks_per_node x nodes is {total} CPUs, above {MAX_CPUS * 10}"
            )
        return self


class ArgSplitter(_Frozen):
    """One subjob per argument list."""

    kind: Literal["args"] = "args"
    args: tuple[tuple[Text, ...], ...] = Field(min_length=1)


def _first_repeat(values: tuple[str, ...]) -> str:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return ""


class SweepSplitter(_Frozen):
    """The cartesian product over named parameters: ``{name}`` in arguments, ``NAME`` in env."""

    kind: Literal["sweep"] = "sweep"
    parameters: dict[ParamName, tuple[Text, ...]]

    @model_validator(mode="after")
    def _well_formed(self) -> SweepSplitter:
        if not self.parameters:
            raise ValueError("a sweep needs at least one parameter")
        exported: dict[str, str] = {}
        for name, values in self.parameters.items():
            upper = name.upper()
            if upper in exported:  # both would export $UPPER and one value would be lost
                raise ValueError(
                    f"sweep parameters {exported[upper]!r} and {name!r} both export ${upper}"
                )
            exported[upper] = name
            if inputs.reserved(name):
                raise ValueError(
                    f"sweep parameter {name!r} would replace ${upper}, which the job needs; "
                    "choose another name"
                )
            if not values:
                raise ValueError(f"sweep parameter {name!r} has no values")
            if "" in values:
                raise ValueError(f"sweep parameter {name!r}: every value must be non-empty")
            if len(set(values)) != len(values):
                twice = _first_repeat(values)
                raise ValueError(
                    f"sweep parameter {name!r}: value {inputs.shown(twice)} is given twice"
                )
        return self

    @property
    def points(self) -> int:
        """How many subjobs the sweep makes, without making them."""
        return math.prod(len(values) for values in self.parameters.values())


class FileSplitter(_Frozen):
    """Input files in chunks of ``chunk``; ``{files}`` in arguments expands to the chunk."""

    kind: Literal["files"] = "files"
    chunk: Count = Field(default=1, ge=1, le=MAX_CHUNK)


Splitter = Annotated[ArgSplitter | SweepSplitter | FileSplitter, Field(discriminator="kind")]


class JobSpec(_Frozen):
    """Everything needed to run one job, anywhere."""

    name: Name = "job"
    command: Annotated[tuple[Text, ...], AfterValidator(_program)] | None = None
    script: Annotated[Text, Field(min_length=1)] | None = None
    arguments: tuple[Text, ...] = ()
    environment: dict[EnvName, Text] = {}
    working_dir: PathText | None = None
    input_files: tuple[PathText, ...] = ()
    outputs: tuple[PathText, ...] = ()
    setup: tuple[Text, ...] = ()
    resources: Resources = Resources()
    max_attempts: Count = Field(default=1, ge=1, le=100)
    tags: tuple[Tag, ...] = ()
    backend: Annotated[str, Field(max_length=100, pattern=r"^[a-z][a-z0-9_-]*$")] = "local"
    backend_options: dict[OptionName, OptionValue] = {}
    splitter: Splitter | None = None
    environment_policy: Literal["submit", "clean"] | None = None
    """The submitter's environment ("submit"), a minimal one ("clean"), None: the default."""
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
        if isinstance(self.splitter, SweepSplitter):
            for name in self.splitter.parameters:
                if name.upper() in self.environment:
                    raise ValueError(
                        f"sweep parameter {name!r} would replace environment {name.upper()!r}"
                    )
        return self

    @property
    def subjob_count(self) -> int:
        """How many subjobs the splitter makes (0 without one), computed without making them."""
        splitter = self.splitter
        if splitter is None:
            return 0
        if isinstance(splitter, ArgSplitter):
            return len(splitter.args)
        if isinstance(splitter, SweepSplitter):
            return splitter.points
        return -(-len(self.input_files) // splitter.chunk)

    def to_json(self) -> str:
        return self.model_dump_json()


def _where(loc: tuple[int | str, ...]) -> str:
    # A key of the user's (an environment name, an option) is shown quoted when it is not a
    # plain word, so a newline or an escape in it cannot forge the rest of the message.
    return ".".join(
        str(p) if isinstance(p, int) or (p.isprintable() and len(p) <= 60) else inputs.shown(p)
        for p in loc
    )


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = _where(item["loc"]) or "spec"
        message = item["msg"].removeprefix("Value error, ")
        bad = item.get("input")
        shown = "" if isinstance(bad, dict) else f" (got {inputs.shown(bad)})"
        parts.append(f"{where}: {message}{shown}")
    return "invalid job spec: " + "; ".join(parts)


def parse_spec(data: Mapping[str, Any]) -> JobSpec:
    """Validate a mapping into a ``JobSpec``, raising ``InvalidSpec`` with a one-line reason."""
    if not isinstance(data, Mapping):
        raise InvalidSpec(
            f"invalid job spec: expected a mapping of fields, got {inputs.shown(data)}"
        )
    try:
        return JobSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidSpec(_describe(exc)) from exc
    except RecursionError as exc:  # (a mapping nested thousands deep, from the API)
        raise InvalidSpec("invalid job spec: nested too deeply") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (``json`` silently keeps the last)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Refused(f"key {inputs.shown(key)} is given twice")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number a job can use")


class _Refused(ValueError):
    """Raised from inside ``json.loads`` hooks; turned into ``InvalidSpec`` by ``load_spec``."""


def load_spec(path: Path) -> JobSpec:
    """Read a job file (``.toml`` or ``.json``): UTF-8, keys given once, no NaN."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidSpec(f"cannot read job file {str(path)!r}: {exc.strerror}") from exc
    kind = path.suffix.lstrip(".") or "JSON"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSpec(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)  # (TOML itself refuses duplicate keys)
        else:
            data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError as exc:
        raise InvalidSpec(f"{path}: not valid {kind}: nested too deeply") from exc
    except ValueError as exc:  # (JSONDecodeError, TOMLDecodeError and _Refused are ValueErrors)
        raise InvalidSpec(f"{path}: not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidSpec(f"{path}: a job file must hold a table/object")
    return parse_spec(data)


def spec_from_json(text: str) -> JobSpec:
    """Rebuild a stored spec that must be valid (``InvalidSpec`` if it is not)."""
    try:
        return JobSpec.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidSpec("stored " + _describe(exc)) from exc


@functools.lru_cache(maxsize=4096)
def read_stored_spec(text: str) -> tuple[JobSpec, str]:
    """A stored spec and ``""``, or, if it no longer validates (written by an older corral,
    or corrupted), a placeholder that cannot run and the reason.

    One bad row never takes a verb or the monitor down: the job stays visible, can be killed
    and removed, and the monitor fails it with the reason (``Attempt.problem``). Cached: specs
    are immutable, and a wait over 1,000 jobs reads each several times."""
    try:
        return JobSpec.model_validate_json(text), ""
    except ValidationError as exc:
        problem = "stored " + _describe(exc)
    except ValueError as exc:  # (not JSON at all; pydantic reports that as ValidationError too)
        problem = f"stored job spec is unreadable: {exc}"
    return _placeholder(text), problem


def _placeholder(text: str) -> JobSpec:
    """Keep what can still be read safely (backend, so a kill reaches the right scheduler)."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raw = None
    backend = raw.get("backend") if isinstance(raw, dict) else None
    fields: dict[str, Any] = {"name": "unreadable", "command": ("false",)}
    try:
        return JobSpec(**fields, backend=backend)
    except ValidationError:
        return JobSpec(**fields)
