"""How the local backend keeps hold of every process of a job, ``setsid`` or not.

The local option ``process_control`` picks a mode; ``auto`` (the default) takes the first that
works on this machine, checked once when the backend starts:

- ``cgroup``: a cgroup v2 per attempt (``<v2 mount><our cgroup>/corral/<attempt uuid>``) that the
  wrapper joins first thing. When the job ends, by itself, by walltime or by a kill, the wrapper
  steps out into the parent and writes ``cgroup.kill``: whatever the job left behind dies. A hard
  kill moves the wrapper out and kills the rest, so the wrapper still records the end. A memory
  limit goes to v2 ``memory.max`` when that controller is enabled there, else to a v1 memory
  cgroup's ``memory.limit_in_bytes`` (an OOM kill is then reported as such), else ``ulimit -v``.
  Needs a writable cgroup2 hierarchy: root, or a delegated one. Without ``cgroup.kill`` (Linux
  before 5.14) the monitor walks ``cgroup.procs`` instead.
- ``pidns``: the wrapper runs as init of its own PID namespace (``unshare --pid --fork
  --kill-child``); when it exits the kernel kills everything left in the namespace. ``$$`` is 1
  in there, so the wrapper reads its outer pid from ``/proc/self/status``. ``unshare`` ignores
  SIGTERM: a hard kill is SIGKILL to the wrapper. Costs an exec per job (~1 ms). Memory:
  ``ulimit -v``.
- ``pgroup``: the wrapper's process group only; a child that calls ``setsid`` escapes walltime and
  kill. The last resort, and the only mode where ``ulimit -v`` is all there is.

Everything here is blocking file I/O (cgroupfs): call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from corral.backends import procinfo
from corral.backends.runfiles import Untrusted, read_small

log = logging.getLogger(__name__)

Mode = Literal["auto", "cgroup", "pidns", "pgroup"]
MODES: tuple[Mode, ...] = ("auto", "cgroup", "pidns", "pgroup")
UNSHARE = ("--pid", "--fork", "--kill-child")
NONE = "-"  # what the wrapper gets for "no cgroup"


class ControlUnavailable(Exception):
    """The mode that was asked for does not work on this machine (the message says why)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one attempt's processes go: the wrapper's extra arguments and its argv prefix."""

    prefix: tuple[str, ...]
    cgroup: str
    memory_cgroup: str
    ulimit_kb: int


@dataclass(frozen=True, slots=True)
class Control:
    mode: Mode
    v2_base: Path | None = None
    v1_memory_base: Path | None = None
    unshare: str | None = None

    # ------------------------------------------------------------ per attempt
    def place(self, uuid: str, memory_mb: int | None) -> Placement:
        """Create the attempt's cgroups (idempotent: a relaunch finds them)."""
        limit = (memory_mb or 0) * 1024 * 1024
        if self.mode == "pidns":
            assert self.unshare is not None
            return Placement((self.unshare, *UNSHARE), NONE, NONE, limit // 1024)
        if self.mode != "cgroup":
            return Placement((), NONE, NONE, limit // 1024)
        assert self.v2_base is not None
        group = self.v2_base / uuid
        _mkdir(group)
        memory = NONE
        if limit:
            if (group / "memory.max").exists():
                (group / "memory.max").write_text(str(limit))
            elif self.v1_memory_base is not None:
                v1 = self.v1_memory_base / uuid
                _mkdir(v1)
                (v1 / "memory.limit_in_bytes").write_text(str(limit))
                memory = str(v1)
            else:
                return Placement((), str(group), NONE, limit // 1024)
        return Placement((), str(group), memory, 0)

    def hard_kill(self, uuid: str, wrapper_pid: int) -> None:
        """After ``kill_grace``: kill every process of the job. In cgroup mode the wrapper is
        spared (moved out first) so it still writes the exit file."""
        if self.mode == "cgroup" and self.v2_base is not None:
            group = self.v2_base / uuid
            with contextlib.suppress(OSError):
                (self.v2_base / "cgroup.procs").write_text(str(wrapper_pid))
            _kill_cgroup(group)
            return
        if self.mode == "pidns":
            # the wrapper is the namespace's init: its death takes every process in it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(wrapper_pid, signal.SIGKILL)
            return
        # pgroup: the wrapper's group, which holds the job (timeout(1) runs in --foreground)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(wrapper_pid, signal.SIGKILL)

    def oom_killed(self, uuid: str) -> bool:
        """Did the job hit its memory limit (an OOM kill in its cgroup)? Read before release."""
        if self.mode != "cgroup" or self.v2_base is None:
            return False
        if _oom_killed(self.v2_base / uuid / "memory.events", "oom_kill"):
            return True
        if self.v1_memory_base is None:
            return False
        return _oom_killed(self.v1_memory_base / uuid / "memory.oom_control", "oom_kill")

    def release(self, uuid: str) -> None:
        """After the wrapper ended: kill leftovers, remove the cgroups. Not on the path that
        frees a slot: a cgroup takes a moment to become removable."""
        if self.mode != "cgroup" or self.v2_base is None:
            return
        group = self.v2_base / uuid
        if not _removed(group):  # (an emptied group, the usual case, needs no kill)
            _kill_cgroup(group)
            _rmdir(group)
        if self.v1_memory_base is not None and not _removed(self.v1_memory_base / uuid):
            _rmdir(self.v1_memory_base / uuid)

    def sweep(self, older_than: float = 300.0) -> int:
        """Remove empty job cgroups left by monitors that were killed before their release
        (rmdir refuses a populated cgroup; young ones may be a job another monitor is starting
        right now). How many were removed."""
        removed = 0
        now = time.time()
        for base in (self.v2_base, self.v1_memory_base):
            if self.mode != "cgroup" or base is None:
                continue
            with contextlib.suppress(OSError):
                for entry in os.scandir(base):
                    with contextlib.suppress(OSError):
                        if entry.is_dir() and now - entry.stat().st_mtime > older_than:
                            os.rmdir(entry.path)
                            removed += 1
        return removed

    def release_all(self, uuids: list[str]) -> None:
        for uuid in uuids:
            self.release(uuid)


def detect(asked: Mode) -> Control:
    """The control for ``asked`` (``auto``: the best that works); ``ControlUnavailable`` if a
    forced mode cannot work here."""
    reasons = []
    for mode in ("cgroup", "pidns", "pgroup") if asked == "auto" else (asked,):
        try:
            return _try(mode)
        except ControlUnavailable as exc:
            reasons.append(f"{mode}: {exc}")
    raise ControlUnavailable("; ".join(reasons))


def _try(mode: str) -> Control:
    if mode == "cgroup":
        base = _v2_base()
        return Control("cgroup", base, _v1_memory_base())
    if mode == "pidns":
        unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
        if unshare is None:
            raise ControlUnavailable("unshare(1) not found")
        probe = subprocess.run(
            [unshare, *UNSHARE, "/bin/sh", "-c", "[ $$ = 1 ]"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode != 0:
            why = probe.stderr.decode(errors="replace").strip() or f"exit {probe.returncode}"
            raise ControlUnavailable(f"cannot make a PID namespace: {why}")
        return Control("pidns", unshare=unshare)
    return Control("pgroup")


def _mounts(kind: str) -> list[tuple[Path, str]]:
    """(mount point, options) of every mount of filesystem type ``kind``."""
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mounts") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) >= 4 and fields[2] == kind:
                found.append((Path(fields[1]), fields[3]))
    return found


def _own_cgroup(hierarchy: str) -> str | None:
    """Our path in a hierarchy of /proc/self/cgroup ("" is the v2 one, else a controller)."""
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as handle:
        for line in handle:
            number, controllers, path = line.rstrip("\n").split(":", 2)
            if (hierarchy == "" and number == "0") or hierarchy in controllers.split(","):
                return path
    return None


def _v2_base() -> Path:
    mounts = _mounts("cgroup2")
    own = _own_cgroup("")
    if not mounts or own is None:
        raise ControlUnavailable("no cgroup2 hierarchy")
    base = mounts[0][0] / own.lstrip("/") / "corral"
    try:
        _mkdir(base)
        probe = base / f"probe-{os.getpid()}"
        _mkdir(probe)
        _rmdir(probe)
    except OSError as exc:
        raise ControlUnavailable(f"cannot create a cgroup under {base}: {exc.strerror}") from exc
    if not os.access(base / "cgroup.procs", os.W_OK):
        raise ControlUnavailable(f"cannot move processes into {base}")
    return base


def _v1_memory_base() -> Path | None:
    for mount, options in _mounts("cgroup"):
        if "memory" in options.split(","):
            own = _own_cgroup("memory")
            if own is None:
                return None
            base = mount / own.lstrip("/") / "corral"
            try:
                _mkdir(base)
            except OSError:
                return None
            return base
    return None


def _mkdir(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)


def _kill_cgroup(group: Path) -> None:
    if not group.is_dir():
        return
    if (group / "cgroup.kill").exists():
        with contextlib.suppress(OSError):
            (group / "cgroup.kill").write_text("1")
            return
    walk_kill(group)


def walk_kill(group: Path) -> None:
    """Without ``cgroup.kill`` (Linux < 5.14): SIGKILL what ``cgroup.procs`` lists until it is
    empty (a process forking meanwhile shows up in the next round)."""
    for _ in range(100):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _removed(path: Path) -> bool:
    """One ``rmdir``: True if the cgroup is gone (rmdir refuses a populated cgroup, so a group
    it removes held nothing left to kill), False if it is busy or cannot be removed."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _rmdir(path: Path) -> None:
    """Remove an emptied cgroup; killed processes take a moment to leave it."""
    for delay in (0, 0.005, 0.02, 0.05, 0.1, 0.2):
        if delay:
            time.sleep(delay)
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.warning("cannot remove cgroup %s: %s", path, exc.strerror)
                return
    log.warning("cgroup %s still busy; left in place", path)


def _oom_killed(path: Path, key: str) -> bool:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value) > 0
    return False


def kill_group(attempt_dir: Path, wrapper_pid: int) -> None:
    """SIGKILL the job's process group, as the wrapper wrote it in ``jobpgid``. That file is the
    job's to overwrite: only the wrapper's own group or that of its direct child is accepted.
    (Today's wrapper always writes its own group; a wrapper started before it ran a walltime's
    timeout(1) in a group of its own, and may be re-attached after an upgrade.)"""
    with contextlib.suppress(OSError, ValueError, Untrusted):
        pgid = int(read_small(attempt_dir / "jobpgid") or "")
        if pgid != wrapper_pid and procinfo.parent_of(pgid) != wrapper_pid:
            pgid = wrapper_pid
        os.killpg(pgid, signal.SIGKILL)
