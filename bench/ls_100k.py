"""How fast does a cold ``corral ls`` answer on a registry of 100,000 jobs?

Seeds 100,000 top-level jobs (90,000 plain jobs and 10,000 sweeps of 4 subjobs each, in mixed
final and active states, each with its "created" transition) straight into a fresh registry in
one bulk transaction, then times ``corral ls`` (every row, no limit) and ``corral ls --json`` in
fresh processes, output to a pipe, with two ``[backends.*]`` sections in the config (a
read-only verb must neither load nor check backends). Targets: ls under 0.4 s, --json 0.5 s.

By default the children run in this environment as it is (with ``PYTHONDONTWRITEBYTECODE=1``
every run compiles corral's modules again, as a source checkout without bytecode does);
``--cached-bytecode`` lets them write and reuse bytecode in a temporary ``PYTHONPYCACHEPREFIX``
(as an installed package does), warmed by one untimed run.

    python bench/ls_100k.py [--jobs 100000] [--runs 5] [--home DIR] [--cached-bytecode]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from corral.registry.engine import open_engines
from corral.registry.schema import TOP, jobs, transitions
from corral.spec import JobSpec

STATES = ("completed", "completed", "completed", "failed", "running", "submitted", "killed")
SWEEP_EVERY = 10  # one job in ten is a sweep with subjobs


def seed(home: Path, count: int) -> int:
    """Insert ``count`` top-level jobs in one transaction; return the number of rows."""
    spec = JobSpec(
        command=("python", "simulate.py", "--seed", "7"),
        name="simulate",
        tags=("bench",),
        outputs=("result.json",),
    ).to_json()
    now = time.time()
    rows: list[dict[str, Any]] = []
    for job_id in range(1, count + 1):
        subjobs = 4 if job_id % SWEEP_EVERY == 0 else 0
        state = STATES[job_id % len(STATES)]
        base = {
            "job_id": job_id,
            "name": f"simulate-{job_id % 97}",
            "spec": spec,
            "backend": "local" if job_id % 3 else "slurm",
            "tags": ",bench,",
            "attempt": 1,
            "reason": "",
            "kill_requested": False,
            "created_at": now - (count - job_id),
            "updated_at": now,
            "job_dir": str(home / "jobs" / str(job_id)),
        }
        rows.append(
            dict(
                base,
                sub=TOP,
                state=state,
                uuid=str(uuid.uuid4()),
                subjobs=subjobs,
                exit_code=0 if state == "completed" else None,
            )
        )
        for sub in range(subjobs):
            sub_state = STATES[(job_id + sub) % len(STATES)]
            rows.append(
                dict(
                    base,
                    sub=sub,
                    state=sub_state,
                    uuid=str(uuid.uuid4()),
                    subjobs=0,
                    exit_code=None,
                    job_dir=f"{base['job_dir']}/{sub}",
                )
            )
    writer, reader = open_engines(home / "registry.db")
    try:
        with writer.begin() as conn:
            conn.execute(jobs.insert(), rows)
            pks = conn.execute(jobs.select().with_only_columns(jobs.c.pk)).scalars().all()
            conn.execute(
                transitions.insert(),
                [
                    {
                        "job_pk": pk,
                        "attempt": 1,
                        "old_state": None,
                        "new_state": "new",
                        "at": now,
                        "reason": "created",
                        "applied": True,
                    }
                    for pk in pks
                ],
            )
    finally:
        writer.dispose()
        reader.dispose()
    return len(rows)


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def time_cli(
    home: Path, args: list[str], runs: int, pycache: Path | None = None
) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds (user + system) of ``runs`` fresh ``corral`` processes (with
    ``pycache``: bytecode cached there, after one untimed run)."""
    env = dict(os.environ, CORRAL_HOME=str(home))
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    corral = shutil.which("corral", path=str(Path(sys.executable).parent)) or "corral"
    if pycache is not None:
        subprocess.run([corral, *args], env=env, stdout=subprocess.DEVNULL, check=True)
    times, cpu, lines = [], [], 0
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run([corral, *args], env=env, stdout=subprocess.PIPE, check=True)
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - start_cpu)
        lines = done.stdout.count(b"\n")
    return times, cpu, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path, help="registry home to seed (default: a temp dir)")
    parser.add_argument(
        "--plain-config",
        action="store_true",
        help="no [backends.*] sections in config.toml (by default there are two: a read-only "
        "verb must not load or check backends)",
    )
    parser.add_argument(
        "--cached-bytecode",
        action="store_true",
        help="let the timed processes reuse bytecode (in a temporary PYTHONPYCACHEPREFIX)",
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="corral-ls-bench-"))
    pycache = home / "pycache" if args.cached_bytecode else None
    home.mkdir(parents=True, exist_ok=True)
    if not args.plain_config:
        (home / "config.toml").write_text(
            '[backends.local]\nmax_cpus = 4\n[backends.gpu]\ntype = "slurm"\npartition = "gpu"\n'
        )
    started = time.perf_counter()
    rows = seed(home, args.jobs)
    print(f"seeded {args.jobs:,} jobs ({rows:,} rows) in {time.perf_counter() - started:.1f} s")
    for label, cli_args in (
        ("corral ls", ["ls"]),
        ("corral ls --json", ["ls", "--json"]),
        ("corral ls --state failed", ["ls", "--state", "failed"]),
    ):
        times, cpu, lines = time_cli(home, cli_args, args.runs, pycache)
        print(
            f"{label:28} {lines:>7,} lines   best {min(times):.3f} s   "
            f"median {statistics.median(times):.3f} s   cpu best {min(cpu):.3f} s   "
            f"({args.runs} cold runs{', bytecode cached' if pycache else ''}, "
            f"load {os.getloadavg()[0]:.2f})"
        )
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
