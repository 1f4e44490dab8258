"""``corral peek`` as a user runs it: exact ``-n``, escaped on a terminal, raw when piped,
and ``peek -f`` of a 200 MB writer in constant memory (issue 10)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import wait_until

HOSTILE = r"printf 'a\033[2J\033]0;title\007b\tc\n'"


def on_a_terminal(home: Path, *args: str) -> str:
    """Run ``corral ARGS`` with stdout on a pseudo-terminal; what the terminal received."""
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "corral.cli", *args],
            stdout=slave,
            stderr=subprocess.PIPE,
            env={**os.environ, "CORRAL_HOME": str(home)},
            timeout=60,
        )
        os.close(slave)
        slave = -1
        received = b""
        while True:
            try:
                block = os.read(master, 65536)
            except OSError:  # (EIO: the other side is closed and drained)
                break
            if not block:
                break
            received += block
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert done.returncode == 0, done.stderr
    return received.decode().replace("\r\n", "\n")  # (the tty turns \n into \r\n)


def test_peek_escapes_controls_on_a_terminal_only(corral: Any, cli_home: Path) -> None:
    assert corral("submit", "--wait", "-q", "--", "sh", "-c", HOSTILE).code == 0
    shown = on_a_terminal(cli_home, "peek", "1")
    assert shown == "a\\x1b[2J\\x1b]0;title\\x07b\tc\n"
    assert "\x1b" not in on_a_terminal(cli_home, "peek", "-f", "1")
    assert corral("peek", "1").out == "a\x1b[2J\x1b]0;title\x07b\tc\n"  # piped: as written


def test_peek_lines_exactly(corral: Any) -> None:
    """``peek -n 100000`` stopped at 64 KiB, cutting the first line."""
    made = corral("submit", "--wait", "-q", "--", "sh", "-c", "seq 1000000 1100000")
    assert made.code == 0, made
    out = corral("peek", "-n", "100000", "1").out.splitlines()
    assert out == [str(i) for i in range(1000001, 1100001)]
    assert corral("peek", "-n", "0", "1").out == ""
    assert corral("peek", "-f", "-n", "2", "1").out == "1099999\n1100000\n"


def test_peek_follow_of_200_mb_in_constant_memory(
    corral: Any, cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``peek -f`` of a job writing 200 MB grew to 417 MB: followed here in this process."""
    from corral.cli import main

    size = 200_000_000
    made = corral("submit", "-q", "--", "sh", "-c", f"sleep 1; yes {'z' * 99} | head -c {size}")
    assert made.code == 0, made
    assert main(["peek", "1"]) == 0  # (imports done before memory is traced)
    counted = Counter()
    monkeypatch.setattr(sys, "stdout", counted)
    tracemalloc.start()
    try:
        code = main(["peek", "-f", "-n", "0", "1"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        monkeypatch.undo()
    assert code == 0
    assert counted.chars == size
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert wait_until(lambda: corral("ls", "--json").json()["jobs"][0]["state"] == "completed")


class Counter:
    """A stdout that counts what it is given (and is not a terminal)."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False
