"""Slurm at scale: 1,000 short jobs as one sweep, against the real Slurm on this machine.

Needs a running Slurm (``bash scripts/start-slurm.sh``; ``WITH_SACCT=1`` for accounting). Every
Slurm command corral runs goes through a counting shim on PATH, and the controller's own RPC
counters (``sdiag``) are read before and after, so the report shows what a cluster admin cares
about: sbatch calls per sweep, scheduler RPCs per monitor cycle (``sacct`` talks to slurmdbd,
which ``sdiag`` does not count, so its calls are counted separately), the time from the last
job's end to corral showing the sweep completed, and the total wall time.

    python bench/slurm.py [--jobs 1000] [--max-interval 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

TOOLS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")
RPC_LINE = re.compile(r"^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)")


def sdiag() -> dict[str, int]:
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = out.split("by message type", 1)[1].split("by user", 1)[0]
    return {m.group(1): int(m.group(2)) for m in map(RPC_LINE.match, section.splitlines()) if m}


def make_shims(directory: Path, log: Path) -> None:
    """One wrapper per Slurm tool: log the call, then run the real command."""
    for tool in TOOLS:
        real = shutil.which(tool)
        if real is None:
            raise SystemExit(f"{tool} not found: start Slurm first (bash scripts/start-slurm.sh)")
        shim = directory / tool
        shim.write_text(f'#!/bin/sh\necho {tool} >> "{log}"\nexec {real} "$@"\n')
        shim.chmod(0o755)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--max-interval", type=float, default=2.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="corral-slurm-bench-"))
    shims, calls = work / "bin", work / "calls.log"
    shims.mkdir()
    make_shims(shims, calls)
    os.environ["PATH"] = f"{shims}:{os.environ['PATH']}"
    os.environ["CORRAL_HOME"] = str(work / "home")
    (work / "home").mkdir()
    (work / "home" / "config.toml").write_text(
        "autostart = false\n[backends.slurm]\nmin_interval = 0.5\n"
        f"max_interval = {args.max_interval}\n"
    )

    import corral

    settings = corral.load_settings()
    before = sdiag()
    start = time.perf_counter()
    with corral.Session(settings) as session:
        job = session.submit(
            {
                "name": "slurm-bench",
                "command": ["echo", "{i}"],
                "backend": "slurm",
                "splitter": {
                    "kind": "sweep",
                    "parameters": {"i": [str(i) for i in range(args.jobs)]},
                },
            }
        )
        (master,) = session.wait(job, timeout=3600)
        seen_done = time.time()
        wall = time.perf_counter() - start
        monitor = session.aio.monitor
        assert monitor is not None
        (status,) = monitor.statuses()
        subs = session.subjobs(job)
    after = sdiag()
    if master.counts != {corral.JobState.COMPLETED: args.jobs}:
        raise SystemExit(f"not all completed: {master.counts}")
    ends = [
        f.stat().st_mtime for s in subs if s.attempt_dir for f in s.attempt_dir.glob("run-exit.*")
    ]
    used = collections.Counter(calls.read_text().split())
    rpcs = {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }
    # squeue asks the controller for the jobs (JOB_INFO*) plus its own FED_INFO/PARTITION_INFO
    job_info = sum(v for k, v in rpcs.items() if k.startswith("REQUEST_JOB_INFO"))
    fed_info = rpcs.get("REQUEST_FED_INFO", 0)
    cycles = max(status.polls, 1)
    tools = ", ".join(f"{k} {v}" for k, v in sorted(used.items()))
    print(f"# Slurm sweep of {args.jobs} jobs (commands run: {tools})")
    print(f"wall time:                         {wall:.1f} s")
    print(f"sbatch calls:                      {used['sbatch']}")
    print(f"monitor cycles (status polls):     {status.polls}")
    print(f"squeue calls per cycle:            {used['squeue'] / cycles:.2f}")
    print(
        f"sacct calls per cycle:             {used['sacct'] / cycles:.2f} (slurmdbd, not in sdiag)"
    )
    print(
        f"job-info RPCs per cycle (sdiag):   {job_info / cycles:.2f} "
        f"(+{fed_info / cycles:.2f} FED_INFO that squeue adds)"
    )
    print(
        f"last job's end -> sweep completed: {seen_done - max(ends):.2f} s"
        if ends
        else "no exit files"
    )
    print(
        "controller RPCs during the run:    "
        + ", ".join(f"{k} {v}" for k, v in sorted(rpcs.items()))
    )


if __name__ == "__main__":
    main()
