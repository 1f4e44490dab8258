"""The lean ``corral ls`` (``corral.cli.fast``, no Typer) prints exactly what the Typer verb
prints: stdout, stderr and exit code, byte for byte, over flag combinations and registries
(none, hostile stored text, a backend seen down), piped and on a terminal.

The full path is forced with ``CORRAL_DEBUG=0`` in the environment: debug stays off in both
(``0`` is false for Typer and for ``corral.cli``), and the fast path leaves any ``CORRAL_DEBUG``
to Typer, so that run never takes it.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.registry import Registry
from corral.registry.driver import sqlite3
from corral.spec import JobSpec
from tests.cli.test_listing import seed

HOSTILE = [  # (name, tags) as an older corral may have stored them
    ("x\n99  forged  completed\x1b[2J", ",a\x1b]0;title\x07,b\u202e,"),
    ('q"uo\\te', ',q"uo\\te,'),
    ("é名前", ",é,"),
    ("ctl\x01", ",one\x02,"),
    ("tab\tname", ",a,b,c,"),
    ("x" * 90, ",long,"),
    ("\u2028ls", ",\\,"),
]


def hostile(home: Path) -> None:
    registry = Registry(home / "registry.db", home / "jobs")
    try:
        for i in range(10):
            registry.add(JobSpec(command=("true",), name=f"n{i}", tags=("t",)), [])
        sweep = JobSpec(command=("echo",), name="sweep", tags=("a", "b"))
        registry.add(sweep, [sweep, sweep, sweep])
    finally:
        registry.close()
    with sqlite3.connect(home / "registry.db") as conn:
        for job_id, (name, tags) in enumerate(HOSTILE, 1):
            conn.execute(
                "UPDATE jobs SET name = ?, tags = ?, reason = ? WHERE job_id = ?",
                (name, tags, name, job_id),
            )
        conn.execute("UPDATE jobs SET backend = 'lo\x9bcal\r' WHERE job_id = 8")
        conn.execute("UPDATE jobs SET state = 'failed', exit_code = 3, signal = 9 WHERE job_id = 9")
        conn.execute("UPDATE jobs SET state = 'running' WHERE job_id = 10")
        # Half an hour old: AGE reads 30m in both runs of a comparison (jobs seconds old read
        # 0s in one and 1s in the next when a loaded machine spaces the two runs a second apart).
        conn.execute("UPDATE jobs SET created_at = created_at - 1800")
        conn.execute(
            "INSERT INTO backend_status (name, kind, state, reason, since, active, interval, "
            "polls, errors, consecutive_errors, calls, updated_at) "
            "VALUES ('local', 'local', 'down', 'gone', 0, 0, 0, 0, 0, 0, '{}', ?)",
            (time.time(),),
        )
    conn.close()


def corral(
    home: Path, args: list[str], *, full: bool, tty: bool = False
) -> tuple[int, bytes, bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("CORRAL_DEBUG", "NO_COLOR")}
    env.update(CORRAL_HOME=str(home), COLUMNS="100")
    if full:
        env["CORRAL_DEBUG"] = "0"
    command = [sys.executable, "-m", "corral.cli", *args]
    if not tty:
        done = subprocess.run(command, capture_output=True, env=env, cwd=home, timeout=60)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, env=env, cwd=home)
        os.close(follower)
        out = b""
        while chunk := _read(leader):
            out += chunk
        err = proc.communicate(timeout=60)[1]
    finally:
        os.close(leader)
    return proc.returncode, out, err


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        return b""


def same(home: Path, args: list[str], tty: bool = False) -> tuple[int, bytes, bytes]:
    fast = corral(home, args, full=False, tty=tty)
    full = corral(home, args, full=True, tty=tty)
    assert fast == full, args
    return fast


ARGS = [
    ["ls"],
    ["ls", "--json"],
    ["--debug", "ls", "--json"],
    ["ls", "3", "11.1", "11.0", "--json"],
    ["ls", "11.2", "1"],
    ["ls", "-s", "failed,running", "--tag", "a", "-t", "t"],
    ["ls", "--state=final", "--name", "n*", "--backend", "local", "-b", "slurm"],
    ["ls", "--older-than", "0s", "--json"],
    ["ls", "--since", "1h", "--name", "*"],
    ["--set", "idle_exit=5", "ls", "--newer-than=2d"],
    ["ls", "--name", "nomatch"],
    # errors and what the fast path leaves to Typer: the same words and codes either way
    ["ls", "--state", "bogus"],
    ["ls", "--older-than", "soon"],
    ["ls", "4.x"],
    ["ls", "--nope"],
    ["ls", "--json=1"],
    ["ls", "-s"],
    ["ls", "-h"],
    ["ls", "--older-than", "1h", "--older-than", "2h"],
    ["--set", "novalue", "ls"],
    ["--set", "idle_exit=oops", "ls"],
    ["ls", "--", "echo"],
    ["ls", "--home", "/tmp"],
]


@pytest.mark.parametrize("args", ARGS, ids=[" ".join(a) for a in ARGS])
def test_fast_ls_prints_what_the_full_verb_prints(home: Path, args: list[str]) -> None:
    hostile(home)
    code, out, err = same(home, args)
    if args in (["ls"], ["ls", "--json"]):
        assert code == 0 and out.count(b"\n") > 10 and not err


@pytest.mark.parametrize("args", [["ls"], ["ls", "--json"], ["ls", "-s", "active"]])
def test_fast_ls_on_many_jobs_and_on_no_registry(home: Path, args: list[str]) -> None:
    same(home, args)  # no registry: the header, or no jobs, and none is made
    assert not (home / "registry.db").exists()
    seed(home)
    assert same(home, args)[0] == 0


def test_fast_ls_with_home_flag(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    hostile(other)
    for args in (["--home", str(other), "ls"], [f"--home={other}", "ls", "--json"]):
        code, out, _ = same(home, args)
        assert code == 0 and b"sweep" in out


@pytest.mark.parametrize("args", [["ls"], ["ls", "--json"], ["ls", "--name", "nomatch"]])
def test_fast_ls_on_a_terminal_colours_like_the_full_verb(home: Path, args: list[str]) -> None:
    hostile(home)
    code, out, _ = same(home, args, tty=True)
    assert code == 0
    if args == ["ls"]:
        assert b"\x1b[31mfailed" in out  # coloured, and the stored escapes are still escaped
        assert b"\x1b[2J" not in out and b"\x1b]0;" not in out


def test_fast_ls_imports_neither_typer_nor_pydantic(home: Path) -> None:
    hostile(home)
    probe = (
        "import sys; from corral.cli import main; code = main(['ls', '--json']); "
        "heavy = [m for m in ('typer', 'click', 'rich', 'pydantic', 'sqlalchemy') "
        "if m in sys.modules]; print(code, heavy, file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_DEBUG"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stderr.strip() == "0 []"


@pytest.mark.parametrize("args", [["ls"], ["ls", "--json"]])
def test_fast_ls_into_a_closed_pipe_exits_like_the_full_verb(home: Path, args: list[str]) -> None:
    seed(home, 3000)  # more than a pipe holds, so the write meets the closed end
    found = []
    for full in (False, True):
        env = {k: v for k, v in os.environ.items() if k != "CORRAL_DEBUG"}
        env.update(CORRAL_HOME=str(home), **({"CORRAL_DEBUG": "0"} if full else {}))
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(10)
        proc.stdout.close()  # as `| head -c 10` does
        err = proc.stderr.read()
        proc.stderr.close()
        found.append((proc.wait(timeout=60), err))
    assert found[0] == found[1] == (1, b"")


def _with_system_sqlite(home: Path, args: list[str], full: bool) -> tuple[int, bytes, bytes]:
    """``corral`` as on a platform without the ``sqlean`` wheel (``corral.registry.driver``
    falls back to the standard library's module and the system's SQLite)."""
    probe = (
        "import sys; sys.modules['sqlean'] = None; from corral.cli import main; "
        f"sys.exit(main({args!r}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CORRAL_DEBUG", "NO_COLOR")}
    env.update(CORRAL_HOME=str(home), COLUMNS="100", **({"CORRAL_DEBUG": "0"} if full else {}))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, env=env, cwd=home, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "args", [["ls"], ["ls", "--json"], ["ls", "-s", "failed,running", "--tag", "a", "--json"]]
)
def test_ls_prints_the_same_on_the_system_sqlite(home: Path, args: list[str]) -> None:
    hostile(home)
    expected = same(home, args)
    assert expected[0] == 0
    for full in (False, True):
        assert _with_system_sqlite(home, args, full) == expected, (args, full)
