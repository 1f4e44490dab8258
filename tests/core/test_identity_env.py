"""Job isolation (issue 9): outputs never followed through links, identity of registries and
attempts, the submit-time environment, inputs with a place, modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from corral import JobState, Session, Settings, environment, inputs, load_settings, modes, sandbox
from corral.errors import InvalidSpec, RegistryMismatch
from corral.spec import parse_spec

S = JobState


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---------------------------------------------------------------- outputs
def test_an_output_that_is_a_link_is_not_followed(session: Session) -> None:
    job = session.submit(
        {"command": ["ln", "-s", "/etc/shadow", "result.txt"], "outputs": ["result.txt"]}
    )
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.FAILED
    assert "symbolic link" in record.reason
    assert record.output_dir is not None
    assert not (record.output_dir / "result.txt").exists()


def test_an_output_dir_replaced_by_a_link_is_never_written_through(
    session: Session, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "r.txt").write_text("precious")
    script = f"echo evil > r.txt; rm -rf ../../output; ln -s {outside} ../../output"
    job = session.submit({"command": ["sh", "-c", script], "outputs": ["r.txt"]})
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.FAILED
    assert "output" in record.reason
    assert (outside / "r.txt").read_text() == "precious"


def test_a_link_inside_the_output_tree_is_never_written_through(
    session: Session, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    script = f"mkdir -p sub ../../output; echo x > sub/a.txt; ln -s {outside} ../../output/sub"
    job = session.submit({"command": ["sh", "-c", script], "outputs": ["sub/*.txt"]})
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.FAILED
    assert list(outside.iterdir()) == []


def test_a_dir_link_in_the_sandbox_is_not_followed(session: Session) -> None:
    job = session.submit({"command": ["sh", "-c", "ln -s /etc sub"], "outputs": ["sub/passwd"]})
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.FAILED
    assert record.output_dir is not None and not (record.output_dir / "sub").exists()


def test_a_fifo_output_never_wedges_the_finaliser(session: Session) -> None:
    job = session.submit({"command": ["mkfifo", "out.txt"], "outputs": ["out.txt"]})
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.FAILED
    assert "not a regular file" in record.reason


def test_regular_outputs_are_private_copies(session: Session) -> None:
    job = session.submit(
        {
            "command": ["sh", "-c", "mkdir d; echo 1 > d/x.txt; chmod 644 d/x.txt"],
            "outputs": ["d/*.txt"],
        }
    )
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.COMPLETED, record.reason
    assert record.output_dir is not None
    assert (record.output_dir / "d" / "x.txt").read_text() == "1\n"
    assert mode_of(record.output_dir / "d" / "x.txt") == 0o600


# ---------------------------------------------------------------- identity
def test_two_registries_sharing_a_work_dir_never_share_a_job_dir(tmp_path: Path) -> None:
    shared = tmp_path / "shared-jobs"
    records = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        (home / "config.toml").write_text(f'work_dir = "{shared}"\n')
        settings = load_settings(overrides={"autostart": False}, env={"CORRAL_HOME": str(home)})
        with Session(settings) as sess:
            job = sess.submit({"command": ["sh", "-c", f"echo {name}"]})
            (record,) = sess.wait(job, timeout=30)
            assert sess.peek(job).strip() == name  # each ran, none adopted the other's dir
            records.append(record)
    assert records[0].id == records[1].id  # both job 1
    assert records[0].job_dir != records[1].job_dir
    for record in records:
        assert record.job_dir is not None
        root = record.job_dir.parent
        assert (root / "registry-id").read_text().strip() == root.name


def test_an_emptied_registry_is_refused(settings: Settings) -> None:
    with Session(settings) as sess:
        sess.wait(sess.submit({"command": ["true"]}), timeout=30)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.registry}{suffix}").unlink(missing_ok=True)
    with pytest.raises(RegistryMismatch, match="emptied or replaced"), Session(settings):
        pass


def test_a_replaced_registry_is_refused(tmp_path: Path, settings: Settings) -> None:
    other_home = tmp_path / "other"
    other_home.mkdir()
    other = load_settings(overrides={"autostart": False}, env={"CORRAL_HOME": str(other_home)})
    with Session(settings), Session(other):
        pass
    os.replace(other.registry, settings.registry)
    with pytest.raises(RegistryMismatch, match="registry-id"), Session(settings):
        pass


def test_an_attempt_dir_of_another_attempt_is_an_error(tmp_path: Path) -> None:
    spec = parse_spec({"command": ["true"]})
    sandbox.prepare(spec, tmp_path / "a", "uuid-1")
    sandbox.prepare(spec, tmp_path / "a", "uuid-1")  # preparing again (after a crash) is fine
    with pytest.raises(sandbox.Sabotaged, match="belongs to another attempt"):
        sandbox.prepare(spec, tmp_path / "a", "uuid-2")


def test_a_run_marker_of_another_attempt_is_not_already_ran(tmp_path: Path) -> None:
    from corral.backends.local import _read_exit, marker_problem
    from corral.records import Attempt, JobId

    spec = parse_spec({"command": ["true"]})
    attempt = Attempt(JobId(1), "mine", 1, spec, tmp_path, S.RUNNING)
    (tmp_path / "run-exit.0").write_text("0 0\n")  # an old job's result
    (tmp_path / ".corral-run").write_text("")  # a wrapper from before markers held the uuid
    assert marker_problem(attempt) is None
    (tmp_path / ".corral-run").write_text("theirs\n")
    obs = _read_exit(attempt)
    assert obs is not None and obs.state == S.FAILED
    assert "belongs to another attempt" in obs.reason


def test_existing_job_dirs_keep_working_and_are_tightened(settings: Settings) -> None:
    """A registry from before job dirs were keyed by its uuid: its stored job dirs stay where
    they are, and what the old corral made with loose modes is tightened on first open."""
    old = settings.work_dir / "7" / "attempt-1"
    old.mkdir(parents=True, mode=0o755)
    (old / "stdout").write_text("old")
    os.chmod(old / "stdout", 0o644)
    os.chmod(settings.work_dir / "7", 0o755)
    with Session(settings):
        pass
    assert mode_of(settings.work_dir / "7") == 0o700
    assert mode_of(old / "stdout") == 0o600


# ---------------------------------------------------------------- environment
def test_a_job_runs_with_the_environment_of_its_submit(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOO", "first")
    monkeypatch.setenv("CORRAL_SECRET", "no")
    first = session.submit({"command": ["sh", "-c", 'echo "$FOO ${CORRAL_SECRET:-unset}"']})
    monkeypatch.setenv("FOO", "second")
    second = session.submit({"command": ["sh", "-c", 'echo "$FOO"']})
    session.wait([first, second], timeout=30)
    assert session.peek(first).strip() == "first unset"
    assert session.peek(second).strip() == "second"
    files = {session.get(j).spec.environment_file for j in (first, second)}
    assert len(files) == 2
    for name in files:
        assert name is not None and mode_of(Path(name)) == 0o600


def test_the_environment_file_is_shared_by_equal_environments(session: Session) -> None:
    jobs = [session.submit({"command": ["true"]}) for _ in range(3)]
    assert len({session.get(j).spec.environment_file for j in jobs}) == 1


def test_a_clean_environment(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    job = session.submit(
        {
            "command": ["sh", "-c", 'echo "${TOKEN:-none} $PATH $LANG $MINE"'],
            "environment_policy": "clean",
            "environment": {"MINE": "kept"},
        }
    )
    session.wait(job, timeout=30)
    assert session.peek(job).strip() == "none /usr/local/bin:/usr/bin:/bin C.UTF-8 kept"


def test_environment_selection_is_pure_and_safe() -> None:
    env = {"A": "1", "CORRAL_HOME": "/x", "BASH_FUNC_f%%": "() { :; }", "Q": "it's $(x)"}
    assert environment.select(env, "submit") == {"A": "1", "Q": "it's $(x)"}
    assert environment.select({"HOME": "/h", "A": "1"}, "clean") == {
        "HOME": "/h",
        "PATH": environment.CLEAN_PATH,
    }
    assert "export Q='it'\"'\"'s $(x)'" in environment.render({"Q": "it's $(x)"})
    spec = parse_spec({"command": ["true"], "backend": "local"})
    assert environment.policy(spec, "dirac") == "clean"
    assert environment.policy(spec, "slurm") == "submit"


# ---------------------------------------------------------------- inputs
def test_inputs_with_the_same_name_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="would both land on 'd'"):
        parse_spec({"command": ["true"], "input_files": ["/a/d", "/b/d"]})
    with pytest.raises(InvalidSpec, match="would both land"):
        parse_spec({"command": ["true"], "input_files": ["/a/x:d", "/b/y:d/x"]})
    with pytest.raises(InvalidSpec, match="inside the sandbox"):
        parse_spec({"command": ["true"], "input_files": ["/a/x:../x"]})
    assert inputs.place("/a/d:sub/./e") == ("/a/d", "sub/e")
    assert inputs.place("/a/d") == ("/a/d", "d")


def test_inputs_land_on_their_place(session: Session, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "d").write_text(name)
    job = session.submit(
        {
            "command": ["sh", "-c", "cat d sub/d2"],
            "input_files": [str(tmp_path / "a" / "d"), f"{tmp_path / 'b' / 'd'}:sub/d2"],
        }
    )
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.COMPLETED, record.reason
    assert session.peek(job).strip() == "ab"
    assert record.attempt_dir is not None
    assert mode_of(record.attempt_dir / "sandbox" / "sub" / "d2") == 0o600


# ---------------------------------------------------------------- modes
def test_everything_a_job_leaves_is_private(session: Session, settings: Settings) -> None:
    job = session.submit(
        {"command": ["sh", "-c", "echo hi > o.txt; echo err >&2"], "outputs": ["o.txt"]}
    )
    (record,) = session.wait(job, timeout=30)
    assert record.state == S.COMPLETED, record.reason
    assert record.job_dir is not None and record.attempt_dir is not None
    for directory in (
        settings.work_dir,
        record.job_dir.parent,
        record.job_dir,
        record.attempt_dir,
        record.attempt_dir / "sandbox",
        record.job_dir / "output",
    ):
        assert mode_of(directory) == 0o700, directory
    for name in ("stdout", "stderr", "run-exit.0", "run-start.0", ".corral-run", "jobpgid"):
        assert mode_of(record.attempt_dir / name) == 0o600, name
    assert mode_of(record.job_dir / "output" / "o.txt") == 0o600
    assert mode_of(settings.registry) == 0o600


def test_makedirs_is_0700_at_every_level(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        modes.makedirs(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode_of(path) == 0o700


def test_a_home_readable_by_others_is_reported_not_changed(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    assert "readable by others" in (modes.home_warning(home) or "")
    assert mode_of(home) == 0o755
    os.chmod(home, 0o700)
    assert modes.home_warning(home) is None
