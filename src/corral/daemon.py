"""Starting the background monitor daemon, exactly once, detached from the caller's session.

The daemon starts in the directory its starter loaded the settings in (so relative paths from
the environment mean what they meant to the starter), loads its settings, and then leaves for
``/`` (``leave_cwd``): it never keeps a directory of the user's busy (``umount`` would fail),
and nothing it does depends on its working directory. Its Python is started with ``-P``, so
modules in that directory cannot shadow the ones corral imports.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import time
from pathlib import Path

from corral import modes
from corral.config import ENV_PREFIX, USER_KEYS, Settings, parse_value
from corral.lock import holder
from corral.spawn import Spawner

LOG_TAIL = 64 * 1024  # enough for the last traceback; the log itself grows without bound
# What a dying daemon leaves in its log: a logged error ("... 1234 ERROR monitor died: ..."),
# ``corral monitor: ...`` (a CorralError before logging was set up), or else the last line of a
# traceback (``ValueError: ...``, also in the ``  | `` frame of an exception group).
_LOGGED = re.compile(r" (?:ERROR|CRITICAL) (.*)$|^(corral monitor: .*)$")
_RAISED = re.compile(r"^[\s|]*((?:[A-Za-z_]\w*\.)*[A-Z]\w*: .*)$")
PATH_ENV = (
    *("DIRACX_CREDENTIALS_PATH", "X509_USER_PROXY", "X509_CERT_DIR", "X509_VOMS_DIR"),
    *("CONDOR_CONFIG", "SLURM_CONF", "SGE_ROOT"),
)
"""Variables the backends (or the scheduler tools they run) read as paths in the monitor's
process: made absolute, like the relative entries of ``PATH``, before the daemon leaves its
starting directory."""


def ensure_daemon(settings: Settings, wait: float = 10.0) -> int | None:
    """Make sure a monitor drives the registry; start a detached daemon if none does.

    Returns the pid of the monitor holding the lock: None if it did not come up in time, or if
    the daemon started here exited before taking the lock (see its log). A second lock
    serialises callers, so ten parallel submits start one daemon.
    """
    modes.makedirs(settings.home)
    with open(settings.home / "spawn.lock", "w", opener=modes.opener) as spawn_lock:
        fcntl.flock(spawn_lock, fcntl.LOCK_EX)
        pid = holder(settings.lock_path)
        if pid is not None:
            return pid
        daemon = _spawn_detached(settings)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pid = holder(settings.lock_path)
            if pid is not None:
                return pid
            if daemon is not None and _gone(daemon):
                # Crashed at start; or it found another monitor holding the lock and left
                # (then holder() names that one).
                return holder(settings.lock_path)
            time.sleep(0.02)
    return None


def _spawn_detached(settings: Settings) -> int | None:
    """Start the daemon; its pid (None if sh did not report it)."""
    # sh backgrounds the daemon, prints its pid and exits at once: we reap sh, init adopts the
    # daemon, and the new session means a closing terminal (SIGHUP) never reaches it.
    env = dict(os.environ, CORRAL_HOME=str(settings.home), **set_by_caller(settings))
    if settings.config_file is not None:  # the daemon reads the config its starter read
        env["CORRAL_CONFIG"] = str(settings.config_file)
    # cd: to where the settings were loaded (see above; the daemon then leaves for /);
    # umask 077: the log and everything the monitor creates are private to the user
    private = '[ -z "$3" ] || cd "$3" 2>/dev/null; umask 077; '
    script = private + (
        'exec "$0" -P -m corral.monitor --daemon --idle-exit "$2" >>"$1" 2>&1 </dev/null & echo $!'
    )
    where = str(settings.cwd or "")  # (gone: it stays where this process is)
    argv = ["sh", "-c", script, sys.executable, str(settings.log_path), str(settings.idle_exit)]
    argv.append(where)
    read_end, write_end = os.pipe()  # both close-on-exec; only the dup2'd copy reaches sh
    try:
        try:
            # (stdin and stderr as ours, stdout the pipe, no other fd: see corral.spawn)
            with Spawner({1: write_end}) as spawner:
                pid = spawner.spawn(["/bin/sh", *argv[1:]], env)
        finally:
            os.close(write_end)
        out = b""
        while chunk := os.read(read_end, 64):  # EOF when sh exits (the daemon's stdout is the log)
            out += chunk
        os.waitpid(pid, 0)
    finally:
        os.close(read_end)
    text = out.decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def set_by_caller(settings: Settings) -> dict[str, str]:
    """What the starter's flags (``--set``) or arguments set, as the variables that set it for
    the daemon, which reads only its environment and the config file. Without them, a
    ``corral --set registry=other.db submit`` started a daemon on the default registry, and
    the job waited for ever."""
    found: dict[str, str] = {}
    for key, source in settings.sources.items():
        if source.startswith(("default", "file ", "env ")) or key == "home":
            continue  # (the daemon reads those itself; home is passed as CORRAL_HOME)
        parts = key.split(".")
        if len(parts) == 1 and key in USER_KEYS:
            found[ENV_PREFIX + key.upper()] = _as_text(getattr(settings, key))
        elif len(parts) == 3 and parts[0] == "backends" and parts[1] in settings.backends:
            section = settings.backends[parts[1]]
            value = section.extra.get(parts[2], getattr(section, parts[2], None))
            if value is not None:
                var = f"{ENV_PREFIX}BACKENDS__{parts[1].upper()}__{parts[2].upper()}"
                found[var] = _as_text(value)
    return found


def _as_text(value: object) -> str:
    """``value`` as ``corral.config.parse_value`` reads it back (TOML, or a bare string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return json.dumps(list(value))  # (an array of strings and numbers: TOML as well)
    text = str(value)
    return text if parse_value(text) == text else json.dumps(text)  # (TOML basic string)


def leave_cwd() -> None:
    """The detached daemon's last step before it runs: make the path variables of ``PATH_ENV``
    and ``PATH``'s entries absolute (against the directory it was started in), then move to
    ``/``."""
    try:
        here = os.getcwd()
    except OSError:  # gone: a relative path there names nothing any more
        here = "/"
    for name in PATH_ENV:
        value = os.environ.get(name)
        if value and value != "ONLY_ENV":  # (CONDOR_CONFIG's "no file at all")
            os.environ[name] = os.path.join(here, os.path.expanduser(value))
    if "PATH" in os.environ:  # (an empty entry is the working directory)
        entries = os.environ["PATH"].split(":")
        os.environ["PATH"] = ":".join(os.path.join(here, entry) for entry in entries)
    os.chdir("/")


def _gone(pid: int) -> bool:
    """The process has exited (a zombie counts: nobody may have reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return not fields or fields[0] in ("Z", "X")


def log_size(log_path: Path) -> int:
    """Where the log ends now: pass it to ``last_error`` to skip what older daemons wrote."""
    try:
        return os.stat(log_path).st_size
    except OSError:
        return 0


def last_error(log_path: Path, since: int = 0) -> str | None:
    """The last error line daemons wrote to their log after offset ``since``, if any (reads
    only the log's tail)."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(since, handle.tell() - LOG_TAIL))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return None
    lines = tail.splitlines()[::-1]
    for pattern in (_LOGGED, _RAISED):  # the daemon's own summary first, a traceback's after
        for line in lines:
            if found := pattern.search(line):
                return next(g for g in found.groups() if g is not None).strip()
    return None
