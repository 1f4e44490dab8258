"""The isolated classic-DIRAC path, measured (part of ``bench/dirac_status.py``; also alone:
``python bench/isolate_status.py [--repeat 5]``).

- the worker protocol itself: ``ping`` (a no-op of the dirac-classic worker module) through a
  ``corral.isolate`` worker running the DIRAC venv's Python: latency per call one at a time
  (median, p95), and calls per second one at a time and with 64 in flight;
- the 25-job refresh: ``DiracClassicBackend.status`` of 25 running jobs through the worker
  (one bulk ``getJobStatus``) against the fake ``Dirac`` (tests/dirac_classic/fake_dirac.py);
- beside Ganga's model: its worker answers into a shared dict that the caller polls every
  0.3 s, so no call returns in less than 0.3 s.

Needs the DIRAC venv (scripts/dirac-classic-venv.sh; CORRAL_DIRAC_CLASSIC_VENV, default
/tmp/corral-dirac-classic). Targets: round trip <= 1 ms (median, no-op); 25 jobs <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from corral import sandbox  # noqa: E402
from corral.backends.base import BackendConfig  # noqa: E402
from corral.backends.dirac.classic import WORKER_MODULE, DiracClassicBackend  # noqa: E402
from corral.isolate import Launch, Method, Pool, PoolSpec  # noqa: E402
from corral.records import Attempt, JobId  # noqa: E402
from corral.spec import parse_spec  # noqa: E402
from corral.states import JobState  # noqa: E402

VENV = Path(os.environ.get("CORRAL_DIRAC_CLASSIC_VENV", "/tmp/corral-dirac-classic"))
FAKE = ROOT / "tests" / "dirac_classic"
GANGA_POLL = 0.3


def environment(work: Path) -> dict[str, str]:
    return {
        "CORRAL_DIRAC_API": "fake_dirac:Dirac",
        "CORRAL_DIRAC_INIT": "none",
        "FAKE_DIRAC_STATE": str(work / "fake"),
    }


async def round_trip(work: Path, calls: int) -> dict[str, float]:
    launch = Launch(
        str(VENV / "bin" / "python"), WORKER_MODULE, [str(FAKE)], None, environment(work)
    )
    spec = PoolSpec("bench", launch, {"ping": Method(True, 30)}, work / "pool", workers=1)
    async with Pool(spec) as pool:
        for _ in range(200):  # warm-up
            await pool.call("ping")
        latencies = []
        t0 = time.perf_counter()
        for _ in range(calls):
            start = time.perf_counter()
            await pool.call("ping")
            latencies.append(time.perf_counter() - start)
        serial = calls / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(calls // 64):
            await asyncio.gather(*(pool.call("ping") for _ in range(64)))
        parallel = (calls // 64) * 64 / (time.perf_counter() - t0)
    latencies.sort()
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "calls_per_s_serial": serial,
        "calls_per_s_64_in_flight": parallel,
    }


def attempts(root: Path, n: int) -> list[Attempt]:
    made = []
    for key in range(n):
        spec = parse_spec({"command": ["sleep", "600"], "backend": "diracc"})
        attempt_dir = root / f"job-{key}" / "attempt-1"
        sandbox.prepare(spec, attempt_dir)
        made.append(
            Attempt(JobId(key + 1), str(uuid.uuid4()), 1, spec, attempt_dir, JobState.SUBMITTING)
        )
    return made


async def refresh(work: Path, n: int, repeat: int) -> dict[str, float]:
    options = {
        "python": str(VENV / "bin" / "python"),
        "dirac_api": "fake_dirac:Dirac",
        "initialize": "none",
        "module_path": [str(FAKE)],
        "environment": environment(work),
        "workers": 2,
    }
    dirac = DiracClassicBackend(
        BackendConfig("diracc", work / "work", options, kind="dirac-classic")
    )
    await dirac.start(lambda obs: None)
    made = attempts(work / "jobs", n)
    try:
        done = await dirac.submit(made)
        tracked = [
            Attempt(
                a.id, a.uuid, 1, a.spec, a.attempt_dir, JobState.SUBMITTED, done.accepted[a.uuid]
            )
            for a in made
        ]
        seen = await dirac.status(tracked)
        assert all(o.state == JobState.RUNNING for o in seen.values()), seen
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            await dirac.status(tracked)
            times.append(time.perf_counter() - start)
        await dirac.cancel(tracked)
    finally:
        await dirac.stop()
    return {"jobs": n, "median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}


async def bench(repeat: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="corral-bench-isolate-"))
    trip = await round_trip(work, 2000)
    jobs = await refresh(work, 25, max(repeat, 20))
    return {
        "round_trip": trip,
        "refresh_25": jobs,
        "ganga_model_floor_ms": GANGA_POLL * 1000,
        "targets": {
            "worker round trip <= 1 ms (median, no-op)": trip["median_ms"] <= 1.0,
            "25-job refresh through the worker <= 20 ms": jobs["median_ms"] <= 20.0,
        },
    }


def table(results: dict[str, Any]) -> str:
    trip, jobs = results["round_trip"], results["refresh_25"]
    return "\n".join(
        [
            "isolated classic DIRAC (worker in the DIRAC venv, fake Dirac):",
            f"- no-op round trip: median {trip['median_ms']:.3f} ms, p95 {trip['p95_ms']:.3f} ms;"
            f" {trip['calls_per_s_serial']:,.0f} calls/s one at a time,"
            f" {trip['calls_per_s_64_in_flight']:,.0f} calls/s with 64 in flight",
            f"- 25-job refresh (one getJobStatus): median {jobs['median_ms']:.2f} ms,"
            f" max {jobs['max_ms']:.2f} ms",
            f"- Ganga's model: at least {results['ganga_model_floor_ms']:.0f} ms per call",
            *(f"- target {k}: {'met' if v else 'MISSED'}" for k, v in results["targets"].items()),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    results = asyncio.run(bench(args.repeat))
    print(table(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
