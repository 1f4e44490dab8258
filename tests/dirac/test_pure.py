"""The pure parts of the DIRAC backend on DiracX 0.7's recorded answers
(scripts/record-dirac-fixtures.py recorded them)."""

from __future__ import annotations

import io
import shlex
import tarfile
from pathlib import Path

import pytest

from corral import sandbox
from corral.backends.dirac import jdl, observe, payload
from corral.spec import parse_spec
from corral.states import JobState
from tests.dirac.helpers import fixture

S = JobState


def rows(name: str) -> dict[str, observe.Row]:
    return observe.parse_rows(fixture(name)["body"])


def test_every_recorded_state_maps_as_the_issue_says() -> None:
    seen = {r.status: observe.observe("u", r) for r in rows("search").values()}
    assert seen["Received"].state == S.SUBMITTED
    assert seen["Received"].reason == "DIRAC Received; Job accepted"
    assert seen["Running"].state == S.RUNNING
    assert (seen["Done"].state, seen["Done"].exit_code) == (S.COMPLETING, 0)
    assert (seen["Failed"].state, seen["Failed"].exit_code) == (S.COMPLETING, 3)
    assert seen["Stalled"].state == S.UNKNOWN
    assert "pilot not running" in seen["Stalled"].reason
    assert seen["Killed"].state == S.KILLED
    assert all(o.native_id for o in seen.values())


@pytest.mark.parametrize(
    ("status", "minor", "state", "requeue"),
    [
        ("Matched", "Assigned", S.SUBMITTED, False),
        ("Completed", "Uploading", S.RUNNING, False),
        ("Failed", "Input Data Resolution", S.FAILED, False),
        ("Deleted", "", S.KILLED, False),
        ("Rescheduled", "Job Rescheduled", S.SUBMITTED, True),
        ("Frobnicated", "", S.UNKNOWN, False),
    ],
)
def test_states_not_recorded(status: str, minor: str, state: JobState, requeue: bool) -> None:
    obs = observe.observe("u", observe.Row("7", status, minor))
    assert (obs.state, obs.requeue) == (state, requeue)
    if state == S.FAILED:
        assert obs.reason == f"DIRAC Failed; {minor}"


def test_a_failed_application_without_a_code_is_exit_1() -> None:
    row = observe.Row("7", "Failed", observe.APP_ERRORS, "Unknown")
    assert observe.observe("u", row).exit_code == 1


def test_a_partial_page_announces_the_rest() -> None:
    first, last = fixture("search-page-1"), fixture("search-page-3")
    assert first["status"] == 206
    span = observe.content_range(first["content_range"])
    assert span == (0, 2, 7)
    assert list(observe.pages(span[2], 3)) == [1, 2, 3]
    assert observe.content_range(last["content_range"]) == (6, 6, 7)
    assert observe.content_range(None) is None
    assert observe.content_range("jobs 0-1/*") is None
    assert list(observe.pages(0, 100)) == [1]


def test_submit_and_reconcile_answers() -> None:
    submitted = fixture("submit")
    assert submitted["status"] == 201
    ids = observe.submitted_ids(submitted["body"], 7)
    assert ids == [str(i) for i in range(int(ids[0]), int(ids[0]) + 7)]
    with pytest.raises(ValueError):
        observe.submitted_ids(submitted["body"], 6)
    found = fixture("reconcile")["body"]
    group = found[0]["JobGroup"]
    wanted = ["corral-fixture-0", "corral-fixture-5", "corral-not-there"]
    assert observe.by_label(found, group, wanted) == {
        "corral-fixture-0": str(found[0]["JobID"]),
        "corral-fixture-5": str(found[2]["JobID"]),
    }
    assert observe.by_label(found, "0" * 32, wanted) == {}


def test_kill_answers_and_what_is_worth_killing() -> None:
    assert fixture("kill")["status"] == 200
    assert fixture("kill-unknown-id")["status"] == 403  # the whole batch: nothing killed
    known = rows("search")
    ids = [*known, "99999999"]
    live = observe.killable(ids, known)
    assert {known[i].status for i in live} == {"Received", "Running", "Stalled"}


def test_jdl_of_a_command_round_trips() -> None:
    job = parse_spec(
        {
            "backend": "dirac",
            "command": ["python3", "-c", "print(1 + 1)"],
            "arguments": ["x y", "it's"],
            "environment": {"A": "1", "B": "two words"},
            "outputs": ["out/*.txt"],
            "resources": {"walltime": "1h", "cpus": 2},
        }
    )
    place = jdl.Placement(site=["LCG.CERN.ch"], banned_sites=["LCG.X.org"], tags=["GPU"])
    text = jdl.render(jdl.describe(job, "corral-u1", "ab" * 16, place, "SB:SandboxSE|/S3/x"))
    attrs = jdl.parse(text)
    assert attrs["JobName"] == "corral-u1" and attrs["JobGroup"] == "ab" * 16
    assert attrs["Executable"] == "python3"
    assert shlex.split(str(attrs["Arguments"])) == ["-c", "print(1 + 1)", "x y", "it's"]
    assert jdl.environment(attrs) == {"A": "1", "B": "two words"}
    assert attrs["OutputSandbox"] == ["stdout", "stderr", "out/*.txt"]
    assert attrs["InputSandbox"] == ["SB:SandboxSE|/S3/x"]
    assert attrs["CPUTime"] == 7200
    assert attrs["Site"] == ["LCG.CERN.ch"] and attrs["BannedSite"] == ["LCG.X.org"]
    assert attrs["Tags"] == ["GPU"]


def test_a_script_runs_from_the_sandbox_and_the_environment_is_only_the_specs() -> None:
    job = parse_spec({"backend": "dirac", "script": "echo hi\n"})
    attrs = jdl.parse(jdl.render(jdl.describe(job, "l", "g", jdl.Placement(), None)))
    assert (attrs["Executable"], attrs["Arguments"]) == ("/bin/sh", jdl.SCRIPT)
    assert "Environment" not in attrs and "InputSandbox" not in attrs
    with pytest.raises(ValueError):
        jdl.quote("a\x01b")


def test_a_command_the_jdl_cannot_carry_runs_through_a_wrapper(tmp_path: Path) -> None:
    job = parse_spec(
        {
            "backend": "dirac",
            "command": ["sh", "-c", 'echo "out 0" > out.txt; echo "$X"'],
            "environment": {"X": 'a "quoted" value'},
        }
    )
    assert jdl.needs_wrapper(job)
    attrs = jdl.parse(jdl.render(jdl.describe(job, "l", "g", jdl.Placement(), "SB:x")))
    assert attrs["Executable"] == "/bin/sh"
    arguments = str(attrs["Arguments"]).split()
    assert arguments[0] == jdl.COMMAND and all(jdl.representable(a) for a in arguments)
    assert "Environment" not in attrs
    sandbox.prepare(job, tmp_path)
    blob = payload.input_sandbox(job, tmp_path)
    assert blob is not None
    with tarfile.open(fileobj=io.BytesIO(blob.data)) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    import subprocess

    done = subprocess.run(
        ["/bin/sh", *arguments], cwd=tmp_path / "x", capture_output=True, text=True, check=True
    )
    assert done.stdout == 'a "quoted" value\n'
    assert (tmp_path / "x" / "out.txt").read_text() == "out 0\n"


def test_input_sandboxes_of_equal_files_are_equal(tmp_path: Path) -> None:
    (tmp_path / "in.dat").write_text("data")
    one = parse_spec(
        {"backend": "dirac", "command": ["true"], "input_files": [str(tmp_path / "in.dat")]}
    )
    blobs = []
    for n in (1, 2):
        attempt_dir = tmp_path / f"a{n}"
        sandbox.prepare(one, attempt_dir)
        blob = payload.input_sandbox(one, attempt_dir)
        assert blob is not None
        blobs.append(blob)
    assert blobs[0] == blobs[1]
    assert (
        payload.input_sandbox(parse_spec({"backend": "dirac", "command": ["true"]}), tmp_path)
        is None
    )


def test_outputs_are_extracted_safely_and_moved_into_place(tmp_path: Path) -> None:
    job = parse_spec({"backend": "dirac", "command": ["true"], "outputs": ["out.txt"]})
    attempt_dir = tmp_path / "attempt-1"
    sandbox.prepare(job, attempt_dir)
    good = payload.output_sandbox({"stdout": b"o", "stderr": b"e", "out.txt": b"x"})
    payload.unpack_outputs(job, attempt_dir, [good])
    assert (attempt_dir / "stdout").read_bytes() == b"o"
    assert (attempt_dir / "sandbox" / "out.txt").read_bytes() == b"x"
    payload.unpack_outputs(job, attempt_dir, [b"not read again: already in"])

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:bz2") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"!"))
    other = tmp_path / "attempt-2"
    sandbox.prepare(job, other)
    with pytest.raises(tarfile.FilterError):
        payload.unpack_outputs(job, other, [evil.getvalue()])
    assert not (tmp_path / "escaped").exists()
    assert not (other / ".dirac-output.tmp").exists()


def test_options_take_one_site_or_many_and_a_jobs_own_replace_the_sections() -> None:
    from corral.backends.dirac.options import DiracJobOptions, DiracOptions, placement

    section = DiracOptions.model_validate({"site": ["A.B.c", "D.E.f"], "tags": "GPU"})
    job = DiracJobOptions.model_validate({"site": "X.Y.z"})
    merged = placement(section, job)
    assert (merged.site, merged.tags) == (["X.Y.z"], ["GPU"])
    with pytest.raises(ValueError):
        DiracJobOptions.model_validate({"site": "not a site"})
    with pytest.raises(ValueError):
        DiracOptions.model_validate({"submit_chunk": 21})  # the server refuses 21 per call


def test_the_wrapper_gives_back_every_byte_of_argv_and_environment(tmp_path: Path) -> None:
    import subprocess

    tricky = ["a; b", 'q"uote\\', "new\nline\n\n", "  spaces  ", "ünï ☃", "-e", "--", "$HOME*"]
    job = parse_spec(
        {
            "backend": "dirac",
            "command": ["sh", "-c", 'printf "%s\\0" "$@"; printf "%s\\0" "$V"', "sh", *tricky],
            "environment": {"V": "x;\ny\n"},
        }
    )
    (tmp_path / jdl.COMMAND).write_text(jdl.WRAPPER)
    arguments = jdl.describe(job, "l", "g", jdl.Placement(), None).arguments
    assert all(jdl.representable(a) for a in arguments)
    for shell in ("/bin/sh", "bash"):
        done = subprocess.run(
            [shell, *arguments], cwd=tmp_path, capture_output=True, check=True, env={}
        )
        assert done.stdout.decode().split("\0")[:-1] == [*tricky, "x;\ny\n"], shell
