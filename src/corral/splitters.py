"""Turn a master spec with a splitter into the specs of its subjobs (pure functions).

Subjobs are made lazily (``iter_split``) and counted without being made
(``JobSpec.subjob_count``), so a sweep over the ``max_subjobs`` cap is refused before any memory
is spent on it. A point of a valid sweep is valid by construction: its values and the master's
strings are checked text, and the names it exports were checked against the reserved ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

from corral import inputs
from corral.errors import InvalidInput
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


def iter_split(spec: JobSpec) -> Iterator[JobSpec]:
    """The subjob specs of ``spec``, one at a time; none if it has no splitter."""
    splitter = spec.splitter
    if splitter is None:
        return
    if isinstance(splitter, ArgSplitter):
        for args in splitter.args:
            yield spec.model_copy(update={"arguments": spec.arguments + args, "splitter": None})
    elif isinstance(splitter, SweepSplitter):
        for point in sweep_points(splitter):
            yield _sweep_point(spec, point)
    else:
        assert isinstance(splitter, FileSplitter)
        files = spec.input_files
        for i in range(0, len(files), splitter.chunk):
            yield _file_chunk(spec, files[i : i + splitter.chunk])


def split(spec: JobSpec) -> list[JobSpec]:
    """The subjob specs of ``spec``; an empty list if it has no splitter. Check the count
    first (``corral.admit``): this makes every one of them."""
    return list(iter_split(spec))


def range_values(start: int, stop: int, step: int, limit: int) -> range:
    """The values of a sweep range ``start..stop..step`` (inclusive), refused before they are
    made if there are more than ``limit`` (``0..10**20`` must not exhaust memory)."""
    if step < 1 or stop < start:
        raise InvalidInput("a range goes up, like 1..10 or 0..100..5")
    count = (stop - start) // step + 1  # (len() of a range past 2**63 is an OverflowError)
    if count > limit:
        raise InvalidInput(f"the range has {count:,} values, more than max_subjobs ({limit:,})")
    return range(start, stop + 1, step)
