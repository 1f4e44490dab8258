"""The dirac-classic transport end to end through real workers in the DIRAC venv, against the fake
``Dirac`` (fake_dirac.py) for the calls that need a full classic DIRAC server; and the fake's
signatures checked against the real class of DIRAC 9.1."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from corral.backends.base import BackendConfig
from corral.backends.dirac.classic import JOB_ID, DiracClassicBackend
from corral.errors import TransientBackendError
from corral.records import Attempt, Observation
from corral.states import JobState
from tests.dirac.helpers import attempt, with_id
from tests.dirac_classic.helpers import DIRAC_CLASSIC, HERE, PYTHON

pytestmark = [*DIRAC_CLASSIC, pytest.mark.timeout(120)]
S = JobState
USED = ["submitJob", "getJobStatus", "killJob", "getOutputSandbox", "selectJobs"]
USED += ["getJobAttributes", "__init__"]

SIGNATURES = """
import inspect, json, sys
sys.path.insert(0, sys.argv[1])
from DIRAC.Interfaces.API.Dirac import Dirac as Real
from fake_dirac import Dirac as Fake
def shape(f):
    return [(p.name, str(p.kind), repr(p.default))
            for p in inspect.signature(f).parameters.values()]
names = [n for n in vars(Fake) if not n.startswith("_") or n == "__init__"]
print(json.dumps({n: [shape(getattr(Fake, n)), shape(getattr(Real, n))] for n in names}))
"""


def test_the_fake_has_the_real_dirac_signatures() -> None:
    done = subprocess.run(
        [str(PYTHON), "-c", SIGNATURES, str(HERE)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shapes = json.loads(done.stdout.splitlines()[-1])
    assert set(USED) <= set(shapes)
    for name, (fake, real) in shapes.items():
        assert fake == real, name


def test_corral_has_no_dirac() -> None:
    assert importlib.util.find_spec("DIRAC") is None
    assert "DIRAC" not in sys.modules


def backend(tmp_path: Path, **options: Any) -> DiracClassicBackend:
    base = {
        "python": str(PYTHON),
        "dirac_api": "fake_dirac:Dirac",
        "initialize": "none",
        "module_path": [str(HERE)],
        "environment": {"FAKE_DIRAC_STATE": str(tmp_path / "fake")},
        "proxy": str(tmp_path / "proxy"),
        "credential_check": 0.1,
    }
    config = BackendConfig("diracc", tmp_path / "work", {**base, **options}, kind="dirac-classic")
    return DiracClassicBackend(config)


async def until_final(
    dirac: DiracClassicBackend, attempts: Sequence[Attempt]
) -> Mapping[str, Observation]:
    for _ in range(200):
        seen = await dirac.status(attempts)
        if all(seen[a.uuid].state not in (S.SUBMITTED, S.RUNNING) for a in attempts):
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(seen)


def test_submit_status_kill_outputs_and_reconcile_through_workers(tmp_path: Path) -> None:
    specs = [
        {"command": ["sh", "-c", "echo hello; echo made > out.txt"], "outputs": ["out.txt"]},
        {"command": ["sh", "-c", "echo 'quoted \"arg\"' >&2; exit 3"]},  # needs the wrapper
        {"command": ["sleep", "60"]},
        {"script": "#!/bin/sh\necho from a script\n"},
    ]
    jobs = [attempt(tmp_path / "jobs", i, spec) for i, spec in enumerate(specs)]

    async def go() -> None:
        dirac = backend(tmp_path)
        await dirac.start(lambda obs: None)
        try:
            done = await dirac.submit(jobs)
            assert not done.refused and set(done.accepted) == {j.uuid for j in jobs}
            tracked = [with_id(j, done.accepted[j.uuid]) for j in jobs]
            ok, bad, slow, script = tracked
            seen = await until_final(dirac, [ok, bad, script])
            assert (seen[ok.uuid].state, seen[ok.uuid].exit_code) == (S.COMPLETING, 0)
            assert (seen[bad.uuid].state, seen[bad.uuid].exit_code) == (S.COMPLETING, 3)
            assert (await dirac.status([slow]))[slow.uuid].state == S.RUNNING
            await dirac.cancel([slow])
            assert (await dirac.status([slow]))[slow.uuid].state == S.KILLED
            for one in (ok, bad, script, slow):
                await dirac.fetch_outputs(one)  # the killed one has none: not an error
            assert (ok.attempt_dir / "stdout").read_text() == "hello\n"
            assert (ok.attempt_dir / "sandbox" / "out.txt").read_text() == "made\n"
            assert (bad.attempt_dir / "stderr").read_text() == 'quoted "arg"\n'
            assert (script.attempt_dir / "stdout").read_text() == "from a script\n"
            # a crash after the call, before the id was stored: found by JobName, not resent
            (ok.attempt_dir / JOB_ID).unlink()
            assert await dirac.reconcile([jobs[0]]) == {ok.uuid: ok.native_id}
            again = await dirac.submit([jobs[0]])
            assert again.accepted == {ok.uuid: ok.native_id}
            assert dirac.call_counts()["submit"] == 4
            assert dirac.call_counts()["status"] >= 3
        finally:
            await dirac.stop()

    asyncio.run(go())


def test_s_error_and_raised_exceptions_are_corral_errors(tmp_path: Path) -> None:
    job = attempt(tmp_path / "jobs", 1, {"command": ["true"]})

    async def go() -> None:
        dirac = backend(tmp_path)
        await dirac.start(lambda obs: None)
        try:
            done = await dirac.submit([job])
            tracked = with_id(job, done.accepted[job.uuid])
            (tmp_path / "fake" / "status.error").write_text("Cannot connect to JobMonitoring")
            with pytest.raises(TransientBackendError, match="Cannot connect to JobMonitoring"):
                await dirac.status([tracked])
            (tmp_path / "fake" / "status.raise").touch()
            with pytest.raises(TransientBackendError, match="NotImplementedError"):
                await dirac.status([tracked])
            (tmp_path / "fake" / "status.raise").unlink()
            (tmp_path / "fake" / "status.error").unlink()
            assert tracked.uuid in await dirac.status([tracked])
            missing = with_id(job, "999999")
            assert (await dirac.status([missing]))[job.uuid].state == S.UNKNOWN
            with pytest.raises(TransientBackendError, match="No such jobs"):
                await dirac.cancel([missing])
        finally:
            await dirac.stop()

    asyncio.run(go())


def test_a_worker_killed_mid_status_is_retried_and_a_new_proxy_recycles(tmp_path: Path) -> None:
    """Status is idempotent: retried on the replacement worker. A new proxy file makes every
    worker start again, and the jobs are still seen."""
    (tmp_path / "proxy").write_text("proxy one")
    job = attempt(tmp_path / "jobs", 1, {"command": ["sleep", "30"]})

    async def go() -> None:
        dirac = backend(tmp_path, workers=1)
        await dirac.start(lambda obs: None)
        try:
            done = await dirac.submit([job])
            tracked = with_id(job, done.accepted[job.uuid])
            assert dirac.pool is not None
            (pid,) = dirac.pool.pids()
            (tmp_path / "fake" / "status.sleep").write_text("5")
            slow = asyncio.create_task(dirac.status([tracked]))
            await asyncio.sleep(1.0)
            os.kill(pid, signal.SIGKILL)  # mid-call
            (tmp_path / "fake" / "status.sleep").unlink()
            seen = await slow
            assert seen[job.uuid].state == S.RUNNING and dirac.pool.deaths == 1
            (after_death,) = dirac.pool.pids()
            time.sleep(0.2)  # noqa: ASYNC251  # (the credential check interval)
            (tmp_path / "proxy").write_text("proxy two, renewed")
            await asyncio.sleep(0.2)
            assert (await dirac.status([tracked]))[job.uuid].state == S.RUNNING
            assert dirac.pool.recycles == 1 and dirac.pool.pids() != [after_death]
            await dirac.cancel([tracked])
        finally:
            await dirac.stop()

    asyncio.run(go())
