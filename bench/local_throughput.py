"""Local throughput: corral vs PSI/J's local executor, side by side (a benchmark, not a test).

For N echo jobs (default 200 and 1000): submit them as one sweep, persist, wait until every job is
seen completed, then read the final states back from a fresh process. Each configuration runs in
its own fresh interpreter, alternating corral and PSI/J, three times; the median is reported with
jobs/s, CPU seconds (of the driving process) and its peak RSS. Then the monitor's CPU while 1,000
jobs sleep (it must be near zero: completion is event-driven, nothing polls files).

    python bench/local_throughput.py [--sizes 200 1000] [--repeat 3] [--max-cpus 64]
    BENCH_PROCESS_CONTROL=pgroup python bench/local_throughput.py   # one mode of the local backend
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = Path(__file__).resolve()


def usage() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": me.ru_utime + me.ru_stime, "rss_mb": me.ru_maxrss / 1024}


def _control() -> str:
    """``BENCH_PROCESS_CONTROL=pidns`` measures one process-control mode (default: auto)."""
    mode = os.environ.get("BENCH_PROCESS_CONTROL")
    return f'process_control = "{mode}"\n' if mode else ""


def run_corral(n: int, max_cpus: int) -> dict[str, float]:
    import corral

    home = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    (home / "config.toml").write_text(
        f"autostart = false\n[backends.local]\nmax_cpus = {max_cpus}\n{_control()}"
    )
    settings = corral.load_settings(env={"CORRAL_HOME": str(home)})
    start = time.perf_counter()
    with corral.Session(settings) as session:
        job = session.submit(
            {
                "name": "echo",
                "command": ["echo", "{i}"],
                "splitter": {"kind": "sweep", "parameters": {"i": [str(i) for i in range(n)]}},
            }
        )
        session.wait(job, timeout=600)
    wall = time.perf_counter() - start
    check = subprocess.run(
        [sys.executable, str(SELF), "--read-back", str(home), str(n)],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise SystemExit(f"read-back failed: {check.stderr}")
    return {"wall": wall, **usage()}


def read_back(home: Path, n: int) -> None:
    import corral

    settings = corral.load_settings(env={"CORRAL_HOME": str(home)}, overrides={"autostart": False})
    with corral.Session(settings, monitor="off") as session:
        (master,) = session.select()
        if master.counts != {corral.JobState.COMPLETED: n}:
            raise SystemExit(f"expected {n} completed, got {master.counts}")


def run_psij(n: int) -> dict[str, float]:
    from psij import Job, JobExecutor, JobSpec

    executor = JobExecutor.get_instance("local")
    start = time.perf_counter()
    jobs = [Job(JobSpec(executable="/bin/echo", arguments=[str(i)])) for i in range(n)]
    for job in jobs:
        executor.submit(job)
    for job in jobs:
        job.wait()
    wall = time.perf_counter() - start
    failed = [j for j in jobs if str(j.status.state) != "COMPLETED"]
    if failed:
        raise SystemExit(f"psij: {len(failed)} jobs not completed")
    return {"wall": wall, **usage()}


def idle_monitor_cpu(n: int, window: float) -> dict[str, float]:
    """CPU of the process running the monitor while n jobs sleep."""
    import corral

    home = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    (home / "config.toml").write_text(f"autostart = false\n[backends.local]\nmax_cpus = {n}\n")
    settings = corral.load_settings(env={"CORRAL_HOME": str(home)})
    with corral.Session(settings) as session:
        job = session.submit(
            {
                "command": ["sleep", str(int(window) + 60)],
                "splitter": {"kind": "args", "args": [[] for _ in range(n)]},
            }
        )
        deadline = time.monotonic() + 120
        while session.get(job).counts.get(corral.JobState.RUNNING, 0) < n:
            if time.monotonic() > deadline:
                raise SystemExit("jobs did not all start")
            time.sleep(0.5)
        time.sleep(2)
        before = usage()["cpu"]
        time.sleep(window)
        cpu = usage()["cpu"] - before
        rss = usage()["rss_mb"]
        session.kill(job)
        session.wait(job, timeout=120)
    return {"cpu": cpu, "window": window, "cpu_percent": 100 * cpu / window, "rss_mb": rss}


def completion_latency(n: int) -> dict[str, float]:
    """Seconds from a job's end (its wrapper's exit file) to the stored ``completing`` change."""
    import corral

    home = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    (home / "config.toml").write_text("autostart = false\n[backends.local]\nmax_cpus = 4\n")
    settings = corral.load_settings(env={"CORRAL_HOME": str(home)})
    delays = []
    with corral.Session(settings) as session:
        job = session.submit(
            {
                "command": ["sleep", "0.{i}"],
                "splitter": {"kind": "sweep", "parameters": {"i": [str(i % 10) for i in range(n)]}},
            }
        )
        session.wait(job, timeout=120)
        for sub in session.subjobs(job):
            assert sub.attempt_dir is not None
            ended = (sub.attempt_dir / "run-exit.0").stat().st_mtime
            seen = next(
                t.at for t in session.history(sub.id) if t.new == corral.JobState.COMPLETING
            )
            delays.append(seen - ended)
    return {"median_ms": 1000 * statistics.median(delays), "max_ms": 1000 * max(delays)}


def child(kind: str, n: int, max_cpus: int) -> dict[str, float]:
    cmd = [sys.executable, str(SELF), "--child", kind, str(n), str(max_cpus)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{kind} n={n} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--idle-jobs", type=int, default=1000)
    parser.add_argument("--idle-window", type=float, default=10.0)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "MAX_CPUS"))
    parser.add_argument("--read-back", nargs=2, metavar=("HOME", "N"))
    args = parser.parse_args()
    if args.read_back:
        read_back(Path(args.read_back[0]), int(args.read_back[1]))
        return
    if args.child:
        kind, n, cap = args.child[0], int(args.child[1]), int(args.child[2])
        runners = {
            "corral": lambda: run_corral(n, cap),
            "psij": lambda: run_psij(n),
            "idle": lambda: idle_monitor_cpu(n, float(cap)),
            "latency": lambda: completion_latency(n),
        }
        print(json.dumps(runners[kind]()))
        return
    print(
        f"# local throughput, {os.cpu_count()} cores, corral max_cpus={args.max_cpus}, "
        f"median of {args.repeat}"
    )
    print(f"{'tool':8} {'jobs':>5} {'wall s':>8} {'jobs/s':>8} {'cpu s':>7} {'rss MB':>7}")
    for n in args.sizes:
        runs: dict[str, list[dict[str, float]]] = {"corral": [], "psij": []}
        for _ in range(args.repeat):
            runs["corral"].append(child("corral", n, args.max_cpus))
            runs["psij"].append(child("psij", n, 0))
        for tool, results in runs.items():
            wall = statistics.median(r["wall"] for r in results)
            cpu = statistics.median(r["cpu"] for r in results)
            rss = max(r["rss_mb"] for r in results)
            print(f"{tool:8} {n:>5} {wall:>8.2f} {n / wall:>8.0f} {cpu:>7.2f} {rss:>7.0f}")
    latency = child("latency", 40, 0)
    print(
        f"# completion seen {latency['median_ms']:.0f} ms (median), {latency['max_ms']:.0f} ms "
        "(max) after a job's end, over 40 jobs"
    )
    idle = child("idle", args.idle_jobs, int(args.idle_window))
    print(
        f"# monitor while {args.idle_jobs} jobs sleep: {idle['cpu']:.3f} cpu s over "
        f"{idle['window']:.0f} s ({idle['cpu_percent']:.2f}% of a core), "
        f"rss {idle['rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
