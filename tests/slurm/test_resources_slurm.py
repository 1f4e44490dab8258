"""GPUs, an MPI layout and accounting on the real test Slurm (fake GPUs in gres.conf,
jobacct_gather/linux: scripts/start-slurm.sh)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from corral.backends.base import BackendConfig
from corral.backends.slurm import SlurmBackend
from corral.spec import JobSpec
from corral.states import JobState
from tests.slurm.helpers import SLURM, attempt, drive, submitted

pytestmark = SLURM
SCRIPT = (
    'echo "gpus=$CUDA_VISIBLE_DEVICES nodes=$SLURM_JOB_NUM_NODES tasks=$SLURM_NTASKS"; '
    'python3 -c "b = bytearray(40 * 1024 * 1024)"; exit 3'
)


def test_gpus_and_tasks_per_node_reach_the_job_and_usage_is_reported(tmp_path: Path) -> None:
    async def body() -> None:
        slurm = SlurmBackend(BackendConfig("slurm", tmp_path, {}))
        await slurm.start(lambda obs: None)
        resources = {"gpus": 1, "nodes": 1, "tasks_per_node": 2}
        job = attempt(tmp_path, JobSpec(command=("sh", "-c", SCRIPT), resources=resources))
        result = await slurm.submit([job])
        assert not result.refused, result.refused
        (item,) = submitted([job], result.accepted)
        log: dict[str, list] = {}  # type: ignore[type-arg]
        (done,) = await drive(slurm, [item], within=90, log=log)
        assert done.state == JobState.COMPLETING
        out = (job.attempt_dir / "stdout").read_text()
        assert out.startswith("gpus=0 nodes=1 tasks=2"), out
        obs = log[job.uuid][-1]
        assert obs.exit_code == 3 and obs.usage is not None, obs
        assert obs.usage.wall_seconds is not None and obs.usage.cpu_seconds is not None
        if obs.usage.max_rss_bytes is not None:  # from sacct (an exit 3 is asked there)
            assert obs.usage.max_rss_bytes > 40 * 1024 * 1024

    asyncio.run(body())
