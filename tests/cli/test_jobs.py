"""The verbs end to end on the local backend, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.cli.conftest import Result, wait_until


def jobs_of(home: Path) -> Path:
    """Where this home's registry keeps its job dirs: ``work_dir/<registry uuid>``."""
    return home / "jobs" / (home / "registry-id").read_text().strip()


def job_id(result: Result) -> str:
    assert result.code == 0, result
    return str(result.json()["id"])


def test_submit_wait_peek_show(corral: Any, cli_home: Path) -> None:
    submitted = corral("submit", "-n", "hello", "-t", "greeting", "--", "echo", "hello world")
    assert submitted.code == 0, submitted
    assert submitted.out.startswith("submitted job 1 on local")
    waited = corral("wait", "1", "--json")
    assert waited.code == 0 and waited.json()["ok"] and waited.json()["schema"] == 1
    assert corral("peek", "1").out == "hello world\n"
    shown = corral("show", "1", "--json").json()
    assert shown["schema"] == 1
    job = shown["job"]
    assert (job["state"], job["exit_code"], job["name"], job["tags"]) == (
        "completed",
        0,
        "hello",
        ["greeting"],
    )
    assert Path(job["stdout"]).read_text() == "hello world\n"
    assert [h["new"] for h in shown["history"] if h["applied"]] == [
        "new",
        "submitting",
        "submitted",
        "running",
        "completing",
        "completed",
    ]
    assert shown["spec"]["command"] == ["echo", "hello world"]
    human = corral("show", "1")
    assert human.code == 0 and "exit code 0" in human.out and "history" in human.out
    script = corral("show", "1", "--script").out
    assert "as submitted" in script and "exec echo 'hello world'" in script


def test_sweep_is_a_cartesian_product_with_names_substituted(corral: Any) -> None:
    new = job_id(
        corral(
            "submit",
            "--json",
            "-n",
            "grid",
            "--sweep",
            "a=1..3",
            "--sweep",
            "b=x,y",
            "--",
            "sh",
            "-c",
            "echo {a}{b} $A$B",
        )
    )
    assert corral("wait", new).code == 0
    listed = corral("ls", "--json").json()["jobs"]
    assert listed == [dict(listed[0], id=new, subjobs=6, counts={"completed": 6})]
    outputs = sorted(corral("peek", f"{new}.{i}").out for i in range(6))
    assert outputs == sorted(f"{a}{b} {a}{b}\n" for a in "123" for b in "xy")
    line = corral("ls").out.splitlines()[1]
    assert "grid" in line and "6/6" in line


def test_split_file_and_job_file_with_relative_inputs(
    corral: Any, cli_home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.txt").write_text("forty-two\n")
    (folder / "job.toml").write_text(
        'name = "reader"\n'
        'command = ["sh", "-c", "cat data.txt; echo \\"$*\\" | tee result.out", "sh"]\n'
        'input_files = ["data.txt"]\noutputs = ["*.out"]\n'
    )
    (folder / "args.txt").write_text("# one subjob per line\nfirst 'with space'\n\nsecond\n")
    elsewhere = corral(
        "submit",
        "--json",
        str(folder / "job.toml"),
        "--split",
        str(folder / "args.txt"),
        cwd=cli_home,
    )
    new = job_id(elsewhere)
    assert corral("wait", new).code == 0
    assert corral("peek", f"{new}.0").out == "forty-two\nfirst with space\n"
    assert corral("peek", f"{new}.1").out == "forty-two\nsecond\n"
    shown = corral("show", f"{new}.1", "--json").json()["job"]
    assert shown["outputs"] == ["result.out"]
    assert (Path(shown["output_dir"]) / "result.out").read_text() == "second\n"


def test_dry_run_submits_nothing(corral: Any, cli_home: Path) -> None:
    result = corral("submit", "--dry-run", "--sweep", "n=1,2,3", "--", "echo", "{n}")
    assert result.code == 0
    assert "3 subjobs" in result.out and "exec echo 1" in result.out
    as_json = corral("submit", "--dry-run", "--json", "--", "echo", "hi").json()
    assert as_json["dry_run"] and as_json["schema"] == 1 and as_json["subjobs"] == []
    assert "exec echo hi" in as_json["script"]
    assert not (cli_home / "registry.db").exists()


def test_failure_exit_codes_and_resubmit(corral: Any) -> None:
    failing = corral("submit", "--wait", "-q", "--", "sh", "-c", "echo oops >&2; exit 3")
    assert failing.code == 1 and failing.out.strip() == "1"
    assert corral("peek", "1", "--stderr").out == "oops\n"
    assert corral("show", "1", "--json").json()["job"]["exit_code"] == 3
    assert corral("wait", "1").code == 1
    again = corral("resubmit", "1", "--json").json()
    assert again["resubmitted"] == ["1"]
    assert corral("wait", "1").code == 1
    assert corral("show", "1", "--json").json()["job"]["attempt"] == 2
    assert "nothing to resubmit" not in corral("resubmit", "--state", "failed").out


def test_wait_timeout_then_kill_by_selection(corral: Any) -> None:
    new = job_id(corral("submit", "--json", "-t", "slow", "--", "sleep", "60"))
    assert wait_until(lambda: corral("ls", "--state", "running", "--json").json()["jobs"])
    timed_out = corral("wait", new, "--timeout", "0.5")
    assert timed_out.code == 4 and "timed out" in timed_out.err
    killed = corral("kill", "--state", "running", "--tag", "slow")
    assert killed.code == 0 and f"kill requested for 1 job: {new}" in killed.out
    assert corral("wait", new).code == 1
    assert corral("show", new, "--json").json()["job"]["state"] == "killed"
    assert "nothing to kill" in corral("kill", new).out


def test_rm_copy_and_gc(corral: Any, cli_home: Path) -> None:
    first = job_id(corral("submit", "--json", "--", "echo", "one"))
    assert corral("wait", first).code == 0
    copied = corral("copy", first, "--json").json()
    assert copied == {"schema": 1, "id": "2", "source": first}
    assert corral("wait", "2").code == 0 and corral("peek", "2").out == "one\n"
    running = job_id(corral("submit", "--json", "--", "sleep", "60"))
    refused = corral("rm", running)
    assert refused.code == 2 and "still active" in refused.err
    forced = corral("rm", "--force", running)
    assert forced.code == 0 and f"removed job {running}" in forced.out
    dry = corral("gc", "--older-than", "0s", "--dry-run", "--json").json()
    assert [r["id"] for r in dry["removed"]] == ["1", "2"] and dry["dry_run"]
    assert (jobs_of(cli_home) / "1").exists()
    assert "removed job 1" in corral("gc", "--older-than", "0s").out
    assert not (jobs_of(cli_home) / "1").exists()
    assert corral("ls", "--json").json()["jobs"] == []


def test_peek_follow_prints_until_the_job_ends(corral: Any, cli_home: Path) -> None:
    new = job_id(
        corral(
            "submit", "--json", "--", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done"
        )
    )
    follow = subprocess.run(
        [sys.executable, "-m", "corral.cli", "peek", "-f", new],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CORRAL_HOME": str(cli_home)},
    )
    assert follow.returncode == 0
    assert follow.stdout == "line 1\nline 2\nline 3\n"


def test_ls_filters(corral: Any) -> None:
    for args in (["-n", "alpha", "-t", "a"], ["-n", "beta", "-t", "b"], ["-n", "alpha2"]):
        job_id(corral("submit", "--json", *args, "--", "true"))
    assert corral("wait", "--all").code == 0

    def ids(*args: str) -> list[str]:
        return [j["id"] for j in corral("ls", "--json", *args).json()["jobs"]]

    assert ids() == ["1", "2", "3"]
    assert ids("--name", "alpha*") == ["1", "3"]
    assert ids("--tag", "b") == ["2"]
    assert ids("--tag", "a", "--tag", "b") == ["1", "2"]
    assert ids("--state", "completed", "--backend", "local") == ["1", "2", "3"]
    assert ids("--state", "active") == []
    assert ids("--newer-than", "1h") == ["1", "2", "3"]
    assert ids("--older-than", "1h") == []
    assert ids("2") == ["2"]
    text = corral("ls", "--tag", "a").out.splitlines()
    assert text[0].split()[:3] == ["ID", "NAME", "STATE"] and len(text) == 2


def test_shell_runs_code_with_the_session(corral: Any, cli_home: Path) -> None:
    job_id(corral("submit", "--json", "--", "echo", "from the shell"))
    code = "s.wait(1); print(s.peek(1).strip(), JobState.COMPLETED in {s.get(1).state})"
    result = corral("shell", "-c", code)
    assert result.code == 0, result
    assert result.out == "from the shell True\n"
    env = {**os.environ, "CORRAL_HOME": str(cli_home), "IPYTHONDIR": str(cli_home / "ipython")}
    piped = subprocess.run(
        [sys.executable, "-m", "corral.cli", "shell"],
        capture_output=True,
        input="print(len(s.select()))\n",
        text=True,
        timeout=60,
        env=env,
    )
    assert piped.returncode == 0, piped.stderr
    assert "corral 0.1.0 shell" in piped.stdout and "1\n" in piped.stdout


def test_demo_tabulates_the_collected_outputs(corral: Any, cli_home: Path) -> None:
    started = time.monotonic()
    result = corral("demo", timeout=120)
    assert result.code == 0, result
    assert "12 jobs: 12 completed" in result.out
    results = sorted((jobs_of(cli_home) / "1").glob("*/output/result.json"))
    assert len(results) == 12
    estimates = [json.loads(p.read_text())["pi"] for p in results]
    for value in estimates:
        assert f"{value:.5f}" in result.out  # the table shows what the files hold
    assert all(3.0 < v < 3.3 for v in estimates)
    assert time.monotonic() - started < 60
