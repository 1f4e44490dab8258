"""A large listing is read in two halves at once, the second in a forked child
(``corral.registry.halves``): the output is the one read in one piece, byte for byte, for the
text and the JSON listing, filtered or not, with stored text that must be escaped, and when the
child fails (its half is then read by the parent).

Each run is a fresh ``corral`` process whose ``SPLIT_AT`` is lowered so that a small registry
is split; it reports on stderr every child it forked, so a run that silently stayed in one
piece fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_fast_ls import hostile
from tests.cli.test_listing import seed

PROBE = """
import sys
import corral.registry.sqlite_ls as listing
from corral.registry import halves

split_at, mode, *args = sys.argv[1:]
listing.SPLIT_AT = int(split_at)
Child = halves.Child

class Reported(Child):
    def __init__(self, read):
        def child_read():
            if mode == "fail":
                raise RuntimeError("the child broke")
            return read()
        super().__init__(child_read)
        print("forked", file=sys.stderr)

halves.Child = Reported
from corral.cli import main
sys.exit(main(args))
"""

ARGS = [
    ["ls"],
    ["ls", "--json"],
    ["ls", "--state", "active", "--tag", "a"],
    ["ls", "--json", "--name", "fit*", "--backend", "slurm"],
    ["ls", "--state", "failed", "--json"],
]


def run(
    home: Path, args: list[str], split_at: int, mode: str = "ok", full: bool = False
) -> tuple[int, bytes, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CORRAL_DEBUG", "NO_COLOR")}
    env.update(CORRAL_HOME=str(home), COLUMNS="100", **({"CORRAL_DEBUG": "0"} if full else {}))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(split_at), mode, *args],
        capture_output=True,
        env=env,
        cwd=home,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr.decode()


@pytest.mark.parametrize("full", [False, True], ids=["lean", "typer"])
@pytest.mark.parametrize("args", ARGS, ids=[" ".join(a) for a in ARGS])
def test_a_listing_read_in_halves_is_the_listing_read_whole(
    home: Path, args: list[str], full: bool
) -> None:
    seed(home, 300)
    code, whole, err = run(home, args, 1 << 40, full=full)
    assert code == 0 and "forked" not in err, err
    assert whole.count(b"\n") > 10
    for mode in ("ok", "fail"):
        code, halves, err = run(home, args, 2, mode, full=full)
        assert (code, halves) == (0, whole), (mode, err)
        assert err.count("forked") == 1, (mode, err)


@pytest.mark.parametrize("args", [["ls"], ["ls", "--json"]])
def test_stored_text_is_escaped_in_either_half(home: Path, args: list[str]) -> None:
    hostile(home)  # (jobs 1 to 8 hold text to escape: both halves of 1 to 11 have some)
    code, whole, _ = run(home, args, 1 << 40)
    assert code == 0
    code, halves, err = run(home, args, 2)
    assert (code, halves) == (0, whole) and err.count("forked") == 1, err
    assert b"\x1b" not in halves


def test_a_small_registry_is_read_whole(home: Path) -> None:
    seed(home, 30)
    code, _, err = run(home, ["ls"], 20_000)
    assert code == 0 and "forked" not in err


@pytest.mark.parametrize("listing", [["ls"], ["ls", "--json"]])
def test_jobs_named_by_id_are_split_only_when_their_numbers_span_far(
    home: Path, listing: list[str]
) -> None:
    seed(home, 300)
    # (a number past the last job counts as the last: 250 to 300 is a short span)
    for ids, forks in ((["5", "6"], 0), (["3", "250"], 1), (["250", "9999"], 0)):
        args = [*listing, *ids]
        code, whole, err = run(home, args, 1 << 40)
        assert code == 0 and "forked" not in err, err
        code, halves, err = run(home, args, 100)
        assert (code, halves) == (0, whole), err
        assert err.count("forked") == forks, (ids, err)
