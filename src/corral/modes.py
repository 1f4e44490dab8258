"""File modes: what corral creates under CORRAL_HOME and ``work_dir`` is 0700 (dirs) / 0600
(files), whatever the caller's umask (job scripts are 0700: they are run). Job wrappers set
``umask 077`` themselves, so stdout, stderr, status files and outputs are private too.

Files and dirs that an older corral created with looser modes are tightened once per registry
(``tighten``), and a CORRAL_HOME that others can read is reported, never changed
(``home_warning``): it may be shared on purpose.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR = 0o700
FILE = 0o600


def makedirs(path: Path) -> None:
    """``mkdir -p`` where every dir it creates is 0700 (``Path.mkdir(parents=True)`` gives the
    parents the umask's mode)."""
    _makedirs(os.fspath(path))


def _makedirs(path: str) -> None:
    # Plain strings and one mkdir per missing level: a new job's dirs are made by the thousand,
    # and probing each level with Path.exists() first cost more than the mkdirs themselves.
    try:
        os.mkdir(path, DIR)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent == path:
            raise
        _makedirs(parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIR)
    except FileExistsError:
        if not os.path.isdir(path):  # (a file, or a dangling link, in the way)
            raise
        return
    os.chmod(path, DIR)  # mkdir's mode is masked by the umask; 0700 is never looser


def write_atomic(path: Path, text: str, mode: int = FILE) -> None:
    """Write ``text`` to a temporary name, then rename it into place: readers see all or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_once(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text``, whole or not at all (written to a temporary name, then
    hard-linked into place, which never replaces); False if it already existed. A full disk
    raises and leaves nothing behind, so a retry starts clean."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        # (the temporary name needs no rename of its own: only the link makes it visible)
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE
        )
        try:
            data = memoryview(text.encode())
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return True


def opener(path: str, flags: int) -> int:
    """For ``open(..., opener=modes.opener)``: a new file is created 0600 (lock files)."""
    return os.open(path, flags | os.O_CLOEXEC, FILE)


def tighten(root: Path) -> int:
    """Remove group and other bits under ``root`` (never through a link); how many changed."""
    changed = 0
    if not root.is_dir() or root.is_symlink():
        return 0
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files, ""]:
            path = os.path.join(top, name) if name else top
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode) or not mode & 0o077:
                    continue
                os.chmod(path, stat.S_IMODE(mode) & 0o700)
                changed += 1
    return changed


def home_warning(home: Path) -> str | None:
    """A warning if CORRAL_HOME exists and others may read or enter it."""
    with contextlib.suppress(OSError):
        mode = os.stat(home).st_mode
        if mode & 0o077:
            return (
                f"warning: {home} is readable by others (mode {stat.S_IMODE(mode):o}); corral "
                f"keeps job records and environments there: chmod 700 {home}"
            )
    return None
