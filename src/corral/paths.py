"""Where a relative path in the settings points, decided once, when the settings are loaded.

A path-valued setting (``home``, ``work_dir``, ``registry`` and its ``sqlite:///`` URL, and the
path options of the backends, e.g. DIRAC's ``credentials_path``) has ``~`` expanded first; then,
if it is still relative, it is joined to the directory of the config file it came from, or to
the working directory of the process that read it when it came from an environment variable, a
flag or an argument. So two commands run from two directories, and the detached monitor (which
leaves its starting directory), all see the same files.

Joining is lexical: ``..`` and symlinks are kept as written (``Path.resolve`` would follow a
symlinked config file to where it points).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from corral import inputs
from corral.errors import ConfigError


def working_dir() -> Path | None:
    """The process's working directory, or None if it is gone (removed under us)."""
    try:
        return Path(os.getcwd())
    except OSError:
        return None


def resolve(value: str | Path, base: Path | None, where: str = "") -> Path:
    """``value`` with ``~`` expanded, joined to ``base`` if relative (``ConfigError`` if it is
    relative and there is no base: the working directory was removed)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    if base is None:
        raise ConfigError(
            f"{where or 'a path'}: cannot resolve the relative path {str(value)!r}: "
            "the current directory no longer exists"
        )
    return base / path


def absolute(value: str | Path) -> Path:
    """``value`` resolved against the working directory now."""
    return resolve(value, working_dir())


# ---------------------------------------------------------------- the settings' checks
def setting(value: Any, base: Path | None) -> Path:
    """A path setting: ``~`` expanded, then relative to ``base`` (ValueError if it cannot be)."""
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError("expected a path")
    inputs.check_path(str(value))
    if base is None and not Path(value).expanduser().is_absolute():
        raise ValueError("a relative path, but the current directory no longer exists")
    return resolve(value, base)


def registry(value: Any, base: Path | None) -> Path:
    """A path, or a URL naming the database: ``sqlite:///relative/path`` or
    ``sqlite:////absolute/path`` (SQLAlchemy's spelling); a relative one like a plain path.
    Only SQLite is built in; the scheme is where a server database (``postgresql://``) will
    plug in."""
    if isinstance(value, str) and "://" in value:
        from corral.registry.url import sqlite_path

        return file(sqlite_path(value), base)
    return file(value, base)


def directory(value: Any, base: Path | None) -> Path:
    """A directory corral creates if missing: an existing file there is an error now, not a
    NotADirectoryError (exit 70) at the first write."""
    path = setting(value, base)
    if path.exists() and not path.is_dir():
        raise ValueError("expected a directory, but it is a file")
    return path


def file(value: Any, base: Path | None) -> Path:
    path = setting(value, base)
    if path.is_dir():
        raise ValueError("expected a file, but it is a directory")
    return path
