"""The registry's uuid on disk, so a registry that was emptied or replaced is refused.

The uuid lives in the registry (``corral.registry.identity``) and, written the first time it is
opened, in two markers: ``registry-id`` next to the registry file (in CORRAL_HOME by default) and
``<work_dir>/<registry uuid>/registry-id``, the dir that holds this registry's job dirs. Two
registries sharing a ``work_dir`` therefore never share a job dir, and a registry whose uuid is
not the one its home recorded (deleted and created again, or another file put in its place) is
refused with ``RegistryMismatch`` instead of handing out job dirs that belong to another.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from corral import modes
from corral.backends.runfiles import Untrusted, read_small
from corral.errors import RegistryMismatch

MARKER = "registry-id"


def job_root(work_dir: Path, registry_uuid: str) -> Path:
    """Where this registry's job dirs live."""
    return work_dir / registry_uuid


def check(registry: Path, work_dir: Path, registry_uuid: str) -> None:
    """Record the uuid where it is missing; ``RegistryMismatch`` where another one is recorded.
    Blocking I/O (two small files): the registry's thread calls it when it opens."""
    home_marker = registry.parent / MARKER
    _agree(
        home_marker,
        registry_uuid,
        f"the registry {registry} has uuid {registry_uuid}, but {home_marker} says it should "
        "be {found}: it was emptied or replaced. Put the original back, or, to really start "
        f"a new registry here, remove {home_marker}",
    )
    root = job_root(work_dir, registry_uuid)
    if not os.path.lexists(root / MARKER):
        _tighten_earlier(registry.parent, work_dir)
    modes.makedirs(root)
    _agree(
        root / MARKER,
        registry_uuid,
        f"{root / MARKER} says {{found}}, not {registry_uuid}: that job dir belongs to another "
        "registry",
    )


def _agree(path: Path, registry_uuid: str, message: str) -> None:
    try:
        found = read_small(path)
    except Untrusted as exc:
        raise RegistryMismatch(f"{path}: {exc}") from exc
    if found is None:
        found = _create(path, registry_uuid)
    if found.strip() != registry_uuid:
        raise RegistryMismatch(message.format(found=found.strip() or "empty"))


def _create(path: Path, registry_uuid: str) -> str:
    """Write the marker unless another process did first (the first writer's uuid wins);
    return what is there now."""
    modes.makedirs(path.parent)
    modes.create_once(path, registry_uuid + "\n")
    return read_small(path) or ""


def _tighten_earlier(home: Path, work_dir: Path) -> None:
    """The first open by a corral that keeps job dirs under the registry uuid: tighten what an
    older one created with the umask's modes (its job dirs ``work_dir/<id>``, the registry, the
    log). The home dir itself is left alone: ``modes.home_warning`` reports it."""
    for name in ("registry.db", "registry.db-wal", "registry.db-shm", "monitor.log"):
        with contextlib.suppress(OSError):
            if not (home / name).is_symlink():
                os.chmod(home / name, modes.FILE)
    with contextlib.suppress(OSError):
        for entry in os.scandir(work_dir):
            if entry.name.isdigit() and entry.is_dir(follow_symlinks=False):
                modes.tighten(Path(entry.path))
