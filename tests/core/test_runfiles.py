"""The wrapper's status files and the submit ticket."""

from __future__ import annotations

from pathlib import Path

from corral.backends import runfiles
from corral.backends.runfiles import ExitRecord, RunFiles, Ticket
from corral.records import Usage


def test_parsers() -> None:
    assert runfiles.parse_start("1700000000.25 12_3 node7\n") == (1700000000.25, "12_3")
    assert runfiles.parse_start("1700000000.%N 12\n") == (None, "12")  # a date without %N
    assert runfiles.parse_exit("3 0 1700000001.5\n") == ExitRecord(3, False, 1700000001.5)
    assert runfiles.parse_exit("143 1\n") == ExitRecord(143, True)
    assert runfiles.parse_exit("") is None
    assert runfiles.parse_ticket("corral-x 4\n") == Ticket("corral-x", 4)
    assert runfiles.parse_ticket("corral-x -\n") == Ticket("corral-x", None)
    assert runfiles.parse_ticket("garbage") is None
    ticket = Ticket("corral-y", 7)
    assert runfiles.parse_ticket(runfiles.render_ticket(ticket)) == ticket


def test_latest_run() -> None:
    names = [
        "job.sh",
        "run-start.0",
        "run-exit.0",
        "run-start.2",
        "run-start.1",
        "run-start.3.tmp",
        "stdout",
    ]
    assert runfiles.latest_run(names) == 2
    assert runfiles.latest_run(["stdout"]) is None


def test_read_run_files_follows_the_latest_run(tmp_path: Path) -> None:
    assert runfiles.read_run_files(tmp_path / "absent") == RunFiles()
    assert runfiles.read_run_files(tmp_path) == RunFiles()
    (tmp_path / "run-start.0").write_text("10 5 n1\n")
    (tmp_path / "run-exit.0").write_text("143 1 11\n")
    (tmp_path / "run-start.1").write_text("20 5 n2\n")  # requeued: the new run is running
    assert runfiles.read_run_files(tmp_path) == RunFiles(1, "5", 20.0, None, host="n2")
    (tmp_path / "run-exit.1").write_text("0 0 21\n")
    ended = runfiles.read_run_files(tmp_path)
    assert ended.exit == ExitRecord(0, False, 21.0)
    assert ended.usage == Usage(None, None, 1.0, "n2")  # no run-usage file: wall time only
    (tmp_path / "run-usage.1").write_text("0m0.00s 0m0.00s\n0m0.75s 0m0.25s\n")
    assert runfiles.read_run_files(tmp_path).usage == Usage(1.0, None, 1.0, "n2")
    (tmp_path / "run-usage.1").unlink()
    (tmp_path / "run-usage.1").mkdir()  # sabotaged: ignored, never a failure
    assert runfiles.read_run_files(tmp_path).usage == Usage(None, None, 1.0, "n2")
    assert runfiles.read_ticket(tmp_path) is None


def test_exit_codes_out_of_range_are_not_exit_records() -> None:
    for text in ("-1 0", "256 0", "99999999999999999999999 0", "0x1 0", "\u0661 0"):
        assert runfiles.parse_exit(text) is None, text
    assert runfiles.parse_exit("255 0 - replaced") == ExitRecord(255, False, None, True)


def test_read_small_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    import os

    import pytest

    (tmp_path / "ok").write_text("1 0\n")
    assert runfiles.read_small(tmp_path / "ok") == "1 0\n"
    assert runfiles.read_small(tmp_path / "absent") is None
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")  # opening it for reading must not block
    (tmp_path / "link").symlink_to(tmp_path / "ok")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "huge").write_bytes(b"0" * (runfiles.MAX_BYTES + 1))
    for name, why in (
        ("dir", "a directory"),
        ("fifo", "a FIFO"),
        ("link", "a symbolic link"),
        ("dangling", "a symbolic link"),
        ("huge", "larger than"),
    ):
        with pytest.raises(runfiles.Untrusted, match=why):
            runfiles.read_small(tmp_path / name)
    with pytest.raises(runfiles.Untrusted, match="a device"):
        runfiles.read_small(Path("/dev/null"))


def test_sabotaged_run_files_are_a_problem_not_an_exception(tmp_path: Path) -> None:
    import os

    (tmp_path / "run-start.0").write_text("10 5 n1\n")
    os.mkfifo(tmp_path / "run-exit.0")
    files = runfiles.read_run_files(tmp_path)
    assert files.exit is None and files.problem is not None and "FIFO" in files.problem
    (tmp_path / "submit-ticket").mkdir()
    assert runfiles.read_ticket(tmp_path) is None
