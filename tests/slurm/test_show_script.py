"""`corral show --script` on a Slurm subjob prints the array script given to sbatch, then job.sh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from corral import JobState, Session, load_settings
from tests.conftest import env_with_home
from tests.slurm.helpers import SLURM

pytestmark = [*SLURM, pytest.mark.timeout(120)]


def test_show_script_includes_the_batch_script(home: Path) -> None:
    (home / "config.toml").write_text("autostart = false\n[backends.slurm]\nmin_interval = 0.2\n")
    with Session(load_settings()) as session:
        job = session.submit(
            {
                "command": ["echo", "{x}"],
                "backend": "slurm",
                "resources": {"walltime": "5m"},
                "splitter": {"kind": "sweep", "parameters": {"x": ["a", "b"]}},
            }
        )
        (master,) = session.wait(job, timeout=90)
    assert master.state == JobState.COMPLETED
    out = subprocess.run(
        [sys.executable, "-m", "corral.cli", "show", f"{job.job}.1", "--script"],
        env=env_with_home(home),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "slurm-batch.sh (given to the scheduler)" in out
    assert "#SBATCH --time=" in out
    assert "job.sh (as submitted)" in out
    assert out.rstrip().endswith("exec echo b")
