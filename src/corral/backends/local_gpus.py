"""GPUs of the local backend: the device ids ``[backends.local] gpus = [...]`` lists, handed to
jobs so that no two running jobs share one. A job's devices reach it as ``CUDA_VISIBLE_DEVICES``
(the launcher passes ``CORRAL_DEVICES``, which the job script turns into it after the captured
environment, so a submitter's own value cannot override the assignment), and are written to
``gpus`` in its attempt dir so that a restarted monitor knows them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

FILE = "gpus"
VARIABLE = "CORRAL_DEVICES"


class Devices:
    """Which listed devices are free; ``take``/``give_back`` as jobs start and end."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = tuple(ids)
        self.free = list(ids)
        self.held: dict[str, tuple[str, ...]] = {}

    def fits(self, count: int) -> bool:
        return count <= len(self.free)

    def take(self, uuid: str, count: int) -> tuple[str, ...]:
        if count == 0:
            return ()
        taken, self.free = tuple(self.free[:count]), self.free[count:]
        self.held[uuid] = taken
        return taken

    def adopt(self, uuid: str, ids: Sequence[str]) -> None:
        """A re-attached job's devices (from its ``gpus`` file), taken out of the free list."""
        mine = tuple(i for i in ids if i in self.free)
        if mine:
            self.held[uuid] = mine
            self.free = [i for i in self.free if i not in mine]

    def give_back(self, uuid: str) -> None:
        returned = self.held.pop(uuid, ())
        self.free += [i for i in self.ids if i in returned]  # listed order, for stable choices


def write(attempt_dir: Path, ids: Sequence[str]) -> None:
    """Blocking: call from the thread that spawns the job."""
    if ids:
        (attempt_dir / FILE).write_text(",".join(ids) + "\n")


def read(attempt_dir: Path) -> tuple[str, ...]:
    """Blocking. The file sits in a dir the job can write: only listed ids are ever adopted."""
    from corral.backends.runfiles import Untrusted, read_small

    try:
        text = read_small(attempt_dir / FILE) or ""
    except Untrusted:
        return ()
    return tuple(part for part in text.strip().split(",") if part)
