from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from corral.lock import holder, try_lock, unlock


def test_holder_reports_the_pid_of_another_process(tmp_path: Path) -> None:
    path = tmp_path / "monitor.lock"
    code = (
        "import pathlib, time; from corral.lock import try_lock;"
        f"try_lock(pathlib.Path({str(path)!r})); print('held', flush=True); time.sleep(30)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            assert holder(path) == proc.pid
            assert try_lock(path) is None
        finally:
            proc.kill()
    deadline = time.monotonic() + 5
    while holder(path) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert holder(path) is None  # the kernel released it on SIGKILL


def test_asking_who_holds_the_lock_never_takes_it(tmp_path: Path) -> None:
    """A starting monitor must never lose the lock to someone who only asked about it."""
    path = tmp_path / "monitor.lock"
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            holder(path)

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        for _ in range(300):
            fd = try_lock(path)
            assert fd is not None
            unlock(fd)
    finally:
        stop.set()
        asker.join()
