from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from corral import admit, sandbox
from corral.errors import InvalidSpec
from corral.spec import parse_spec


def run_job(spec_data: dict[str, object], attempt_dir: Path) -> subprocess.CompletedProcess[str]:
    spec = parse_spec(spec_data)
    sandbox.prepare(spec, attempt_dir)
    return subprocess.run(
        ["sh", str(attempt_dir / "job.sh")], capture_output=True, text=True, check=False
    )


def test_command_arguments_pass_as_argv_not_through_a_shell(tmp_path: Path) -> None:
    result = run_job(
        {"command": ["printf", "%s|"], "arguments": ["a b", "$HOME", "; rm -rf /", "'q'"]},
        tmp_path / "a1",
    )
    assert result.stdout == "a b|$HOME|; rm -rf /|'q'|"


def test_environment_setup_and_cwd(tmp_path: Path) -> None:
    result = run_job(
        {
            "command": ["sh", "-c", 'echo "$GREETING $FROM_SETUP $(basename "$PWD")"'],
            "environment": {"GREETING": "hello world"},
            "setup": ["FROM_SETUP=yes; export FROM_SETUP"],
        },
        tmp_path / "a1",
    )
    assert result.stdout.strip() == "hello world yes sandbox"


def test_script_jobs_get_arguments(tmp_path: Path) -> None:
    result = run_job({"script": 'echo "got $1 and $2"', "arguments": ["x", "y z"]}, tmp_path / "a1")
    assert result.stdout.strip() == "got x and y z"


def test_script_with_shebang_runs_its_interpreter(tmp_path: Path) -> None:
    script = "#!/usr/bin/env python3\nimport sys\nprint(sum(map(int, sys.argv[1:])))\n"
    result = run_job({"script": script, "arguments": ["2", "3"]}, tmp_path / "a1")
    assert result.stdout.strip() == "5"


def test_input_files_are_copied_into_the_sandbox(tmp_path: Path) -> None:
    source = tmp_path / "data.txt"
    source.write_text("payload")
    result = run_job(
        {"command": ["cat", "data.txt"], "input_files": [str(source)]}, tmp_path / "a1"
    )
    assert result.stdout == "payload"


def test_missing_input_is_reported_before_storing(tmp_path: Path) -> None:
    spec = parse_spec({"command": ["true"], "input_files": [str(tmp_path / "nope")]})
    with pytest.raises(InvalidSpec, match="no such file"):
        admit.check_inputs(spec)


def test_dirs_and_files_are_private(tmp_path: Path) -> None:
    attempt = tmp_path / "a1"
    sandbox.prepare(parse_spec({"command": ["true"]}), attempt)
    assert attempt.stat().st_mode & 0o777 == 0o700
    assert (attempt / "job.sh").stat().st_mode & 0o077 == 0


def test_collect_outputs_copies_matches_and_reports_missing(tmp_path: Path) -> None:
    spec = parse_spec({"command": ["true"], "outputs": ["*.csv", "sub/*.txt", "never.dat"]})
    attempt = tmp_path / "a1"
    sandbox.prepare(spec, attempt)
    (attempt / "sandbox" / "r.csv").write_text("1")
    (attempt / "sandbox" / "sub").mkdir()
    (attempt / "sandbox" / "sub" / "n.txt").write_text("2")
    missing = sandbox.collect_outputs(spec, attempt, tmp_path / "out")
    assert missing == ["never.dat"]
    assert (tmp_path / "out" / "r.csv").read_text() == "1"
    assert (tmp_path / "out" / "sub" / "n.txt").read_text() == "2"
