"""Job isolation through the CLI and the background daemon (issue 9)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from tests.cli.conftest import run_corral


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_each_submit_runs_with_its_own_environment(cli_home: Path, corral: Any) -> None:
    """Issue 9, item 5: the daemon was started by the first submit; the second job must still
    see the second submitter's FOO, PATH and tokens, not the daemon's."""
    first = run_corral(
        cli_home, "submit", "-q", "--", "sh", "-c", "echo $FOO", env={"FOO": "first"}
    )
    path = f"/opt/other-venv/bin:{os.environ['PATH']}"
    second = run_corral(
        cli_home,
        "submit",
        "-q",
        "--",
        "sh",
        "-c",
        'echo "$FOO $PATH ${TOKEN:-}"',
        env={"FOO": "second", "PATH": path, "TOKEN": "t2"},
    )
    assert first.code == 0 and second.code == 0, (first, second)
    assert corral("wait", "--all", "--timeout", "60").code == 0
    assert corral("peek", first.out.strip()).out == "first\n"
    assert corral("peek", second.out.strip()).out == f"second {path} t2\n"


def test_two_inputs_with_one_name_are_exit_2(cli_home: Path, corral: Any) -> None:
    for name in ("a", "b"):
        (cli_home / name).mkdir()
        (cli_home / name / "d").write_text(name)
    refused = corral("submit", "-i", "a/d", "-i", "b/d", "--", "ls")
    assert refused.code == 2 and "would both land on 'd'" in refused.err, refused
    assert corral("ls", "--json").json()["jobs"] == []
    placed = corral("submit", "-q", "-i", "a/d", "-i", "b/d:d2", "--", "sh", "-c", "cat d d2")
    assert placed.code == 0, placed
    assert corral("wait", placed.out.strip(), "--timeout", "60").code == 0
    assert corral("peek", placed.out.strip()).out.strip() == "ab"


def test_files_corral_creates_are_private(cli_home: Path, corral: Any) -> None:
    os.umask(old := os.umask(0o022))  # the submitter's usual umask
    done = corral("submit", "-q", "--wait", "-o", "o.txt", "--", "sh", "-c", "echo x > o.txt")
    assert done.code == 0, done
    assert mode_of(cli_home / "monitor.log") == 0o600
    assert mode_of(cli_home / "jobs") == 0o700
    assert mode_of(cli_home / "registry-id") == 0o600
    for path in (cli_home / "jobs").rglob("*"):
        if path.is_symlink():
            continue
        assert mode_of(path) in (0o700, 0o600), path
    assert old is not None


def test_a_home_readable_by_others_is_warned_about(cli_home: Path, corral: Any) -> None:
    os.chmod(cli_home, 0o755)
    try:
        result = corral("submit", "--", "true")
        assert result.code == 0
        assert "readable by others" in result.err and "chmod 700" in result.err
        assert mode_of(cli_home) == 0o755  # reported, not changed
    finally:
        os.chmod(cli_home, 0o700)
