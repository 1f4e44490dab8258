"""The checks every input goes through where it enters (job files, flags, the API, config).

Plain functions with no pydantic: the spec models call them from validators, and the lean read
path (ids, selections, settings for ``corral ls``) calls them directly. Each raises
``ValueError`` with a short reason (the caller names the field) or, for the ``*_or_raise``
helpers, ``InvalidInput``.

Input files have a place in the sandbox (``place``, ``check_places``): an input is ``SRC``
(copied under its base name) or ``SRC:DEST`` (copied to ``DEST``, a relative path inside the
sandbox; the split is at the last colon, so a source whose name holds a colon needs an explicit
DEST). Two inputs that would land on the same place, or one inside the other (``d`` and ``d/x``),
are refused when the spec is validated: later steps that gather many files rely on each input
keeping its own name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from corral.errors import InvalidInput

MAX_ID = 2**63 - 1
"""Ids are SQLite INTEGERs: 64-bit signed."""

NAME_MAX = 255
"""Bytes in one path component (Linux, and most filesystems' NAME_MAX)."""
PATH_MAX = 4095
"""Bytes in a whole path (Linux's PATH_MAX, less the NUL)."""

# Variables the job or its shell needs to run as the user expects: a sweep parameter exports
# its upper-cased name and would silently replace them (``--sweep path=a,b`` breaks every
# command lookup). ``CORRAL_*`` and ``SLURM_*`` are ours and the scheduler's.
RESERVED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "SHELL",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "PWD",
        "OLDPWD",
        "IFS",
        "ENV",
        "BASH_ENV",
        "TERM",
        "HOSTNAME",
        "PS1",
        "PS2",
        "PS4",
        "OPTIND",
        "OPTARG",
    }
)
RESERVED_PREFIXES = ("LD_", "LC_", "CORRAL_", "SLURM_", "SBATCH_", "BASH_FUNC_")
"""Prefixes a parameter may not have (the dynamic linker's, locale, ours, Slurm's)."""
OWN_PREFIXES = ("CORRAL_", "SLURM_", "SBATCH_")
"""Prefixes an ``environment`` key may not have: corral and Slurm set these themselves. (PATH
or LANG in ``environment`` is a deliberate choice of the user and stays allowed.)"""

_REPR_MAX = 60


def shown(value: object) -> str:
    """A bad value as an error message shows it: a repr, cut to one short line."""
    text = repr(value)
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 4] + "..." + text[-1:]


def text_problem(value: str) -> str | None:
    """Why ``value`` is not text corral can store and pass on, or None.

    NUL cannot cross an argv, an environment or a path (``sh`` drops it and runs something
    else); a lone surrogate (a non-UTF-8 byte decoded with ``surrogateescape`` from argv) cannot
    be written to the registry or a script as UTF-8."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def check_text(value: str) -> str:
    why = text_problem(value)
    if why:
        raise ValueError(f"text {why}")
    return value


def check_path(value: str) -> str:
    """Text that the OS can take as a path: no component over NAME_MAX, the whole under
    PATH_MAX (otherwise ``open`` fails with ENAMETOOLONG long after the submit)."""
    check_text(value)
    raw = value.encode("utf-8")
    if len(raw) > PATH_MAX:
        raise ValueError(f"path is longer than {PATH_MAX} bytes")
    if any(len(part) > NAME_MAX for part in raw.split(b"/")):
        raise ValueError(f"a file name in the path is longer than {NAME_MAX} bytes")
    return value


def reserved(name: str) -> bool:
    """A variable name the job needs (see ``RESERVED_NAMES``), compared upper-cased."""
    upper = name.upper()
    return upper in RESERVED_NAMES or upper.startswith(RESERVED_PREFIXES)


def not_bool(value: Any) -> Any:
    """Before a number is validated: ``true`` is not 1 (``walltime: true`` is not one second)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


def finite(value: Any) -> Any:
    """Floats must be finite: NaN and infinities compare false with every bound and serialise
    to JSON as null, which the registry then cannot read back."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


_ASCII_DIGITS = re.compile(r"[0-9]+")


def job_number(text: str) -> int:
    """ASCII digits within the registry's range (``str.isdigit`` also takes other scripts'
    digits, and '²')."""
    if not _ASCII_DIGITS.fullmatch(text):
        raise ValueError("not ASCII digits")
    if len(text) > 19 or int(text) > MAX_ID:
        raise ValueError(f"above the largest id ({MAX_ID})")
    return int(text)


def check_timeout(value: Any) -> float | None:
    """A wait timeout: None (forever) or a finite number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"timeout: expected a number of seconds, got {shown(value)}")
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"timeout: expected a finite number of seconds >= 0, got {value!r}")
    return float(value)


def bad_text(value: Any, where: str = "") -> str | None:
    """``"where: what"`` for the first string (key or value, at any depth of dicts and lists)
    that is not text (see ``text_problem``); None if all are fine. For option tables whose
    models the core does not know (backend sections, --set, env); their numbers are checked by
    the models (``allow_inf_nan=False``)."""
    if isinstance(value, str):
        why = text_problem(value)
        return f"{where or 'value'}: text {why}" if why else None
    if isinstance(value, dict):
        for key, item in value.items():
            label = shown(key) if isinstance(key, str) and text_problem(key) else str(key)
            name = f"{where}.{label}" if where else label
            found = bad_text(key, name) if isinstance(key, str) else None
            found = found or bad_text(item, name)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = bad_text(item, f"{where}[{index}]")
            if found:
                return found
    return None


def place(entry: str) -> tuple[str, str]:
    """``(source, dest)`` of one input entry; ``ValueError`` for a DEST outside the sandbox."""
    source, sep, dest = entry.rpartition(":")
    if not sep or not source:
        source, dest = entry, PurePosixPath(entry).name
    if not dest:
        raise ValueError(f"input {entry!r}: empty destination after ':'")
    parts = PurePosixPath(dest).parts
    if dest.startswith("/") or ".." in parts or not parts or parts == (".",):
        raise ValueError(f"input {entry!r}: the destination must be a path inside the sandbox")
    if "\0" in entry or "\n" in dest:
        raise ValueError(f"input {entry!r}: control characters in the name")
    return source, str(PurePosixPath(*[p for p in parts if p != "."]))


def check_places(entries: Iterable[str]) -> None:
    """``ValueError`` if two inputs land on the same name (or one inside the other)."""
    taken: dict[str, str] = {}
    for entry in entries:
        _, dest = place(entry)
        for other_dest, other in taken.items():
            if (
                dest == other_dest
                or other_dest.startswith(dest + "/")
                or dest.startswith(other_dest + "/")
            ):
                raise ValueError(
                    f"inputs {other!r} and {entry!r} would both land on {other_dest!r} in the "
                    "sandbox; give one a place of its own with SRC:DEST"
                )
        taken[dest] = entry
