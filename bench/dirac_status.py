"""DIRAC status refresh and submission against a real DiracX 0.7 (a benchmark, not a test).

The seed's measure: the status refresh of 25 running jobs (Ganga: 16 s before its 2022 rewrite,
0.7 s after), taken three ways at injected round-trip times of 0, 50 and 100 ms (a delaying
TCP proxy on loopback, ``bench/delay_proxy.py``):

- corral: ``DiracBackend.status`` (one bulk search for every job, over one keep-alive client);
- one per call: a client asking one job per search, sequentially (the pre-2022 shape);
- Ganga's path, modelled faithfully: the request goes through a queue to a worker (Ganga's
  isolated DIRAC client), which answers into a shared dict that the caller polls every 0.3 s;
  chunks of 100 jobs are awaited one after another.

Then 1,000 and 10,000 jobs, and the submission of 1,000 jobs at 100 ms; then, when the DIRAC
venv exists, the isolated classic-DIRAC figures of ``bench/isolate_status.py`` (worker round
trip, 25-job refresh through a worker; ``--classic-only``: those alone, no DiracX). It starts
its own server (scripts/diracx-local.sh, ports 8720/27150) unless DIRACX_URL and
DIRACX_CREDENTIALS_PATH are set. Prints a table, then JSON (``--json FILE`` writes it too).

    python bench/dirac_status.py [--repeat 5] [--json bench-dirac.json] [--classic-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import isolate_status  # noqa: E402
from corral import sandbox  # noqa: E402
from corral.backends.base import BackendConfig  # noqa: E402
from corral.backends.dirac import DiracBackend  # noqa: E402
from corral.records import Attempt, JobId  # noqa: E402
from corral.spec import parse_spec  # noqa: E402
from corral.states import JobState  # noqa: E402
from delay_proxy import DelayProxy  # noqa: E402

RTTS = (0, 50, 100)
GANGA_POLL = 0.3
GANGA_CHUNK = 100
NO_PILOT = "Test.NoPilot.org"


def start_server(work: Path) -> dict[str, str]:
    env = dict(os.environ, WORK=str(work), DIRACX_PORT="8720", S3_PORT="27150")
    subprocess.run(["bash", str(ROOT / "scripts/diracx-venv.sh")], check=True)
    subprocess.run(
        ["bash", str(ROOT / "scripts/diracx-local.sh"), "start"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    creds = work / "credentials.json"
    subprocess.run(
        ["bash", str(ROOT / "scripts/diracx-local.sh"), "credentials", str(creds)],
        env=env,
        check=True,
    )
    keys = {}
    for line in (work / "env.sh").read_text().splitlines():
        if line.startswith("export DIRACX_LEGACY_EXCHANGE_KEY_B64="):
            keys["key"] = line.split("=", 1)[1].strip("'")
    return {"url": "http://127.0.0.1:8720", "creds": str(creds), **keys}


def stop_server(work: Path) -> None:
    env = dict(os.environ, WORK=str(work))
    subprocess.run(["bash", str(ROOT / "scripts/diracx-local.sh"), "stop"], env=env, check=False)


def attempts(root: Path, n: int, tag: str) -> list[Attempt]:
    spec = parse_spec(
        {"command": ["true"], "backend": "dirac", "backend_options": {"site": [NO_PILOT]}}
    )
    made = []
    for i in range(n):
        attempt_dir = root / tag / f"job-{i}" / "attempt-1"
        sandbox.prepare(spec, attempt_dir)
        made.append(
            Attempt(JobId(i + 1), uuid.uuid4().hex, 1, spec, attempt_dir, JobState.SUBMITTING)
        )
    return made


def with_ids(made: list[Attempt], ids: dict[str, str]) -> list[Attempt]:
    return [
        Attempt(a.id, a.uuid, 1, a.spec, a.attempt_dir, JobState.SUBMITTED, ids[a.uuid])
        for a in made
    ]


def backend_for(url: str, creds: str, work: Path) -> DiracBackend:
    # a long timeout: setting up 11,025 jobs on a loaded 2-core machine has seen calls > 60 s
    config = BackendConfig(
        "dirac",
        work,
        {"url": url, "credentials_path": creds, "timeout": 600.0},
        kind="dirac",
        registry_uuid=uuid.uuid4().hex,
    )
    return DiracBackend(config)


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int, warm: bool = True) -> float:
    """The median of ``repeat`` runs, after one warm-up (connections open, tokens loaded)."""
    if warm:
        await fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def token_of(creds: str) -> str:
    return str(json.loads(Path(creds).read_text())["access_token"])


async def one_per_call(client: httpx.AsyncClient, token: str, ids: list[str]) -> None:
    for job_id in ids:
        body = {
            "parameters": ["JobID", "Status", "MinorStatus", "ApplicationStatus"],
            "search": [{"parameter": "JobID", "operator": "eq", "value": int(job_id)}],
        }
        response = await client.post(
            "/api/jobs/search", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()


class GangaModel:
    """A worker reached through a queue; answers land in a dict the caller polls every 0.3 s,
    and chunks are awaited one after another (as Ganga's monitoring does)."""

    def __init__(self, url: str, token: str) -> None:
        self.requests: queue.Queue[tuple[int, list[str]] | None] = queue.Queue()
        self.answers: dict[int, Any] = {}
        self.lock = threading.Lock()
        self.url, self.token = url, token
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()
        self.next = 0

    def _work(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while (item := self.requests.get()) is not None:
                key, ids = item
                body = {
                    "parameters": ["JobID", "Status", "MinorStatus", "ApplicationStatus"],
                    "search": [
                        {"parameter": "JobID", "operator": "in", "values": [int(i) for i in ids]}
                    ],
                }
                response = client.post(
                    "/api/jobs/search",
                    json=body,
                    params={"per_page": len(ids)},
                    headers={"Authorization": f"Bearer {self.token}"},
                )
                with self.lock:
                    self.answers[key] = response.json()

    async def status(self, ids: list[str]) -> None:
        for start in range(0, len(ids), GANGA_CHUNK):
            key, self.next = self.next, self.next + 1
            self.requests.put((key, ids[start : start + GANGA_CHUNK]))
            while True:
                await asyncio.sleep(GANGA_POLL)  # Ganga polls its shared dict
                with self.lock:
                    if key in self.answers:
                        del self.answers[key]
                        break

    def close(self) -> None:
        self.requests.put(None)
        self.thread.join(10)


async def set_running(url: str, key: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        got = await client.get(
            "/api/auth/legacy-exchange",
            params={"preferred_username": "ciuser", "scope": "vo:testvo group:pilot"},
            headers={"Authorization": f"Bearer diracx:legacy:{key}"},
        )
        pilot = got.json()["access_token"]
        now = datetime.now(UTC)
        stamp = [
            (now + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for i in range(4)
        ]
        walk = ["Checking", "Waiting", "Matched", "Running"]
        body = {
            i: {
                s: {"Status": w, "MinorStatus": "bench", "Source": "bench"}
                for s, w in zip(stamp, walk, strict=True)
            }
            for i in ids
        }
        (
            await client.patch(
                "/api/jobs/status", json=body, headers={"Authorization": f"Bearer {pilot}"}
            )
        ).raise_for_status()


async def bench(server: dict[str, str], repeat: int, work: Path) -> dict[str, Any]:
    upstream = int(server["url"].rsplit(":", 1)[1])
    results: dict[str, Any] = {"status": [], "submit": {}, "targets": {}}
    direct = backend_for(server["url"], server["creds"], work)
    await direct.start(lambda obs: None)
    jobs: dict[int, list[Attempt]] = {}
    t_all = time.perf_counter()
    for n in (25, 1000, 10_000):
        made = attempts(work, n, f"status-{n}")
        done = await direct.submit(made)
        jobs[n] = with_ids(made, dict(done.accepted))
    print(
        f"# submitted 11,025 jobs directly in {time.perf_counter() - t_all:.1f} s", file=sys.stderr
    )
    await set_running(server["url"], server["key"], [a.native_id or "" for a in jobs[25]])
    seen = await direct.status(jobs[25])
    assert {o.state for o in seen.values()} == {JobState.RUNNING}, seen
    await direct.stop()
    token = token_of(server["creds"])
    for rtt in RTTS:
        async with DelayProxy(upstream, rtt / 1000) as proxy:
            url = f"http://127.0.0.1:{proxy.port}"
            backend = backend_for(url, server["creds"], work)
            await backend.start(lambda obs: None)
            ganga = GangaModel(url, token)
            async with httpx.AsyncClient(base_url=url, timeout=600) as plain:
                for n, live in jobs.items():
                    ids = [a.native_id or "" for a in live]

                    async def corral(live: list[Attempt] = live, b: DiracBackend = backend) -> None:
                        b._since = None  # a full search every time: the worst case
                        answered = await b.status(live)
                        assert len(answered) == len(live)

                    row: dict[str, Any] = {"jobs": n, "rtt_ms": rtt}
                    row["corral_s"] = await timed(corral, repeat)
                    # incremental cycle: only rows changed since the last search
                    await backend.status(live)

                    async def changed(
                        live: list[Attempt] = live, b: DiracBackend = backend
                    ) -> None:
                        await b.status(live)

                    row["corral_changed_only_s"] = await timed(changed, repeat)
                    if n * max(rtt, 5) / 1000 <= 10:  # one per call: 10,000 calls would take hours
                        row["one_per_call_s"] = await timed(
                            lambda ids=ids: one_per_call(plain, token, ids),
                            repeat if n <= 25 else 1,
                            warm=n <= 25,
                        )
                    row["ganga_model_s"] = await timed(
                        lambda ids=ids, g=ganga: g.status(ids),
                        repeat if n <= 25 else 1,
                        warm=n <= 25,
                    )
                    results["status"].append(row)
                    print(json.dumps(row), file=sys.stderr)
            ganga.close()
            if rtt == 100:
                made = attempts(work, 1000, "submit-1000")
                t0 = time.perf_counter()
                done = await backend.submit(made)
                results["submit"] = {
                    "jobs": 1000,
                    "rtt_ms": rtt,
                    "seconds": time.perf_counter() - t0,
                    "accepted": len(done.accepted),
                    "calls": dict(backend.call_counts()),
                }
            await backend.stop()
    by = {(r["jobs"], r["rtt_ms"]): r for r in results["status"]}
    server_time = by[(10_000, 0)]["corral_s"]
    results["targets"] = (
        {
            f"25 jobs at {rtt} ms <= {rtt + 30} ms": by[(25, rtt)]["corral_s"] * 1000 <= rtt + 30
            for rtt in RTTS
        }
        | {
            f"10,000 jobs at {rtt} ms <= 3 RTT + {server_time * 1000:.0f} ms": by[(10_000, rtt)][
                "corral_s"
            ]
            <= 3 * rtt / 1000 + server_time
            for rtt in RTTS
        }
        | {"1,000 submitted at 100 ms in < 10 s": results["submit"]["seconds"] < 10}
    )
    return results


def table(results: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.1f}"

    lines = [
        "| jobs | RTT ms | corral ms | corral (changed only) ms | one per call ms | "
        "Ganga model ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["status"]:
        lines.append(
            f"| {r['jobs']:,} | {r['rtt_ms']} | {ms(r['corral_s'])} | "
            f"{ms(r['corral_changed_only_s'])} | {ms(r.get('one_per_call_s'))} | "
            f"{ms(r['ganga_model_s'])} |"
        )
    s = results["submit"]
    lines.append(
        f"\nsubmit {s['jobs']:,} jobs at {s['rtt_ms']} ms RTT: {s['seconds']:.2f} s "
        f"({s['calls'].get('/api/jobs/jdl', 0)} calls of up to 20)"
    )
    lines.append("\ntargets:")
    lines += [f"- {name}: {'met' if ok else 'MISSED'}" for name, ok in results["targets"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--classic-only", action="store_true", help="only the isolated classic-DIRAC figures"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if not args.classic_only:
        work = Path(tempfile.mkdtemp(prefix="corral-bench-dirac-"))
        server_work = work / "server"
        server = start_server(server_work)
        try:
            results = asyncio.run(bench(server, args.repeat, work))
        finally:
            stop_server(server_work)
        print(table(results))
    if isolate_status.VENV.exists() or args.classic_only:
        results["classic"] = asyncio.run(isolate_status.bench(args.repeat))
        print(isolate_status.table(results["classic"]))
    results["machine"] = {"cores": os.cpu_count(), "note": "shared with other test runs"}
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
