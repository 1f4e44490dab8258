"""A batch backend at scale: one N-point sweep (default 500) through a real scheduler on this
machine, with what an admin asks of a client: submit calls per sweep, scheduler queries per
monitor cycle, wall time, the lag from the last job's end to corral showing the sweep completed,
and (for a blocking backend) how busy its thread limiter was. JSON on stdout.

    python bench/batch.py --backend condor|slurm|sge [--jobs 500] [--max-interval 2]

Needs the scheduler running (``bash scripts/start-htcondor.sh``, ``bash scripts/start-sge.sh``, or
``bash scripts/start-slurm.sh`` under ``flock -o /tmp/corral-slurm.lock``). A backend joins with
one entry in ``BACKENDS``: its config section and the names its ``call_counts()`` gives to submit
and status calls.
Targets (issue 13): one submit call per sweep, at most 2 scheduler queries per cycle, lag at
most ``max_interval`` + 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.backends.base import ThreadedBackend
from corral.config import load_settings
from corral.monitor.loop import BackendLoop
from corral.session import AsyncSession
from corral.states import JobState


@dataclass(frozen=True)
class Kind:
    section: str
    submit_calls: tuple[str, ...]
    status_calls: tuple[str, ...]


BACKENDS = {
    "condor": Kind("[backends.condor]\nmin_interval = 0.5\n", ("submit",), ("query", "history")),
    "slurm": Kind("[backends.slurm]\nmin_interval = 0.5\n", ("sbatch",), ("squeue", "sacct")),
    "sge": Kind("[backends.sge]\nmin_interval = 0.5\n", ("qsub",), ("qstat", "qacct")),
}


@dataclass
class Probe:
    """What the wrapped monitor and limiter saw."""

    status_calls: tuple[str, ...]
    per_cycle: list[int] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    calls: int = 0
    busy: float = 0.0
    threads: int = 0

    def install(self) -> None:
        status = BackendLoop._do_status
        threaded = ThreadedBackend._call
        probe = self

        async def do_status(loop: BackendLoop) -> None:
            backend = loop.backend
            before = dict(backend.call_counts()) if backend else {}
            tracked = bool(loop.tracked)
            await status(loop)
            after = dict(backend.call_counts()) if backend else {}
            if tracked:
                probe.per_cycle.append(
                    sum(after.get(k, 0) - before.get(k, 0) for k in probe.status_calls)
                )

        async def call(self: ThreadedBackend, fn: Callable[..., Any], *args: Any) -> Any:
            probe.threads = self.inner.options.threads
            probe.in_flight += 1
            probe.peak = max(probe.peak, probe.in_flight)
            probe.calls += 1
            start = time.monotonic()
            try:
                return await threaded(self, fn, *args)
            finally:
                probe.in_flight -= 1
                probe.busy += time.monotonic() - start

        BackendLoop._do_status = do_status  # type: ignore[method-assign]
        ThreadedBackend._call = call  # type: ignore[method-assign]


async def run(kind: str, jobs: int, max_interval: float, probe: Probe) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"corral-bench-{kind}-", dir="/tmp"))
    os.chmod(home, 0o700)
    os.environ["CORRAL_HOME"] = str(home)
    (home / "config.toml").write_text(
        f"autostart = false\n{BACKENDS[kind].section}max_interval = {max_interval}\n"
    )
    spec = {
        "name": "bench",
        "command": ["sh", "-c", "date +%s.%N > end.txt"],
        "backend": kind,
        "outputs": ["end.txt"],
        "splitter": {"kind": "sweep", "parameters": {"i": [str(i) for i in range(jobs)]}},
    }
    async with AsyncSession(load_settings()) as session:
        start = time.time()
        job = await session.submit(spec)
        (master,) = await session.wait(job, timeout=3600)
        wall = time.time() - start
        subs = await session.subjobs(job.job)
        done_at = max(t.at for t in await session.history(job) if t.new == JobState.COMPLETED)
        assert session.monitor is not None
        counts = {k: v for s in session.monitor.statuses() for k, v in s.calls.items()}
        loop = next(iter(session.monitor._loops.values()))
        totals = dict(loop.backend.call_counts()) if loop.backend else {}
    ends = [float((s.output_dir / "end.txt").read_text()) for s in subs if s.output_dir]
    cycles = probe.per_cycle
    return {
        "schema": 1,
        "backend": kind,
        "jobs": jobs,
        "state": master.state.value,
        "completed": sum(s.state == JobState.COMPLETED for s in subs),
        "submit_calls": sum(totals.get(k, 0) for k in BACKENDS[kind].submit_calls),
        "scheduler_calls": totals,
        "last_cycle_calls": counts,
        "status_cycles": len(cycles),
        "queries_per_cycle": {
            "max": max(cycles, default=0),
            "mean": round(statistics.fmean(cycles), 2) if cycles else 0,
        },
        "wall_seconds": round(wall, 2),
        "lag_seconds": round(done_at - max(ends), 2) if ends else None,
        "max_interval": max_interval,
        "limiter": {
            "threads": probe.threads,
            "calls": probe.calls,
            "peak_in_flight": probe.peak,
            "busy_seconds": round(probe.busy, 2),
            "utilisation": round(probe.busy / (wall * probe.threads), 4) if probe.threads else None,
        }
        if probe.threads
        else "none (an async backend: no thread limiter)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backend", choices=sorted(BACKENDS), required=True)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--max-interval", type=float, default=2.0)
    args = parser.parse_args()
    probe = Probe(BACKENDS[args.backend].status_calls)
    probe.install()
    report = asyncio.run(run(args.backend, args.jobs, args.max_interval, probe))
    report["targets_met"] = {
        "one_submit_call": report["submit_calls"] == 1,
        "at_most_2_queries_per_cycle": report["queries_per_cycle"]["max"] <= 2,
        "lag_within_max_interval_plus_2s": report["lag_seconds"] is not None
        and report["lag_seconds"] <= args.max_interval + 2,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
