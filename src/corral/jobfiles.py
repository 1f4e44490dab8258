"""Reading and deleting job files off the event loop (``AsyncSession`` runs these in threads)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path


def tail_lines(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:]) + ("\n" if data else "")


def read_from(path: Path, offset: int) -> tuple[str, int]:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(1 << 20)
    except FileNotFoundError:
        return "", offset
    return data.decode(errors="replace"), offset + len(data)


def delete_dirs(paths: Sequence[Path | None]) -> None:
    for path in paths:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
