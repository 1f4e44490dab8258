"""Local throughput: corral vs PSI/J's local executor, side by side (a benchmark, not a test).

For N echo jobs (default 200 and 1000), corral two ways: as one sweep (one ``submit`` call), and
one ``Session.submit`` call per job (how most scripts and every Ganga user submit); each run
persists the jobs, waits until every one is seen completed, then reads the final states back from
a fresh process. PSI/J's local executor submits one at a time. And the floor: N detached ``sh``
echo jobs spawned and reaped by a bare loop, no bookkeeping at all. Each configuration runs in
its own fresh interpreter, alternating corral, PSI/J and the floor, three times; the median is
reported with jobs/s, CPU seconds (of the driving process, which runs corral's monitor, and of
the jobs' process trees), the median latency of one submit call, and peak RSS. The clock runs
from the first submit to the last job seen completed: PSI/J's executor is made before it, and
corral's session (which creates the registry and starts the monitor, once) is opened before it
and its opening time is printed beside the run, and added in the "with open" ratio. corral's
``max_cpus`` is the job count (PSI/J and the floor have no cap either). Then the monitor's CPU
while 1,000 jobs sleep (it must be near zero: completion is event-driven, nothing polls files).

    python bench/local_throughput.py [--sizes 200 1000] [--repeat 3] [--max-cpus N]
        [--idle-jobs 1000] [--skip-extras]
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
    """CPU seconds of this process (for corral: the caller and its in-process monitor) and of
    its reaped children (the jobs' process trees), and peak RSS."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu": me.ru_utime + me.ru_stime,
        "child_cpu": kids.ru_utime + kids.ru_stime,
        "rss_mb": me.ru_maxrss / 1024,
    }


def _control() -> str:
    """``BENCH_PROCESS_CONTROL=pidns`` measures one process-control mode (default: auto)."""
    mode = os.environ.get("BENCH_PROCESS_CONTROL")
    return f'process_control = "{mode}"\n' if mode else ""


def run_corral(n: int, max_cpus: int, each: bool = False) -> dict[str, float]:
    import corral
    import corral.backends.local
    import corral.monitor
    import corral.registry.store  # (imported before the clock starts, as PSI/J is below)

    home = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    (home / "config.toml").write_text(
        f"autostart = false\n[backends.local]\nmax_cpus = {max_cpus}\n{_control()}"
    )
    settings = corral.load_settings(env={"CORRAL_HOME": str(home)})
    latencies: list[float] = []
    opening = time.perf_counter()
    with corral.Session(settings) as session:
        start = time.perf_counter()  # (opening the session, once, is reported on its own)
        if each:
            ids = []
            for i in range(n):
                began = time.perf_counter()
                ids.append(session.submit({"name": "echo", "command": ["echo", str(i)]}))
                latencies.append(time.perf_counter() - began)
            session.wait(ids, timeout=600)
        else:
            began = time.perf_counter()
            job = session.submit(
                {
                    "name": "echo",
                    "command": ["echo", "{i}"],
                    "splitter": {"kind": "sweep", "parameters": {"i": [str(i) for i in range(n)]}},
                }
            )
            latencies.append(time.perf_counter() - began)
            session.wait(job, timeout=600)
        wall = time.perf_counter() - start
    used = usage()  # (before the read-back, whose process would count as a job's)
    check = subprocess.run(
        [sys.executable, str(SELF), "--read-back", str(home), str(n), "each" if each else "sweep"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise SystemExit(f"read-back failed: {check.stderr}")
    return {
        "wall": wall,
        "open": start - opening,
        "submit_ms": 1000 * statistics.median(latencies),
        **used,
    }


def run_floor(n: int) -> dict[str, float]:
    """The bare-spawn floor: n detached ``sh`` echo jobs (own session, output to a file)."""
    out = Path(tempfile.mkdtemp(prefix="corral-floor-"))
    latencies: list[float] = []
    start = time.perf_counter()
    procs = []
    for i in range(n):
        began = time.perf_counter()
        procs.append(
            subprocess.Popen(
                ["sh", "-c", f"echo {i} > {out}/{i}.out"],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        latencies.append(time.perf_counter() - began)
    failed = sum(p.wait() != 0 for p in procs)
    wall = time.perf_counter() - start
    if failed:
        raise SystemExit(f"floor: {failed} jobs failed")
    return {"wall": wall, "submit_ms": 1000 * statistics.median(latencies), **usage()}


def read_back(home: Path, n: int, mode: str) -> None:
    import corral

    settings = corral.load_settings(env={"CORRAL_HOME": str(home)}, overrides={"autostart": False})
    with corral.Session(settings, monitor="off") as session:
        found = session.select()
        if mode == "each":
            done = sum(r.state == corral.JobState.COMPLETED for r in found)
            if (len(found), done) != (n, n):
                raise SystemExit(f"expected {n} completed jobs, got {done} of {len(found)}")
            return
        (master,) = found
        if master.counts != {corral.JobState.COMPLETED: n}:
            raise SystemExit(f"expected {n} completed, got {master.counts}")


def run_psij(n: int) -> dict[str, float]:
    from psij import Job, JobExecutor, JobSpec

    # (its executor is made before the clock starts; corral's session, which creates the
    # registry and starts the monitor, is made after it)
    executor = JobExecutor.get_instance("local")
    start = time.perf_counter()
    jobs = [Job(JobSpec(executable="/bin/echo", arguments=[str(i)])) for i in range(n)]
    latencies: list[float] = []
    for job in jobs:
        began = time.perf_counter()
        executor.submit(job)
        latencies.append(time.perf_counter() - began)
    for job in jobs:
        job.wait()
    wall = time.perf_counter() - start
    failed = [j for j in jobs if str(j.status.state) != "COMPLETED"]
    if failed:
        raise SystemExit(f"psij: {len(failed)} jobs not completed")
    return {"wall": wall, "submit_ms": 1000 * statistics.median(latencies), **usage()}


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
            {  # (sweep values must differ: the same sleeps as arguments)
                "command": ["sleep"],
                "splitter": {"kind": "args", "args": [[f"0.{i % 10}"] for i in range(n)]},
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
    parser.add_argument(
        "--max-cpus",
        type=int,
        default=0,
        help="corral's local max_cpus (default: the job count, no cap, as PSI/J and the floor)",
    )
    parser.add_argument("--idle-jobs", type=int, default=1000)
    parser.add_argument("--idle-window", type=float, default=10.0)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "MAX_CPUS"))
    parser.add_argument("--read-back", nargs=3, metavar=("HOME", "N", "MODE"))
    parser.add_argument("--skip-extras", action="store_true", help="no latency and idle runs")
    args = parser.parse_args()
    if args.read_back:
        read_back(Path(args.read_back[0]), int(args.read_back[1]), args.read_back[2])
        return
    if args.child:
        kind, n, cap = args.child[0], int(args.child[1]), int(args.child[2])
        runners = {
            "sweep": lambda: run_corral(n, cap),
            "each": lambda: run_corral(n, cap, each=True),
            "psij": lambda: run_psij(n),
            "floor": lambda: run_floor(n),
            "idle": lambda: idle_monitor_cpu(n, float(cap)),
            "latency": lambda: completion_latency(n),
        }
        print(json.dumps(runners[kind]()))
        return
    print(
        f"# local throughput, {os.cpu_count()} cores, corral max_cpus={args.max_cpus or 'N'}, "
        f"median of {args.repeat}"
    )
    print(
        f"{'tool':14} {'jobs':>5} {'wall s':>8} {'jobs/s':>8} {'cpu s':>7} {'jobs cpu':>8} "
        f"{'submit ms':>10} {'rss MB':>7}   (wall: first submit to all seen completed; cpu: the "
        "driving process, with corral's monitor; jobs cpu: the jobs' process trees; submit ms: "
        "one submit call, median, a sweep is one call)"
    )
    names = {
        "sweep": "corral sweep",
        "each": "corral each",
        "psij": "psij each",
        "floor": "bare sh floor",
    }
    for n in args.sizes:
        cap = args.max_cpus or n
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in names}
        for _ in range(args.repeat):
            for kind in names:  # alternating, so a load burst hurts every tool alike
                runs[kind].append(child(kind, n, cap if kind in ("sweep", "each") else 0))
        for kind, results in runs.items():
            wall = statistics.median(r["wall"] for r in results)
            cpu = statistics.median(r["cpu"] for r in results)
            kids = statistics.median(r["child_cpu"] for r in results)
            submit = statistics.median(r["submit_ms"] for r in results)
            rss = max(r["rss_mb"] for r in results)
            walls = " ".join(f"{r['wall']:.2f}" for r in results)
            opened = " ".join(f"{r['open']:.2f}" for r in results if "open" in r)
            print(
                f"{names[kind]:14} {n:>5} {wall:>8.2f} {n / wall:>8.0f} {cpu:>7.2f} {kids:>8.2f} "
                f"{submit:>10.2f} {rss:>7.0f}   runs: {walls}"
                + (f"   (session open s: {opened})" if opened else "")
            )
        sweep, floor = (statistics.median(r["wall"] for r in runs[k]) for k in ("sweep", "floor"))
        opened = statistics.median(r["wall"] + r["open"] for r in runs["sweep"])
        each, psij = (statistics.median(r["wall"] for r in runs[k]) for k in ("each", "psij"))
        print(
            f"# n={n}: sweep / floor = {sweep / floor:.2f}x (target <= 1.3; with open "
            f"{opened / floor:.2f}x), corral each / psij "
            f"= {each / psij:.2f}x (target <= 1), corral each {each:.2f} s"
            + (" (target < 2.5 s)" if n == 1000 else "")
        )
    if args.skip_extras:
        return
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
