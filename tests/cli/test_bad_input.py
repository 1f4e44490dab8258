"""Bad input: one line on stderr, the right exit code, and nothing changed in the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.lock import holder, try_lock, unlock
from corral.registry import Registry
from corral.spec import JobSpec
from tests.cli.conftest import Result, run_corral, snapshot

USAGE, UNAVAILABLE = 2, 3


@pytest.fixture
def seeded(cli_home: Path) -> Path:
    """A registry holding one job that is still `new`: a daemon started by mistake would run it
    and change the registry."""
    (cli_home / "config.toml").write_text("autostart = false\n")
    registry = Registry(cli_home / "registry.db", cli_home / "jobs")
    try:
        registry.add(JobSpec(command=("true",), name="seed", tags=("x",)), [])
    finally:
        registry.close()
    return cli_home


def write(home: Path, name: str, text: str) -> str:
    (home / name).write_text(text)
    return str(home / name)


def check(result: Result, code: int, words: str) -> None:
    lines = result.err.strip().splitlines()
    assert result.code == code, result
    assert len(lines) == 1, f"expected one line, got {result.err!r}"
    assert lines[0].startswith("corral: "), lines
    assert words.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.err


CASES = [
    # (argv, files to create, exit code, words in the message)
    (["submit", "missing.toml"], {}, USAGE, "cannot read job file"),
    (["submit", "{bad.toml}"], {"bad.toml": "command = [\n"}, USAGE, "not valid toml"),
    (["submit", "{bad.json}"], {"bad.json": '{"command": ["x"]'}, USAGE, "not valid json"),
    (["submit", "{job.toml}"], {"job.toml": 'commnd = ["echo"]\n'}, USAGE, "commnd"),
    (["submit", "{job.toml}"], {"job.toml": "name = 'x'\n"}, USAGE, "exactly one of"),
    (
        ["submit", "{job.toml}"],
        {"job.toml": 'command=["x"]\nresources={cpus=0}\n'},
        USAGE,
        "resources.cpus",
    ),
    (["submit", "notes.txt"], {"notes.txt": "hi"}, USAGE, ".toml or .json"),
    (["submit", "-b", "nosuch", "--", "echo", "hi"], {}, USAGE, "unknown backend 'nosuch'"),
    (
        ["submit", "{job.toml}"],
        {"job.toml": 'command=["x"]\nbackend="nope"\n'},
        USAGE,
        "unknown backend 'nope'",
    ),
    (["submit", "-b", "Bad Name", "--", "echo"], {}, USAGE, "backend"),
    (["submit", "--sweep", "x", "--", "echo"], {}, USAGE, "expected NAME=V1,V2"),
    (["submit", "--sweep", "1x=a,b", "--", "echo"], {}, USAGE, "not a parameter name"),
    (["submit", "--sweep", "x=", "--", "echo"], {}, USAGE, "non-empty"),
    (["submit", "--sweep", "x=a,,b", "--", "echo"], {}, USAGE, "non-empty"),
    (["submit", "--sweep", "x=1", "--sweep", "x=2", "--", "echo"], {}, USAGE, "given twice"),
    (["submit", "--sweep", "n=5..1", "--", "echo"], {}, USAGE, "a range goes up"),
    (
        ["submit", "--sweep", "x=1", "--split", "{args.txt}", "--", "echo"],
        {"args.txt": "a\n"},
        USAGE,
        "not both",
    ),
    (["submit", "--split", "missing.txt", "--", "echo"], {}, USAGE, "cannot read"),
    (
        ["submit", "--split", "{args.txt}", "--", "echo"],
        {"args.txt": "a 'b\n"},
        USAGE,
        "args.txt:1",
    ),
    (
        ["submit", "--split", "{args.txt}", "--", "echo"],
        {"args.txt": "# only comments\n"},
        USAGE,
        "no argument lines",
    ),
    (["submit", "-i", "nothere.dat", "--", "cat"], {}, USAGE, "no such file"),
    (["submit", "--memory", "lots", "--", "echo"], {}, USAGE, "memory"),
    (["submit", "--cpus", "two", "--", "echo"], {}, USAGE, "--cpus"),
    (["submit", "--env", "NOEQUALS", "--", "echo"], {}, USAGE, "KEY=VALUE"),
    (["submit"], {}, USAGE, "nothing to run"),
    (["submit", "--"], {}, USAGE, "nothing after '--'"),
    (["submit", "{job.toml}", "--", "echo"], {"job.toml": 'command=["x"]\n'}, USAGE, "not both"),
    (["show", "4x2"], {}, USAGE, "not a job id"),
    (["show", "1."], {}, USAGE, "not a job id"),
    (["show", "99"], {}, USAGE, "no job 99"),
    (["show", "1.5"], {}, USAGE, "no job 1.5"),
    (["peek", "-1"], {}, USAGE, "no such option"),
    (["kill", "7"], {}, USAGE, "no job 7"),
    (["kill"], {}, USAGE, "give job ids or a selection"),
    (["kill", "--state", "runing"], {}, USAGE, "unknown state 'runing'"),
    (["resubmit", "abc"], {}, USAGE, "not a job id"),
    (["rm", "1"], {}, USAGE, "still active"),
    (["rm", "1.0"], {}, USAGE, "whole jobs"),
    (["rm", "--tag", "x"], {}, USAGE, "still active"),
    (["copy", "12"], {}, USAGE, "no job 12"),
    (["wait", "3"], {}, USAGE, "no job 3"),
    (["wait"], {}, USAGE, "give job ids"),
    (["ls", "--older-than", "three weeks"], {}, USAGE, "not a duration"),
    (["ls", "--frobnicate"], {}, USAGE, "no such option"),
    (["frobnicate"], {}, USAGE, "no such command"),
    (["--set", "nosuch=1", "ls"], {}, USAGE, "unknown setting 'nosuch'"),
    (["--set", "idle_exit=-1", "ls"], {}, USAGE, "idle_exit"),
    (["--set", "backends.local.cpus=2", "submit", "--", "true"], {}, USAGE, "local.cpus: unknown"),
    (["--set", "backends.local.max_cpus=abc", "submit", "--", "true"], {}, USAGE, "'abc'"),
    (["--set", "backends.local.max_cpus=0", "submit", "--", "true"], {}, USAGE, "max_cpus"),
    (["--set", "backends.local.kill_grace=true", "submit", "--", "true"], {}, USAGE, "grace"),
    (["submit", "-O", "queue=x", "--", "true"], {}, USAGE, "backend_options.queue: unknown"),
    (["submit", "--cpus", "100001", "--", "true"], {}, USAGE, "cpus"),
    (["peek", "1", "--", "x"], {}, USAGE, "only 'corral submit'"),
    (["monitor", "--once", "--stop"], {}, USAGE, "at most one"),
]


@pytest.mark.parametrize(
    ("argv", "files", "code", "words"), CASES, ids=[" ".join(c[0]) for c in CASES]
)
def test_bad_input_changes_nothing(
    seeded: Path, argv: list[str], files: dict[str, str], code: int, words: str
) -> None:
    paths = {name: write(seeded, name, text) for name, text in files.items()}
    argv = [paths.get(a.strip("{}"), a) if a.startswith("{") else a for a in argv]
    before = snapshot(seeded)
    check(run_corral(seeded, *argv), code, words)
    assert snapshot(seeded) == before
    assert holder(seeded / "monitor.lock") is None


@pytest.mark.parametrize(
    ("config", "words", "read_path"),
    [
        ("idle_exit = 'soon'\n", "idle_exit: expected a number", True),
        ("frobnicate = 1\n", "unknown setting 'frobnicate'", True),
        ("[backends.local]\nmin_interval = 5\nmax_interval = 1\n", "min_interval", True),
        ("autostart = maybe\n", "not valid toml", True),
        # backend options are checked by the verbs that use a backend, not by `ls`
        ("[backends.local]\nmax_cpu = 2\n", "backends.local.max_cpu: unknown option", False),
        ("[backends.local]\nmax_cpus = 'abc'\n", "backends.local.max_cpus", False),
        ("[backends.gpu]\ntype = 'slurmm'\n", "unknown backend type 'slurmm'", False),
        ("[backends.slurm]\ncommand_timeout = -1\n", "command_timeout", False),
    ],
)
def test_bad_config_is_reported_and_changes_nothing(
    seeded: Path, config: str, words: str, read_path: bool
) -> None:
    (seeded / "config.toml").write_text(config)
    before = snapshot(seeded)
    check(run_corral(seeded, "submit", "--", "echo", "hi"), USAGE, words)
    check(run_corral(seeded, "submit", "--dry-run", "--", "echo", "hi"), USAGE, words)
    if read_path:
        check(run_corral(seeded, "ls"), USAGE, words)
    else:
        assert run_corral(seeded, "ls").code == 0
    assert snapshot(seeded) == before


def test_no_registry_is_created_by_reading_verbs(cli_home: Path) -> None:
    for argv in (["ls"], ["ls", "--json"], ["gc"], ["monitor", "--status"], ["config", "show"]):
        assert run_corral(cli_home, *argv).code == 0, argv
    check(run_corral(cli_home, "show", "1"), USAGE, "no jobs yet")
    check(run_corral(cli_home, "kill", "1"), USAGE, "no jobs yet")
    assert not (cli_home / "registry.db").exists()
    assert not (cli_home / "jobs").exists()


def test_a_busy_monitor_is_exit_code_3(seeded: Path) -> None:
    fd = try_lock(seeded / "monitor.lock")
    assert fd is not None
    try:
        before = snapshot(seeded)
        result = run_corral(seeded, "monitor", "--once")
        check(result, UNAVAILABLE, "another monitor")
        assert "corral monitor --stop" in result.err
        assert snapshot(seeded) == before
    finally:
        unlock(fd)


def test_a_corrupt_registry_is_exit_code_3(cli_home: Path) -> None:
    (cli_home / "registry.db").write_text("this is not sqlite\n")
    check(run_corral(cli_home, "ls"), UNAVAILABLE, "registry")
    check(run_corral(cli_home, "show", "1"), UNAVAILABLE, "registry")


def test_an_internal_bug_is_exit_code_70(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from corral.cli import main
    from corral.registry import sqlite_listing

    def broken(*args: object, **kwargs: object) -> str:
        raise KeyError("oops")

    monkeypatch.setattr(sqlite_listing, "listing_json", broken)
    (cli_home / "registry.db").touch()
    assert main(["ls", "--json"]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "internal error: KeyError" in err and "--debug" in err
    assert main(["--debug", "ls", "--json"]) == 70
    assert "Traceback" in capsys.readouterr().err
