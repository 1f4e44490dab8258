"""Starting the background monitor daemon, exactly once, detached from the caller's session."""

from __future__ import annotations

import fcntl
import os
import sys
import time

from corral.config import Settings
from corral.lock import holder


def ensure_daemon(settings: Settings, wait: float = 10.0) -> int | None:
    """Make sure a monitor drives the registry; start a detached daemon if none does.

    Returns the pid of the monitor holding the lock (None if it did not come up in time). A
    second lock serialises callers, so ten parallel submits start one daemon.
    """
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(settings.home / "spawn.lock", "w") as spawn_lock:
        fcntl.flock(spawn_lock, fcntl.LOCK_EX)
        pid = holder(settings.lock_path)
        if pid is not None:
            return pid
        _spawn_detached(settings)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pid = holder(settings.lock_path)
            if pid is not None:
                return pid
            time.sleep(0.02)
    return None


def _spawn_detached(settings: Settings) -> None:
    # sh backgrounds the daemon and exits at once: we reap sh, init adopts the daemon, and the
    # new session means a closing terminal (SIGHUP) never reaches it.
    env = dict(os.environ, CORRAL_HOME=str(settings.home))
    if settings.config_file is not None:  # the daemon reads the config its starter read
        env["CORRAL_CONFIG"] = str(settings.config_file)
    script = 'exec "$0" -m corral.monitor --daemon --idle-exit "$2" >>"$1" 2>&1 </dev/null &'
    argv = ["sh", "-c", script, sys.executable, str(settings.log_path), str(settings.idle_exit)]
    pid = os.posix_spawn("/bin/sh", argv, env, setsid=True)
    os.waitpid(pid, 0)
