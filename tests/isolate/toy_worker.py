"""A tiny worker module for the isolate tests: stdlib only, run by /usr/bin/python3.11 (Debian's
interpreter, not the one running corral)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from typing import Any

CORRAL_METHODS = {
    "noop": "threadsafe",
    "whoami": "threadsafe",
    "sleep": "threadsafe",
    "boom": "threadsafe",
    "chatty": "threadsafe",
    "spawn": "threadsafe",
    "exclusive_sleep": "exclusive",
    "probe": "exclusive",
}

_lock = threading.Lock()
_running = [0, 0]  # now, most at once


def noop() -> None:
    return None


def whoami() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "python": sys.executable,
        "corral": importlib.util.find_spec("corral") is not None,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("TOY_")},
    }


def sleep(seconds: float, tag: str = "") -> dict[str, Any]:
    time.sleep(seconds)
    return {"pid": os.getpid(), "tag": tag}


def boom(kind: str = "ValueError") -> None:
    raise {
        "ValueError": ValueError,
        "NotImplementedError": NotImplementedError,
        "AttributeError": AttributeError,
    }[kind]("it broke: " + kind)


def chatty(text: str) -> str:
    print("to stdout: " + text)  # fd 1 is stderr in a worker: the protocol is safe
    sys.stderr.write("to stderr: " + text + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    return text


def spawn(seconds: float) -> int:
    """A grandchild in the worker's process group; its pid."""
    return subprocess.Popen(["sleep", str(seconds)]).pid


def exclusive_sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def probe(seconds: float) -> dict[str, int]:
    """Counts how many exclusive calls ran at once in this process."""
    with _lock:
        _running[0] += 1
        _running[1] = max(_running)
    time.sleep(seconds)
    with _lock:
        _running[0] -= 1
    return {"pid": os.getpid(), "most": _running[1]}
