"""A 500-point sweep on the real Grid Engine (scripts/start-sge.sh), through the backend the
monitor drives: submit calls (target 1), qstat calls per status cycle (target <= 2), and the lag
from the last job's end (its wrapper's exit time) to the cycle that sees every job ended
(target <= max_interval + 2 s). Usage: python bench/sge_sweep.py [POINTS] [INTERVAL_S]"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from corral import sandbox
from corral.backends.base import BackendConfig
from corral.backends.runfiles import read_run_files
from corral.backends.sge import SgeBackend
from corral.records import Attempt, JobId
from corral.spec import JobSpec
from corral.states import JobState


async def main(points: int, interval: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="corral-sge-bench-"))
    sge = SgeBackend(BackendConfig("sge", root, {}, kind="sge"))
    await sge.start(lambda obs: None)
    attempts = []
    for i in range(points):
        spec = JobSpec(command=("true",), arguments=(str(i),))
        key = str(uuid.uuid4())
        directory = root / key / "attempt-1"
        sandbox.prepare(spec, directory)
        attempts.append(Attempt(JobId(1, i), key, 1, spec, directory, JobState.SUBMITTING))
    began = time.monotonic()
    result = await sge.submit(attempts)
    print(f"submit: {sge.calls['qsub']} qsub call(s), {time.monotonic() - began:.2f} s")
    live = {
        a.uuid: Attempt(
            a.id, a.uuid, 1, a.spec, a.attempt_dir, JobState.SUBMITTED, result.accepted[a.uuid]
        )
        for a in attempts
    }
    cycles, most = 0, 0
    while live:
        before = sge.calls["qstat"]
        seen = await sge.status(list(live.values()))
        cycles += 1
        most = max(most, sge.calls["qstat"] - before)
        for key, obs in seen.items():
            if obs.state in (JobState.COMPLETING, JobState.FAILED, JobState.KILLED):
                live.pop(key)
        if live:
            await asyncio.sleep(interval)
    seen_all = time.time()
    ends = [read_run_files(a.attempt_dir).exit for a in attempts]
    last = max(e.at for e in ends if e is not None and e.at is not None)
    print(
        f"status: {cycles} cycles, at most {most} qstat call(s) per cycle, "
        f"qacct calls {sge.calls['qacct']}"
    )
    print(
        f"lag from the last job's end to seeing all ended: {seen_all - last:.2f} s "
        f"(poll interval {interval} s); whole sweep {time.monotonic() - began:.1f} s"
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 500,
            float(sys.argv[2]) if len(sys.argv) > 2 else 2.0,
        )
    )
