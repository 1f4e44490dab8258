"""Job isolation on Slurm (issue 9): each job runs with its submitter's environment (sourced by
the job script, never carried by sbatch's own), and a job that sabotages its exit file fails
with the reason instead of breaking the backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import JobState, Session, load_settings
from tests.slurm.helpers import SLURM

pytestmark = [*SLURM, pytest.mark.timeout(300)]
CONFIG = "[backends.slurm]\nmin_interval = 0.2\nmax_interval = 2.0\n"


def _session(home: Path) -> Session:
    (home / "config.toml").write_text(CONFIG)
    settings = load_settings(overrides={"autostart": False}, env={"CORRAL_HOME": str(home)})
    return Session(settings)


def test_slurm_jobs_run_with_their_submitters_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _session(home) as sess:
        monkeypatch.setenv("FOO", "first")
        first = sess.submit({"command": ["sh", "-c", 'echo "$FOO"'], "backend": "slurm"})
        monkeypatch.setenv("FOO", "second")
        monkeypatch.setenv("CORRAL_LEAK", "x")
        second = sess.submit(
            {"command": ["sh", "-c", 'echo "$FOO ${CORRAL_LEAK:-none}"'], "backend": "slurm"}
        )
        records = sess.wait([first, second], timeout=200)
        assert [r.state for r in records] == [JobState.COMPLETED] * 2, records
        assert sess.peek(first).strip() == "first"
        assert sess.peek(second).strip() == "second none"


def test_a_slurm_job_sabotaging_its_exit_file_fails(home: Path) -> None:
    with _session(home) as sess:
        job = sess.submit({"command": ["mkdir", "../run-exit.0"], "backend": "slurm"})
        ok = sess.submit({"command": ["true"], "backend": "slurm"})
        bad, good = sess.wait([job, ok], timeout=200)
        assert bad.state == JobState.FAILED, bad
        assert good.state == JobState.COMPLETED, good
