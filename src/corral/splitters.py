"""Turn a master spec with a splitter into the specs of its subjobs (pure functions)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

from corral import inputs
from corral.spec import ArgSplitter, FileSplitter, JobSpec, SweepSplitter


def _substitute(text: str, values: Mapping[str, str]) -> str:
    # Plain replace, not str.format: user arguments may hold other braces (awk, JSON).
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def sweep_points(splitter: SweepSplitter) -> Iterator[dict[str, str]]:
    names = list(splitter.parameters)
    for combo in itertools.product(*(splitter.parameters[n] for n in names)):
        yield dict(zip(names, combo, strict=True))


def _sweep_point(spec: JobSpec, point: Mapping[str, str]) -> JobSpec:
    env = {k: _substitute(v, point) for k, v in spec.environment.items()}
    env.update({name.upper(): value for name, value in point.items()})
    command = None if spec.command is None else tuple(_substitute(a, point) for a in spec.command)
    return spec.model_copy(
        update={
            "command": command,
            "arguments": tuple(_substitute(a, point) for a in spec.arguments),
            "environment": env,
            "splitter": None,
        }
    )


def _file_chunk(spec: JobSpec, files: tuple[str, ...]) -> JobSpec:
    names = [inputs.place(f)[1] for f in files]
    arguments: list[str] = []
    for arg in spec.arguments:
        arguments.extend(names if arg == "{files}" else [arg])
    env = dict(spec.environment, CORRAL_INPUT_FILES=" ".join(names))
    return spec.model_copy(
        update={
            "input_files": files,
            "arguments": tuple(arguments),
            "environment": env,
            "splitter": None,
        }
    )


def split(spec: JobSpec) -> list[JobSpec]:
    """The subjob specs of ``spec``; an empty list if it has no splitter."""
    splitter = spec.splitter
    if splitter is None:
        return []
    if isinstance(splitter, ArgSplitter):
        return [
            spec.model_copy(update={"arguments": spec.arguments + args, "splitter": None})
            for args in splitter.args
        ]
    if isinstance(splitter, SweepSplitter):
        return [_sweep_point(spec, point) for point in sweep_points(splitter)]
    assert isinstance(splitter, FileSplitter)
    files = spec.input_files
    return [
        _file_chunk(spec, files[i : i + splitter.chunk])
        for i in range(0, len(files), splitter.chunk)
    ]
