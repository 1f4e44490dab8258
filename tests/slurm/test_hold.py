"""Holds on the real Slurm: a queued job held stays submitted "held: JobHeldUser" and runs once
released; a running job is refused, by the session (its state) and by the backend itself (Slurm
22.05 would take the hold silently); a sweep's subjobs are held in one call."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from corral import JobState, Session, load_settings
from corral.backends import build
from corral.records import Attempt
from tests.cli.conftest import run_corral, wait_until
from tests.slurm.helpers import SLURM

pytestmark = [*SLURM, pytest.mark.timeout(180)]
SECTION = "[backends.slurm]\nmin_interval = 0.2\nmax_interval = 1.0\n"
LATER = {"extra_sbatch_args": ["--begin=now+45"]}


@pytest.fixture
def slurm_home(home: Path) -> Path:
    (home / "config.toml").write_text(SECTION)
    return home


def pending_reasons(ids: str) -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%r", "-j", ids], capture_output=True, text=True)
    return set(out.stdout.split())


def test_a_queued_sweep_is_held_and_released(slurm_home: Path) -> None:
    with Session(load_settings()) as session:
        job = session.submit(
            {
                "command": ["true"],
                "backend": "slurm",
                "backend_options": LATER,
                "splitter": {"kind": "sweep", "parameters": {"i": ["0", "1", "2"]}},
            }
        )
        subs = lambda: session.subjobs(job.job)  # noqa: E731
        assert wait_until(lambda: all(s.state == JobState.SUBMITTED for s in subs()), 60)
        result = run_corral(slurm_home, "hold", str(job), "--json")
        assert result.code == 0, result.err
        assert '"held": ["1.0", "1.1", "1.2"]' in result.out
        # the reason is the hold's at once; the monitor's next squeue may say "JobHeldUser"
        assert wait_until(lambda: all(s.reason.startswith("held: ") for s in subs()), 30)
        ids = ",".join(s.native_id or "" for s in subs())
        assert wait_until(lambda: pending_reasons(ids) == {"JobHeldUser"}, 60)  # Slurm's own
        assert all(s.state == JobState.SUBMITTED for s in subs())
        released = session.release(job)
        assert len(released.done) == 3 and not released.refused
        assert wait_until(lambda: all(not s.reason.startswith("held") for s in subs()), 30)
        session.kill(job)
        session.wait(job, timeout=60)


def test_a_running_job_cannot_be_held(slurm_home: Path) -> None:
    with Session(load_settings()) as session:
        job = session.submit({"command": ["sleep", "60"], "backend": "slurm"})
        assert wait_until(lambda: session.get(job).state == JobState.RUNNING, 60)
        result = run_corral(slurm_home, "hold", str(job))
        assert result.code == 2 and "running jobs cannot be held" in result.out
        # the backend checks too (a registry that has not seen it run yet)
        record = session.get(job)
        stale = Attempt(
            record.id, record.uuid, 1, record.spec, Path("/nonexistent"), JobState.SUBMITTED,
            record.native_id,
        )  # fmt: skip
        backend = build(session.settings.backend_config("slurm"))

        async def hold() -> dict[str, str]:
            await backend.start(lambda obs: None)
            return dict(await backend.hold([stale], "no"))

        assert asyncio.run(hold()) == {record.uuid: "running jobs cannot be held"}
        session.kill(job)
        assert session.wait(job, timeout=60)[0].state == JobState.KILLED
