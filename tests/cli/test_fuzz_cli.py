"""Issue 10: random argument lists through the real CLI entry (``corral.cli.main``, in this
process): every outcome is exit 0, or exit 2 / 3 with one line on stderr and no traceback,
and a refused call leaves the registry and the job files exactly as they were.

Derandomised (the same examples on every run, no example database); 1,000 examples. Verbs that
would wait for jobs or run a monitor (``wait``, ``submit --wait``, ``monitor``, ``shell``,
``demo``) are left out: with autostart off nothing here runs a job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.lock import holder
from corral.registry import Registry
from corral.registry.driver import sqlite3
from corral.spec import JobSpec

EXAMPLES = 1000
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

JUNK = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(["\x00", "\x1b", "\n", "\udcff", "\u0661", ",", "=", "-", ".", "%"]),
    max_size=8,
) | st.sampled_from(["\x1b[2J", "a..b", "-", "a=", "=1"])
IDS = st.sampled_from(["1", "2", "1.0", "2.1", "0", "-1", "99", "1.", "\u0661", str(2**63)])
VALUES = (
    IDS
    | st.sampled_from(["running", "new", "active", "bogus", "30s", "2h", "-5", "nan", "1e400"])
    | st.sampled_from(["512M", "2P", "1:00:00", "400d", "x=1,2", "a=1..3", "queue=x", "K=V"])
    | st.sampled_from(["job.toml", "bad.json", "args.txt", "missing.txt", "script.sh", "in.dat"])
    | JUNK
)
KNOWN = ["ls", "show", "peek", "kill", "resubmit", "rm", "copy", "gc", "submit", "config"]
VERBS = st.sampled_from([*KNOWN * 4, "submit", "submit", "plugins", "frobnicate", "", "-x"])
SETTINGS = st.sampled_from(
    ["idle_exit", "max_subjobs", "backends.local.max_cpus", "nosuch", ""]  # (no autostart)
)
GLOBAL = st.lists(
    st.tuples(st.just("--set"), st.builds("{}={}".format, SETTINGS, VALUES)).map(list)
    | st.just(["--version"]),
    max_size=1,
).map(lambda groups: [word for group in groups for word in group])


def options_of(verb: str) -> list[str]:
    """Every option the verb takes, read from its Typer command (and one it does not)."""
    import typer

    from corral.cli.app import COMMANDS, build

    group = typer.main.get_command(build(verb if verb in COMMANDS else None))
    command = getattr(group, "commands", {}).get(verb)
    if command is None:
        return ["--bogus"]
    if verb == "config":
        command = getattr(command, "commands", {})["show"]
    found = [name for param in command.params for name in param.opts if name.startswith("-")]
    return [name for name in found if name not in ("--wait", "-w", "--follow", "-f")] + ["--bogus"]


OPTIONS = {verb: st.sampled_from(options_of(verb)) for verb in [*KNOWN, "plugins"]}


def groups(verb: str) -> st.SearchStrategy[list[str]]:
    options = OPTIONS.get(verb, st.just("--bogus"))
    return (
        st.tuples(options, VALUES).map(list)
        | st.tuples(options).map(list)
        | st.tuples(IDS).map(list)
        | st.tuples(VALUES).map(list)
    )


TAIL = st.lists(st.sampled_from(["echo", "true", "sleep", ""]) | JUNK, min_size=1, max_size=3)


@st.composite
def argv(draw: Any) -> list[str]:
    verb = draw(VERBS)
    words = [*draw(GLOBAL), verb] if verb else draw(GLOBAL)
    if verb == "config":
        words.append(draw(st.sampled_from(["show", "path", "nope"])))
    for group in draw(st.lists(groups(verb), max_size=4)):
        words += group
    tail_odds = [False] * 19 + [True] if verb != "submit" else [True] * 4 + [False]
    if draw(st.sampled_from(tail_odds)):  # a command after `--`
        words += ["--", *draw(TAIL)]
    return words


_WATCHERS: dict[Path, sqlite3.Connection] = {}


def written(home: Path) -> tuple[int, list[str]]:
    """What tells a write: the registry's ``data_version`` as one long-lived connection sees it
    (it changes with every commit of any other connection; cheaper than a dump per example),
    and the job files."""
    if home not in _WATCHERS:
        _WATCHERS[home] = sqlite3.connect(f"file:{home / 'registry.db'}?mode=ro", uri=True)
    (version,) = _WATCHERS[home].execute("PRAGMA data_version").fetchone()
    jobs = home / "jobs"
    return version, sorted(str(p) for p in jobs.rglob("*"))


@pytest.fixture
def fuzz_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home with autostart off and two jobs that stay `new`; files a command line may name."""
    (home / "config.toml").write_text("autostart = false\n")
    registry = Registry(home / "registry.db", home / "jobs")
    try:
        registry.add(JobSpec(command=("true",), name="a", tags=("x",)), [])
        sweep = JobSpec.model_validate(
            {"command": ["echo"], "splitter": {"kind": "sweep", "parameters": {"n": ["1", "2"]}}}
        )
        registry.add(sweep, list(__import__("corral.splitters").splitters.split(sweep)))
    finally:
        registry.close()
    cwd = home / "cwd"
    cwd.mkdir()
    (cwd / "job.toml").write_text('command = ["echo", "hi"]\n')
    (cwd / "bad.json").write_bytes(b'{"command": ["\xff"]}')
    (cwd / "args.txt").write_text("a b\nc 'd\n")
    (cwd / "script.sh").write_text("echo hi\n")
    (cwd / "in.dat").write_text("data\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NO_COLOR", "1")
    yield home
    with contextlib.suppress(KeyError):
        _WATCHERS.pop(home).close()
    assert holder(home / "monitor.lock") is None  # nothing started a monitor


@pytest.mark.timeout(300)  # (28 s at a load of 8 on 2 cores, 77 s at 16)
@FUZZ
@given(argv())
def test_cli_argument_lists(
    fuzz_home: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    from corral.cli import main

    before = written(fuzz_home)
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err, f"corral {args!r}: {err}"
    if code == 0:
        return
    assert code in (2, 3), f"corral {args!r} exited {code}: {err!r}"
    assert err.count("\n") == 1 and err.startswith("corral: "), f"corral {args!r}: {err!r}"
    assert "Traceback" not in err
    assert written(fuzz_home) == before, f"corral {args!r} refused ({err.strip()}) but wrote"


def test_examples_per_target() -> None:
    assert EXAMPLES >= 1000


def test_written_sees_a_write_and_a_kill(
    fuzz_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from corral.cli import main

    before = written(fuzz_home)
    assert main(["kill", "1"]) == 0
    assert written(fuzz_home) != before
    before = written(fuzz_home)
    assert main(["submit", "--", "true"]) == 0
    assert written(fuzz_home) != before
