"""Start detached processes without holding the GIL while they start.

``os.posix_spawn`` keeps the GIL for the whole vfork-and-exec (CPython calls it without releasing
it): about a millisecond per job in which no other thread of the monitor runs, so a thousand
launches stalled submits, registry writes and reaping for a second. glibc's own ``posix_spawn``
called through ``ctypes`` (which releases the GIL around foreign calls) does the same work while
the other threads go on. ``Spawner`` holds the file actions and attributes shared by a batch,
built once: the fds the processes get, a new session, no other fd, and SIGPIPE and SIGXFSZ back
at their default actions. Used for local jobs and for the detached monitor.

Every fd beyond the ones given is closed in the child: Python opens its own close-on-exec, but a
process inherits the fds its starter left open (a CI runner's pipe, a shell's ``exec 3>``), and
a detached monitor or a job holding one keeps whoever waits for its end waiting.

Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec: without the
reset a job's ``yes | head -n 1`` printed "Broken pipe" and a pipeline's writers lived on after
their reader was gone (``subprocess`` resets them too: ``restore_signals``).

Where glibc's spawn cannot be loaded, ``os.posix_spawn`` does it, with the same actions.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
from collections.abc import Mapping, Sequence
from types import TracebackType

_SETSID = 0x80  # POSIX_SPAWN_SETSID (glibc >= 2.26)
_SETSIGDEF = 0x04  # POSIX_SPAWN_SETSIGDEF
FIRST_CLOSED = 3
DEFAULTED = (signal.SIGPIPE, signal.SIGXFSZ)
"""Signals Python ignores that a job gets back at their default action."""
_OPAQUE = 1024  # posix_spawn_file_actions_t and posix_spawnattr_t are < 400 bytes in glibc


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # (the flag's value below is glibc's)
        return None
    libc.posix_spawn.argtypes = [
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(ctypes.c_char_p),
    ]
    libc.posix_spawn.restype = ctypes.c_int
    return libc


class Spawner:
    """Spawns processes in a new session with ``fds`` (child fd -> an fd of ours) and no other fd
    open; a context manager (the shared structures are freed on exit)."""

    def __init__(self, fds: Mapping[int, int]) -> None:
        if any(not 0 <= target < FIRST_CLOSED for target in fds):
            raise ValueError("only fds 0, 1 and 2 can be given to a spawned process")
        # (fds 0-2 not given are the child's as they are ours)
        self.fds = dict(fds)
        self._libc = _glibc()
        self._actions = ctypes.create_string_buffer(_OPAQUE)
        self._attrs = ctypes.create_string_buffer(_OPAQUE)
        self._signals = ctypes.create_string_buffer(_OPAQUE)  # a sigset_t (128 bytes in glibc)
        self._ready = False

    def __enter__(self) -> Spawner:
        libc = self._libc
        if libc is None:
            return self
        _check(libc.posix_spawn_file_actions_init(self._actions))
        if libc.posix_spawnattr_init(self._attrs) != 0:
            libc.posix_spawn_file_actions_destroy(self._actions)
            raise OSError("posix_spawnattr_init failed")
        self._ready = True
        try:
            for target, source in self.fds.items():
                _check(libc.posix_spawn_file_actions_adddup2(self._actions, source, target))
            self._close_the_rest(libc)
            if libc.sigemptyset(self._signals) != 0 or any(
                libc.sigaddset(self._signals, int(number)) != 0 for number in DEFAULTED
            ):
                raise OSError("cannot build the signal set for posix_spawn")
            _check(libc.posix_spawnattr_setsigdefault(self._attrs, self._signals))
            _check(libc.posix_spawnattr_setflags(self._attrs, ctypes.c_short(_SETSID | _SETSIGDEF)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _close_the_rest(self, libc: ctypes.CDLL) -> None:
        if hasattr(libc, "posix_spawn_file_actions_addclosefrom_np"):  # glibc >= 2.34
            _check(libc.posix_spawn_file_actions_addclosefrom_np(self._actions, FIRST_CLOSED))
            return
        for fd in _inherited():
            _check(libc.posix_spawn_file_actions_addclose(self._actions, fd))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ready and self._libc is not None:
            self._libc.posix_spawn_file_actions_destroy(self._actions)
            self._libc.posix_spawnattr_destroy(self._attrs)
            self._ready = False

    def spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
        """The pid of ``argv`` (``argv[0]`` an absolute path) started with ``env``; OSError if
        it could not start."""
        libc = self._libc
        if libc is None or not self._ready:
            actions: list[tuple[int, ...]] = [
                (os.POSIX_SPAWN_DUP2, source, target) for target, source in self.fds.items()
            ]
            actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited()]
            return os.posix_spawn(
                argv[0], list(argv), env, setsid=True, file_actions=actions, setsigdef=DEFAULTED
            )
        args = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
        pairs = [os.fsencode(f"{k}={v}") for k, v in env.items()]
        envp = (ctypes.c_char_p * (len(pairs) + 1))(*pairs, None)
        pid = ctypes.c_int()
        _check(libc.posix_spawn(ctypes.byref(pid), args[0], self._actions, self._attrs, args, envp))
        return pid.value


def _inherited() -> list[int]:
    """Our fds from ``FIRST_CLOSED`` on that a child would inherit (not close-on-exec)."""
    found = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= FIRST_CLOSED:
                with contextlib.suppress(OSError):
                    if os.get_inheritable(fd):
                        found.append(fd)
    return found


def _check(code: int) -> None:
    """posix_spawn and its helpers return an errno (0: fine), never set errno."""
    if code != 0:
        raise OSError(code, os.strerror(code))
