"""A lean entry for ``corral ls``: the commonest verb, run without importing Typer, Click, Rich
or pydantic (together most of a cold ``ls``'s time).

It understands only plain spellings: the global ``--home DIR``, ``--set KEY=VALUE`` and
``--debug`` before ``ls``, then job ids and ``--json``, ``--state/-s``, ``--name/-n``,
``--tag/-t``, ``--backend/-b``, ``--older-than``, ``--newer-than/--since`` (``--opt VALUE`` or
``--opt=VALUE``). Anything else (help, an unknown or repeated option, a missing value, a value
that looks like an option, ``CORRAL_DEBUG`` or shell completion in the environment) and any error
before output is written return None: ``corral.cli.main`` then runs the full Typer command,
which prints what it always prints. Both print through ``corral.cli.ls_text``;
``tests/cli/test_fast_ls.py`` compares the two byte for byte.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from corral.selection import Selection

_GLOBAL = {"--home": "home", "--set": "set"}
_LS = {
    "--state": "states",
    "-s": "states",
    "--name": "names",
    "-n": "names",
    "--tag": "tags",
    "-t": "tags",
    "--backend": "backends",
    "-b": "backends",
    "--older-than": "older_than",
    "--newer-than": "newer_than",
    "--since": "newer_than",
}
_SINGLE = ("home", "older_than", "newer_than")  # one value: a repeat goes the full way


class LsArgs:
    """``corral ls`` as the fast path parsed it (a plain class: no dataclasses on this path)."""

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self.ids: list[str] = []
        self.as_json = False

    def one(self, key: str) -> str | None:
        found = self.values.get(key)
        return found[0] if found else None

    def many(self, key: str) -> list[str] | None:
        return self.values.get(key)


def parse(args: list[str]) -> LsArgs | None:
    """The arguments of a plain ``corral ls``, or None for anything else."""
    if "CORRAL_DEBUG" in os.environ or "_CORRAL_COMPLETE" in os.environ:
        return None
    parsed = LsArgs()
    words = iter(args)
    verb = False
    for word in words:
        known = _LS if verb else _GLOBAL
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in known:
            value = inline if eq else next(words, None)
            key = known[name]
            if value is None or value.startswith("-") or (key == "home" and not value):
                return None
            if key in _SINGLE and key in parsed.values:
                return None
            parsed.values.setdefault(key, []).append(value)
        elif eq:
            return None  # e.g. --json=1
        elif word == "--debug" and not verb:
            continue  # (only shows tracebacks, and errors go the full way)
        elif word == "--json" and verb:
            parsed.as_json = True
        elif word.startswith("-") or not word:
            return None
        elif verb:
            parsed.ids.append(word)
        elif word == "ls":
            verb = True
        else:
            return None
    return parsed if verb else None


def overrides(parsed: LsArgs) -> dict[str, Any]:
    """The settings overrides of ``--home`` and ``--set``, as ``corral.cli.app.root`` makes
    them (an invalid ``--set`` raises, and the full path reports it)."""
    from pathlib import Path

    from corral.config import parse_value

    found: dict[str, Any] = {}
    home = parsed.one("home")
    if home is not None:
        found["home"] = Path(home).expanduser().absolute()
    for item in parsed.many("set") or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(item)
        found[key.strip()] = parse_value(value.strip())
    return found


def ls(args: list[str]) -> int | None:
    """Run ``corral ls`` the lean way and return its exit code; None if it must run the full
    way (nothing printed then)."""
    parsed = parse(args)
    if parsed is None:
        return None
    from corral.cli import ls_text

    try:
        from corral.config import load_settings

        filt = selection(parsed)
        settings = load_settings(overrides(parsed), origin="flag --set/--home")
        parts = ls_text.listing_text(settings.registry, filt, parsed.as_json)
    except Exception:  # every error is the full path's to report, in its own words
        return None
    try:
        ls_text.write_listing(parts, filt, parsed.as_json)
    except OSError as exc:  # a closed pipe (`corral ls | head`): 1, quietly, as Typer does
        if exc.errno != errno.EPIPE:
            raise
        sys.stdout = _Pacified(sys.stdout)
        sys.stderr = _Pacified(sys.stderr)
        return 1
    return 0


def selection(parsed: LsArgs) -> Selection | None:
    """The jobs to list; None (every top-level job) when nothing filters them, which spares
    the imports of the selection and its checks."""
    if not parsed.ids and not any(k not in ("home", "set") for k in parsed.values):
        return None
    from corral.cli.filters import job_filter

    return job_filter(
        parsed.ids or None,
        parsed.many("states"),
        parsed.many("names"),
        parsed.many("tags"),
        parsed.many("backends"),
        parsed.one("older_than"),
        parsed.one("newer_than"),
    )


class _Pacified:
    """A stream whose flush ignores a closed pipe (Click's ``PacifyFlushWrapper``): the
    interpreter flushes stdout once more on exit."""

    def __init__(self, wrapped: TextIO) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        try:
            self.wrapped.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
