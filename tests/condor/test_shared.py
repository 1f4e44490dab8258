"""Shared-filesystem mode, once, as a pool user would run it: corral itself runs as the pool's
user ``condorci`` from a venv of /usr/bin/python3.11 (scripts/condorci-venv.sh) with CORRAL_HOME
under /tmp (the only host dir the pool's chroot sees), so the jobs run in their attempt dirs and
nothing is transferred; finished jobs leave the queue at once and their ends come from history."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.condor.helpers import CONDOR

pytestmark = [*CONDOR, pytest.mark.timeout(240)]
VENV = Path(os.environ.get("CORRAL_CONDORCI_VENV", "/tmp/corral-condorci/venv"))
USER = "condorci"


def as_user(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = ["env", "-i", f"CORRAL_HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp"]
    return subprocess.run(
        ["runuser", "-u", USER, "--", *env, str(VENV / "bin" / "corral"), *args],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
        cwd="/tmp",
    )


@pytest.fixture
def user_home() -> Path:
    if not (VENV / "bin" / "corral").exists():
        if os.environ.get("CORRAL_REQUIRE_CONDOR"):
            pytest.fail(f"no venv for {USER} at {VENV}: run scripts/condorci-venv.sh")
        pytest.skip(f"no venv for {USER} at {VENV} (scripts/condorci-venv.sh makes it)")
    home = Path("/tmp") / f"corral-shared-{uuid.uuid4().hex[:8]}"
    subprocess.run(["runuser", "-u", USER, "--", "mkdir", "-m", "700", str(home)], check=True)
    section = '[backends.condor]\nmode = "shared"\nmin_interval = 0.2\nmax_interval = 1.0\n'
    subprocess.run(
        ["runuser", "-u", USER, "--", "sh", "-c", f"cat > {home}/config.toml"],
        input=section, text=True, check=True,
    )  # fmt: skip
    yield home
    as_user(home, "monitor", "--stop")
    shutil.rmtree(home, ignore_errors=True)


def test_shared_mode_as_the_pools_user(user_home: Path) -> None:
    sweep = as_user(
        user_home, "submit", "-b", "condor", "--name", "shared", "--sweep", "x=1,2,3",
        "-o", "out.txt", "--wait", "--json", "--", "sh", "-c", 'echo "x=$X" > out.txt; exit 0',
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    shown = json.loads(as_user(user_home, "ls", "--json").stdout)
    (job,) = shown["jobs"]
    assert job["state"] == "completed", job
    failing = as_user(user_home, "submit", "-b", "condor", "--wait", "--", "sh", "-c", "exit 4")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    record = json.loads(as_user(user_home, "show", "2", "--json").stdout)["job"]
    assert (record["state"], record["exit_code"]) == ("failed", 4), record
    outputs = sorted(p.read_text() for p in user_home.glob("jobs/*/1/*/output/out.txt"))
    assert outputs == ["x=1\n", "x=2\n", "x=3\n"]
