"""corral.isolate workers running the REAL DIRAC 9.1 client in its own venv (real_worker.py):
local-mode ``Dirac().submitJob`` (real and blocking) across workers, per-call timeouts, kill -9
of a worker mid-call, a new token recycling the workers, and DIRAC's own DiracX client and the
legacy JobStateUpdateClient against the local DiracX server of scripts/test-dirac.sh."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from corral.isolate import CallTimedOut, Launch, Method, Pool, PoolSpec, WorkerDied
from tests.dirac.helpers import NO_PILOT
from tests.dirac_classic.helpers import DIRAC_CLASSIC, HERE, PYTHON, VENV

pytestmark = [
    *DIRAC_CLASSIC,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not os.environ.get("DIRACX_URL") and not os.environ.get("CORRAL_REQUIRE_DIRAC_CLASSIC"),
        reason="no DiracX here (scripts/test-dirac.sh run starts one)",
    ),
]
SCRIPTS = Path(__file__).parents[2] / "scripts"
METHODS = {
    "whoami": Method(True, 60),
    "nap": Method(True, 60),
    "run_local": Method(False, 240),
    "install_token": Method(False, 60),
    "dx_submit": Method(False, 60),
    "dx_search": Method(True, 60),
    "legacy_status": Method(True, 60),
}
JOB = """#!/bin/sh
echo $$ > "$1.pid"
echo "start $(date +%s.%N)" >> "$1"
sleep "$2"
echo "end $(date +%s.%N)" >> "$1"
"""


def pool_spec(tmp_path: Path, workers: int, **changes: Any) -> PoolSpec:
    scratch = tmp_path / "dirac-scratch"
    scratch.mkdir(exist_ok=True)
    cfg = scratch / "dirac.cfg"
    if not cfg.exists():
        subprocess.run(["bash", str(SCRIPTS / "dirac-classic-cfg.sh"), str(cfg)], check=True)
    env = {
        "DIRACSYSCONFIG": str(cfg),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "X509_USER_PROXY": str(scratch / "proxy"),
        "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}",
    }
    launch = Launch(str(PYTHON), str(HERE / "real_worker.py"), environment=env)
    methods = changes.pop("methods", METHODS)
    return PoolSpec("dirac-real", launch, methods, tmp_path / "workers", workers, **changes)


def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.sh"
    path.write_text(JOB)
    path.chmod(0o755)
    return path


def started(witness: Path) -> bool:
    return Path(f"{witness}.pid").exists()


def read_pid(witness: Path) -> int:
    return int(Path(f"{witness}.pid").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_blocking_local_submits_run_at_once_in_separate_workers(tmp_path: Path) -> None:
    script, witness = job(tmp_path), [tmp_path / f"witness-{i}" for i in range(3)]

    async def go() -> None:
        async with Pool(pool_spec(tmp_path, 3)) as pool:
            results = await asyncio.gather(
                *(
                    pool.call("run_local", executable=str(script), arguments=f"{w} 3", name=w.name)
                    for w in witness
                )
            )
        assert all(r["OK"] for r in results), results
        assert len({r["pid"] for r in results}) == 3  # one process each: no shared cwd
        spans = []
        for path in witness:  # each job really ran, once
            lines = path.read_text().split("\n")
            assert [line.split()[0] for line in lines if line] == ["start", "end"]
            spans.append((float(lines[0].split()[1]), float(lines[1].split()[1])))
        assert max(s for s, _ in spans) < min(e for _, e in spans)  # they overlapped
        assert "DIRAC" not in sys.modules

    asyncio.run(go())


def test_a_local_submit_past_its_timeout_recycles_its_worker_and_the_payload_goes(
    tmp_path: Path,
) -> None:
    script, witness = job(tmp_path), tmp_path / "witness"
    methods = {**METHODS, "run_local": Method(False, 45)}

    async def go() -> None:
        async with Pool(pool_spec(tmp_path, 1, methods=methods)) as pool:
            (pid,) = pool.pids()
            with pytest.raises(CallTimedOut):
                await pool.call("run_local", executable=str(script), arguments=f"{witness} 600")
            payload = read_pid(witness)
            for _ in range(100):
                if not alive(payload):
                    break
                await asyncio.sleep(0.1)
            assert not alive(pid) and not alive(payload)  # the whole group went
            assert (await pool.call("whoami"))["pid"] != pid
            assert witness.read_text().split()[0] == "start" and "end" not in witness.read_text()

    asyncio.run(go())


def test_kill_9_mid_call_nothing_lost_nothing_run_twice(tmp_path: Path) -> None:
    script, witness = job(tmp_path), tmp_path / "witness"

    async def go() -> None:
        async with Pool(pool_spec(tmp_path, 1, backoff=0.5)) as pool:
            (pid,) = pool.pids()
            submit = asyncio.create_task(
                pool.call("run_local", executable=str(script), arguments=f"{witness} 20")
            )
            for _ in range(1200):
                if started(witness):
                    break
                await asyncio.sleep(0.1)
            payload = read_pid(witness)
            status = asyncio.create_task(pool.call("nap", seconds=10))  # an idempotent call
            await asyncio.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(WorkerDied):
                await submit  # not idempotent: never retried blindly
            assert await status != pid  # retried on the replacement
            for _ in range(100):
                if not alive(payload):
                    break
                await asyncio.sleep(0.1)
            assert not alive(payload)
            assert "end" not in witness.read_text()
            # the caller reconciles (here: the witness says it never finished) and resubmits
            witness.unlink()
            again = await pool.call("run_local", executable=str(script), arguments=f"{witness} 0")
            assert again["OK"], again
            assert [line.split()[0] for line in witness.read_text().splitlines()] == [
                "start",
                "end",
            ]
            assert pool.deaths == 1

    asyncio.run(go())


def test_diracs_own_diracx_client_and_a_new_token_recycling_the_workers(tmp_path: Path) -> None:
    """DIRAC's DiracXClient submits a real job to the local DiracX, the legacy
    JobStateUpdateClient (routed to DiracX) kills it; a new token in the proxy file recycles
    every worker, and the new ones use it."""
    spec = pool_spec(tmp_path, 2, credential_check=0.2)
    proxy = Path(spec.launch.environment["X509_USER_PROXY"])
    label = f"corral-classic-{os.getpid()}"
    jdl = (
        f'JobName = "{label}";\nJobGroup = "corral-classic";\nExecutable = "/bin/true";\n'
        f'Site = {{"{NO_PILOT}"}};\n'
    )

    async def go() -> None:
        async with Pool(spec) as setup:
            await setup.call("install_token", group="user")
        async with Pool(dataclasses.replace(spec, credential=proxy)) as pool:
            before = set(pool.pids())
            first = (await pool.call("whoami"))["proxy"]
            (job_id,) = await pool.call("dx_submit", jdls=[jdl])
            assert (await pool.call("dx_search", ids=[job_id])) == {str(job_id): "Received"}
            await asyncio.sleep(1.1)  # a token issued in another second
            await pool.call("install_token", group="user")
            await asyncio.sleep(0.5)
            seen = await asyncio.gather(*(pool.call("whoami") for _ in range(4)))
            assert pool.recycles == 1 and not {s["pid"] for s in seen} & before
            assert {s["proxy"] for s in seen} != {first}
            killed = await pool.call("legacy_status", job_id=job_id, status="Killed", minor="x")
            assert killed["OK"], killed
            assert (await pool.call("dx_search", ids=[job_id])) == {str(job_id): "Killed"}

    asyncio.run(go())
