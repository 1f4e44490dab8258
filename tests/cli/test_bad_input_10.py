"""Issue 10 at the command line: what used to exit 70 or be accepted wrongly is exit 2, one
line, and nothing changed (the checks themselves are in tests/core/test_validation.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.lock import holder
from corral.registry.driver import sqlite3
from tests.cli.conftest import run_corral, snapshot
from tests.cli.test_bad_input import USAGE, check, seeded

__all__ = ["seeded"]  # (the fixture, used by name)

BYTES_CASES = [
    # (argv, files to create as bytes, words in the message)
    (["submit", "{job.json}"], {"job.json": b'{"command": ["echo", "\xff"]}'}, "not UTF-8"),
    (["submit", "{job.json}"], {"job.json": b"[" * 50_000 + b"]" * 50_000}, "nested too deeply"),
    (
        ["submit", "{job.json}"],
        {"job.json": b'{"command": ["a"], "name": "x", "name": "y"}'},
        "twice",
    ),
    (["submit", "--split", "{a.txt}", "--", "echo"], {"a.txt": b"\xff\xfe\n"}, "not UTF-8"),
    (["submit", "--script", "{s.sh}"], {"s.sh": b"echo \xff\n"}, "not UTF-8"),
    (["submit", "{job.json}"], {"job.json": b'{"command": [""]}'}, "command"),
    (["submit", "{job.json}"], {"job.json": b'{"command": ["echo", "a\\u0000x"]}'}, "NUL"),
    (["submit", "{job.json}"], {"job.json": b'{"command": ["a"], "outputs": [""]}'}, "outputs"),
    (
        ["submit", "{job.json}"],
        {"job.json": b'{"command": ["a"], "resources": {"walltime": true}}'},
        "walltime",
    ),
    (
        ["submit", "{job.json}"],
        {"job.json": b'{"command":["a"],"splitter":{"kind":"sweep","parameters":{"x":["1","1"]}}}'},
        "given twice",
    ),
    (
        ["submit", "{job.json}"],
        {"job.json": b'{"command":["a"],"splitter":{"kind":"sweep","parameters":{"x":[""]}}}'},
        "non-empty",
    ),
]


@pytest.mark.parametrize(
    ("argv", "files", "words"), BYTES_CASES, ids=[c[2] + "-" + c[0][-1] for c in BYTES_CASES]
)
def test_bad_files(seeded: Path, argv: list[str], files: dict[str, bytes], words: str) -> None:
    for name, content in files.items():
        (seeded / name).write_bytes(content)
    argv = [str(seeded / a.strip("{}")) if a.startswith("{") else a for a in argv]
    before = snapshot(seeded)
    check(run_corral(seeded, *argv), USAGE, words)
    assert snapshot(seeded) == before


CASES = [
    (["submit", "-O", "x=nan", "--", "echo", "a"], "backend_options.x"),
    (["submit", "-O", "x=inf", "--dry-run", "--", "echo"], "backend_options.x"),
    (["submit", "--walltime", "400d", "--", "echo"], "walltime"),
    (["submit", "--memory", "2P", "--", "echo"], "memory"),
    (["submit", "--cpus", "0", "--", "echo"], "cpus"),
    (["submit", "--tag", "a,b", "--", "echo"], "tags.0"),
    (["submit", "--tag", "a\nb", "--", "echo"], "tags.0"),
    (["submit", "--tag", "\x1b[2J", "--", "echo"], "tags.0"),
    (["submit", "--", ""], "command"),
    (["submit", "-o", "", "--", "echo"], "outputs"),
    (["submit", "-i", "a" * 300, "--", "cat"], "input_files"),
    (["submit", "--sweep", "a=1,2", "--sweep", "A=3", "--", "echo"], "both export $A"),
    (["submit", "--sweep", "path=a,b", "--", "echo"], "$PATH"),
    (["submit", "--sweep", "home=a", "--", "echo"], "$HOME"),
    (["submit", "--sweep", "x=1,1", "--", "echo"], "given twice"),
    (["submit", "--sweep", "n=0..100000000000000000000", "--", "echo"], "max_subjobs"),
    (["submit", "--sweep", "a=1..1000", "--sweep", "b=1..1000", "--", "echo"], "max_subjobs"),
    (["submit", "--dry-run", "-i", "nothere.dat", "--", "cat"], "no such file"),
    (["submit", "--dry-run", "-O", "partition=x", "--", "echo"], "unknown option"),
    (["submit", "--dry-run", "-b", "slurm", "-O", "nosuch=x", "--", "echo"], "unknown option"),
    (["submit", "--dry-run", "-b", "slurm", "-O", "qos=a\nb", "--", "echo"], "single-line"),
    (["submit", "-e", "CORRAL_HOME=/x", "--", "echo"], "environment"),
    (["show", "\u0661"], "not a job id"),
    (["show", str(2**63)], "not a job id"),
    (["kill", str(2**70)], "not a job id"),
    (["rm", "99999999999999999999"], "not a job id"),
    (["wait", "--timeout", "-1", "1"], "timeout"),
    (["--set", "idle_exit=nan", "ls"], "idle_exit"),
    (["--set", "idle_exit=1e400", "ls"], "idle_exit"),
    (["--set", "backends.local.kill_grace=nan", "submit", "--", "true"], "kill_grace"),
    (["--set", "max_subjobs=0", "ls"], "max_subjobs"),
]


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input(seeded: Path, argv: list[str], words: str) -> None:
    before = snapshot(seeded)
    check(run_corral(seeded, *argv), USAGE, words)
    assert snapshot(seeded) == before
    assert holder(seeded / "monitor.lock") is None


def test_non_utf8_argument(seeded: Path) -> None:
    """A non-UTF-8 byte in argv (``--dry-run`` said "valid")."""
    for extra in (["--dry-run"], []):
        done = subprocess.run(
            [sys.executable, "-m", "corral.cli", "submit", *extra, "--", "echo", b"\xff"],
            capture_output=True,
            text=True,
            env=dict(os.environ, CORRAL_HOME=str(seeded), NO_COLOR="1"),
            timeout=60,
        )
        assert done.returncode == USAGE, done
        assert "not valid UTF-8" in done.stderr


def test_wait_timeout_zero_on_a_final_job(cli_home: Path) -> None:
    assert run_corral(cli_home, "submit", "--wait", "-q", "--", "true").code == 0
    for timeout in ("0", "0.001"):
        waited = run_corral(cli_home, "wait", "1", "--timeout", timeout)
        assert waited.code == 0, waited
    check(run_corral(cli_home, "wait", "1", "--timeout", "-1"), USAGE, "timeout")


def test_home_pointing_at_a_file(seeded: Path) -> None:
    (seeded / "afile").write_text("")
    check(run_corral(seeded, "--home", str(seeded / "afile"), "ls"), USAGE, "expected a directory")


def test_sweep_at_the_cap_dry_run(seeded: Path) -> None:
    result = run_corral(seeded, "submit", "--dry-run", "--sweep", "n=1..50000", "--", "echo")
    assert result.code == 0, result
    assert "50000 subjobs" in result.out
    assert "... and 49995 more" in result.out


def test_bad_stored_spec_shown_killed_removed(seeded: Path) -> None:
    """``-O x=nan`` was stored as null: the stored spec failed on every read and show, kill
    and rm --force exited 70."""
    conn = sqlite3.connect(seeded / "registry.db")
    try:
        with conn:
            spec = {"command": ["true"], "backend_options": {"x": None}}
            conn.execute("UPDATE jobs SET spec = ? WHERE job_id = 1", (json.dumps(spec),))
    finally:
        conn.close()
    shown = run_corral(seeded, "show", "1")
    assert shown.code == 0, shown
    assert "problem: stored invalid job spec: backend_options.x" in shown.out
    as_json = run_corral(seeded, "show", "1", "--json")
    assert as_json.code == 0, as_json
    assert "backend_options.x" in as_json.json()["job"]["problem"]
    assert run_corral(seeded, "ls").code == 0
    assert run_corral(seeded, "ls", "--json").json()["jobs"][0]["id"] == "1"
    killed = run_corral(seeded, "kill", "1")
    assert killed.code == 0, killed
    removed = run_corral(seeded, "rm", "--force", "1")
    assert removed.code == 0, removed
    assert run_corral(seeded, "show", "1").code == USAGE


def corrupt(home: Path, job: int, spec: object) -> None:
    conn = sqlite3.connect(home / "registry.db")
    try:
        with conn:
            conn.execute("UPDATE jobs SET spec = ? WHERE job_id = ?", (json.dumps(spec), job))
    finally:
        conn.close()


def test_bad_stored_spec_of_new_and_running_jobs_under_a_monitor(cli_home: Path) -> None:
    """A corrupted spec row never takes the monitor down: a new job is failed with the problem
    (``ls`` shows it, with the reason in ``--json``), a running one can be killed or removed,
    and the other jobs run."""
    from tests.cli.conftest import stop_monitor, wait_until

    def states() -> dict[str, str]:
        return {j["id"]: j["state"] for j in run_corral(cli_home, "ls", "--json").json()["jobs"]}

    for _ in range(2):
        assert run_corral(cli_home, "submit", "-q", "--", "sleep", "60").code == 0
    assert wait_until(lambda: states() == {"1": "running", "2": "running"}, timeout=60)
    stop_monitor(cli_home)  # the next monitor reads the corrupted rows at its start
    for job in (1, 2):
        corrupt(cli_home, job, {"command": [""], "walltime": 1})
    assert run_corral(cli_home, "--set", "autostart=false", "submit", "-q", "--", "x").code == 0
    corrupt(cli_home, 3, {"command": ["true"], "backend_options": {"x": None}})
    assert run_corral(cli_home, "submit", "-q", "--", "true").code == 0  # starts a monitor
    assert wait_until(lambda: states().get("4") == "completed", timeout=60)
    assert wait_until(lambda: states().get("3") == "failed", timeout=60)
    listed = {j["id"]: j for j in run_corral(cli_home, "ls", "--json").json()["jobs"]}
    assert "stored invalid job spec: backend_options.x" in listed["3"]["reason"]
    assert states()["1"] == "running"
    shown = run_corral(cli_home, "show", "1", "--json").json()["job"]
    assert "command" in shown["problem"] and "walltime" in shown["problem"]
    assert run_corral(cli_home, "kill", "1").code == 0
    assert run_corral(cli_home, "rm", "--force", "2").code == 0
    assert wait_until(lambda: states() == {"1": "killed", "3": "failed", "4": "completed"}, 60)
    status = run_corral(cli_home, "monitor", "--status", "--json").json()
    assert status["last_error"] is None, status  # (no monitor died; it may have idled out)


@pytest.mark.parametrize("verb", ["show", "peek", "kill", "resubmit", "rm", "copy", "wait"])
@pytest.mark.parametrize("job", [str(2**63), str(2**70), "\u0661", "1\u0662"])
def test_bad_ids_on_every_verb(seeded: Path, verb: str, job: str) -> None:
    """Ids past 2^63 were exit 70 on every verb; U+0661 (Arabic-Indic one) was taken as 1."""
    before = snapshot(seeded)
    check(run_corral(seeded, verb, job), USAGE, "not a job id")
    assert snapshot(seeded) == before
