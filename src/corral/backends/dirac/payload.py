"""Sandboxes as bytes (blocking file work: run in a worker thread).

An input sandbox is a tar.bz2 built deterministically (sorted names, no times, no owners), so
the same files give the same sha256 and every subjob of a sweep shares one upload. An output
sandbox is extracted with tarfile's ``data`` filter (no absolute paths, no ``..``, no links out,
no devices) into a temporary directory, then renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from corral import sandbox
from corral.backends.dirac import jdl
from corral.spec import JobSpec

OUTPUT_DONE = "dirac-output-done"
"""Marks an attempt dir whose output sandbox is in (a second fetch does nothing)."""


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    checksum: str


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def input_sandbox(spec: JobSpec, attempt_dir: Path) -> Blob | None:
    """The job's inline script and input files as one tar.bz2, or None when it has neither."""
    members: list[tuple[str, bytes, int]] = []
    if spec.script is not None:
        members.append((jdl.SCRIPT, spec.script.encode(), 0o755))
    if jdl.needs_wrapper(spec):
        members.append((jdl.COMMAND, jdl.WRAPPER.encode(), 0o755))
    staged = attempt_dir / sandbox.SANDBOX
    for name in spec.input_files:
        path = staged / Path(name).name
        members.append((path.name, path.read_bytes(), 0o755 if os.access(path, os.X_OK) else 0o644))
    if not members:
        return None
    raw = io.BytesIO()
    # bz2 of fixed members at a fixed level is deterministic: same files, same checksum
    with tarfile.open(fileobj=raw, mode="w:bz2", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in sorted(members):
            _add(tar, name, data, mode)
    data = raw.getvalue()
    return Blob(data, hashlib.sha256(data).hexdigest())


def output_sandbox(files: dict[str, bytes]) -> bytes:
    """A tar.bz2 of ``files`` (what the test pilot uploads)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:bz2") as tar:
        for name, data in sorted(files.items()):
            _add(tar, name, data, 0o644)
    return raw.getvalue()


def unpack_outputs(spec: JobSpec, attempt_dir: Path, archives: list[bytes]) -> None:
    """Extract the output sandbox(es) safely and move them into place: ``stdout`` and
    ``stderr`` into the attempt dir, the rest into the job's run dir, where outputs are
    collected from."""
    if (attempt_dir / OUTPUT_DONE).exists():
        return
    tmp = attempt_dir / ".dirac-output.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    try:
        for data in archives:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                tar.extractall(tmp, filter="data")
        place_outputs(spec, attempt_dir, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def place_outputs(spec: JobSpec, attempt_dir: Path, unpacked: Path) -> None:
    """Move an unpacked output sandbox into place (``stdout`` and ``stderr`` into the attempt
    dir, the rest into the run dir) and mark the attempt dir done. Links are moved as links,
    never followed (outputs are collected with ``O_NOFOLLOW``)."""
    run_dir = sandbox.run_dir(spec, attempt_dir)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in sorted(unpacked.iterdir()):
        target = (
            attempt_dir / entry.name
            if entry.name in (jdl.STDOUT, jdl.STDERR)
            else (run_dir / entry.name)
        )
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    fd = os.open(attempt_dir / OUTPUT_DONE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
