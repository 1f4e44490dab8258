"""The DIRAC backend against real DiracX 0.7 servers (scripts/test-dirac.sh starts them and the
test pilot of ``tests/dirac/pilot.py``): submit -> run -> status -> outputs -> kill over real
HTTP, a 21-job sweep in chunks, a kill batch with an id the server does not know, the server
restarted mid-poll, tokens expiring and refreshed, two processes sharing one credentials file,
and a crash between submit and commit reconciled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.backends.base import BackendConfig
from corral.backends.dirac import DiracBackend, observe
from corral.backends.dirac.backend import JOB_ID
from corral.errors import BackendUnavailable
from corral.records import Attempt, Observation
from corral.states import JobState
from tests.dirac.helpers import DIRAC, NO_PILOT, attempt, run_dir, scripts, with_id

pytestmark = [*DIRAC, pytest.mark.timeout(240)]
S = JobState
T = TypeVar("T")
ENDED = frozenset({S.COMPLETING, S.FAILED, S.KILLED})


def make(work_dir: Path, group: str | None = None, **options: Any) -> DiracBackend:
    config = BackendConfig(
        "dirac", work_dir, options, kind="dirac", registry_uuid=group or uuid.uuid4().hex
    )
    return DiracBackend(config)


def run(backend: DiracBackend, body: Callable[[DiracBackend], Awaitable[T]]) -> T:
    async def go() -> T:
        await backend.start(lambda obs: None)
        try:
            return await body(backend)
        finally:
            await backend.stop()

    return asyncio.run(go())


async def submit(backend: DiracBackend, attempts: Sequence[Attempt]) -> list[Attempt]:
    done = await backend.submit(attempts)
    assert not done.refused, done.refused
    return [with_id(a, done.accepted[a.uuid]) for a in attempts]


async def until_ended(backend: DiracBackend, attempts: Sequence[Attempt]) -> dict[str, Observation]:
    deadline = time.monotonic() + 120
    while True:
        seen = await backend.status(attempts)
        if all(seen[a.uuid].state in ENDED for a in attempts) or time.monotonic() > deadline:
            return dict(seen)
        await asyncio.sleep(0.3)


def queued(tmp_path: Path, n: int, start: int = 0) -> list[Attempt]:
    """Jobs the test pilot leaves alone: they stay Received."""
    spec = {"command": ["sleep", "600"], "backend_options": {"site": [NO_PILOT]}}
    return [attempt(tmp_path, start + i, spec) for i in range(n)]


def test_a_sweep_of_21_goes_in_two_chunks_shares_one_sandbox_and_comes_back(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "table.dat"
    shared.write_text("shared input\n")
    attempts = [
        attempt(
            tmp_path,
            i,
            {
                "command": [
                    "sh",
                    "-c",
                    f"cat table.dat > out.txt; echo {i} >> out.txt; exit {i % 2}",
                ],
                "input_files": [str(shared)],
                "outputs": ["out.txt"],
            },
        )
        for i in range(21)
    ]
    backend = make(tmp_path)

    async def body(b: DiracBackend) -> dict[str, Observation]:
        live = await submit(b, attempts)
        assert b.call_counts()["/api/jobs/jdl"] == 2  # 20 + 1: the server's per-call limit
        assert b.call_counts()["/api/jobs/sandbox"] == 1  # one upload slot for all 21
        before = b.call_counts().get("/api/jobs/search", 0)
        seen = await until_ended(b, live)
        cycles = b.call_counts()["/api/jobs/search"] - before
        assert cycles >= 1
        for att in live:
            await b.fetch_outputs(att)
        return seen

    seen = run(backend, body)
    for i, att in enumerate(attempts):
        obs = seen[att.uuid]
        assert (obs.state, obs.exit_code) == (S.COMPLETING, i % 2), obs
        out = (att.attempt_dir / "sandbox" / "out.txt").read_text()
        assert out == f"shared input\n{i}\n"
        assert (att.attempt_dir / "stdout").exists()


def test_a_kill_batch_with_an_unknown_id_kills_the_others(tmp_path: Path) -> None:
    backend = make(tmp_path)
    ghost = with_id(attempt(tmp_path, 99, {"command": ["true"]}), "99999999")

    async def body(b: DiracBackend) -> dict[str, Observation]:
        live = await submit(b, queued(tmp_path, 3))
        await b.status(live)
        # the last search believes the ghost exists: the first PATCH gets the batch's 403
        b._rows["99999999"] = observe.Row("99999999", "Received")
        await b.cancel([*live, ghost])
        assert b.call_counts()["/api/jobs/status"] == 2  # 403, then resent without the ghost
        return dict(await b.status([*live, ghost]))

    seen = run(backend, body)
    assert seen.pop(ghost.uuid).state == S.UNKNOWN
    assert {obs.state for obs in seen.values()} == {S.KILLED}


def test_a_running_job_is_killed_and_the_kill_read_back(tmp_path: Path) -> None:
    backend = make(tmp_path)
    job = attempt(tmp_path, 0, {"command": ["sleep", "120"]})

    async def body(b: DiracBackend) -> tuple[Observation, Observation]:
        (live,) = await submit(b, [job])
        for _ in range(200):
            running = (await b.status([live]))[live.uuid]
            if running.state == S.RUNNING:
                break
            await asyncio.sleep(0.2)
        await b.cancel([live])
        await b.cancel([live])  # already killed: dropped, no second PATCH
        assert b.call_counts()["/api/jobs/status"] == 1
        killed = (await b.status([live]))[live.uuid]
        await b.fetch_outputs(live)  # a killed job without a sandbox is normal
        return running, killed

    running, killed = run(backend, body)
    assert running.state == S.RUNNING
    assert killed.state == S.KILLED


def test_the_server_restarted_mid_poll_changes_no_job(tmp_path: Path) -> None:
    backend = make(tmp_path)
    env = dict(
        os.environ,
        WORK=str(run_dir() / "main"),
        DIRACX_PORT=os.environ.get("CORRAL_DIRAC_MAIN_PORT", "8710"),
    )

    async def body(b: DiracBackend) -> tuple[dict[str, Observation], list[Any]]:
        live = await submit(b, queued(tmp_path, 4))
        before = dict(await b.status(live))
        restart = await asyncio.create_subprocess_exec(
            "bash",
            str(scripts() / "diracx-local.sh"),
            "restart-server",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )
        outcomes: list[Any] = []
        while restart.returncode is None:
            try:
                outcomes.append(dict(await b.status(live)) == before)
            except BackendUnavailable as exc:
                outcomes.append(exc)
            await asyncio.sleep(0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(restart.wait(), 0.01)
        assert restart.returncode == 0
        after = dict(await b.status(live))
        assert after == before
        return before, outcomes

    before, outcomes = run(backend, body)
    downs = [o for o in outcomes if isinstance(o, BackendUnavailable)]
    assert downs, "the restart was never seen"
    assert all("unreachable" in str(d) or "HTTP 5" in str(d) for d in downs), downs
    assert all(o is True for o in outcomes if not isinstance(o, BackendUnavailable)), outcomes
    assert {o.state for o in before.values()} == {S.SUBMITTED}


def test_a_crash_between_submit_and_commit_is_reconciled_not_resubmitted(
    tmp_path: Path,
) -> None:
    group = uuid.uuid4().hex
    attempts = queued(tmp_path, 3)
    first = run(make(tmp_path, group), lambda b: b.submit(attempts))
    for att in attempts:  # the crash: DiracX has the jobs, no id was stored anywhere
        (att.attempt_dir / JOB_ID).unlink()
    again = make(tmp_path, group)

    async def body(b: DiracBackend) -> Any:
        done = await b.submit(attempts)
        assert "/api/jobs/jdl" not in b.call_counts()
        assert b.call_counts()["/api/jobs/search"] == 1
        return done

    assert run(again, body).accepted == first.accepted
    # another registry's reconcile search adopts none of them
    assert run(make(tmp_path, uuid.uuid4().hex), lambda b: b.reconcile(attempts)) == {}


def test_pages_of_a_search_are_all_read(tmp_path: Path) -> None:
    backend = make(tmp_path, page_size=3)

    async def body(b: DiracBackend) -> Any:
        live = await submit(b, queued(tmp_path, 7))
        seen = await b.status(live)
        assert b.call_counts()["/api/jobs/search"] == 3  # pages 1, then 2 and 3 at once
        again = await b.status(live)  # only rows changed since: none
        return live, seen, again

    live, seen, again = run(backend, body)
    assert {seen[a.uuid].state for a in live} == {S.SUBMITTED}
    assert dict(again) == dict(seen)


def test_a_token_the_server_refuses_is_down_login_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text(
        json.dumps(
            {
                "access_token": "abc.def.ghi",
                "refresh_token": "nope",
                "expires_on": int(time.time()) + 3600,
            }
        )
    )
    monkeypatch.setenv("DIRACX_CREDENTIALS_PATH", str(creds))
    ghost = with_id(attempt(tmp_path, 1, {"command": ["true"]}), "1")
    with pytest.raises(BackendUnavailable, match="login needed"):
        run(make(tmp_path), lambda b: b.status([ghost]))


def short_server_credentials(path: Path, *, expires_on: float | None) -> str:
    env = dict(
        os.environ,
        WORK=str(run_dir() / "short"),
        DIRACX_PORT=os.environ.get("CORRAL_DIRAC_SHORT_PORT", "8711"),
    )
    subprocess.run(
        ["bash", str(scripts() / "diracx-local.sh"), "credentials", str(path)], env=env, check=True
    )
    if expires_on is not None:  # lie about the expiry: only the server's 401 tells
        data = json.loads(path.read_text())
        data["expires_on"] = int(expires_on)
        path.write_text(json.dumps(data))
    return f"http://127.0.0.1:{env['DIRACX_PORT']}"


@pytest.mark.timeout(300)
def test_an_access_token_expiring_during_a_run_is_refreshed(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    url = short_server_credentials(creds, expires_on=time.time() + 3600)
    old = json.loads(creds.read_text())["access_token"]
    backend = make(tmp_path, url=url, credentials_path=str(creds))

    async def body(b: DiracBackend) -> tuple[dict[str, Observation], dict[str, Observation]]:
        live = await submit(b, queued(tmp_path, 2))
        before = dict(await b.status(live))
        await asyncio.sleep(65)  # the short server's access tokens live 60 s
        after = dict(await b.status(live))
        assert b.call_counts()["auth/token"] == 1
        return before, after

    before, after = run(backend, body)
    assert before == after
    assert json.loads(creds.read_text())["access_token"] != old


_CHILD = """
import asyncio, json, sys, uuid
from pathlib import Path
from corral.backends.base import BackendConfig
from corral.backends.dirac import DiracBackend
from corral.records import Attempt, JobId
from corral.spec import parse_spec
from corral.states import JobState

async def main():
    config = BackendConfig("dirac", Path(sys.argv[1]), {"url": sys.argv[2],
                           "credentials_path": sys.argv[3]}, kind="dirac",
                           registry_uuid=uuid.uuid4().hex)
    backend = DiracBackend(config)
    await backend.start(lambda obs: None)
    spec = parse_spec({"command": ["true"], "backend": "dirac"})
    ghost = Attempt(JobId(1), "u", 1, spec, Path(sys.argv[1]), JobState.SUBMITTED, "1")
    await backend.status([ghost])
    print(json.dumps(dict(backend.call_counts())))
    await backend.stop()

asyncio.run(main())
"""


def test_two_processes_sharing_one_credentials_file_refresh_once(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    url = short_server_credentials(creds, expires_on=time.time() - 5)  # both must refresh
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path), url, str(creds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    counts = [json.loads(c.communicate(timeout=120)[0]) for c in children]
    assert [c.returncode for c in children] == [0, 0]
    assert sum(c.get("auth/token", 0) for c in counts) == 1, counts
    assert all(c["/api/jobs/search"] == 1 for c in counts), counts
