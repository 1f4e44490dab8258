"""corral.isolate with real worker processes of ANOTHER interpreter (Debian's /usr/bin/python3.11,
which has no corral) running tests/isolate/toy_worker.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from corral.errors import BackendError, BackendUnavailable
from corral.isolate import CallTimedOut, Launch, Method, Pool, PoolSpec, RemoteError, WorkerDied
from corral.isolate.process import WORKER

PYTHON = "/usr/bin/python3.11"
TOY = str(Path(__file__).with_name("toy_worker.py"))
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not os.path.exists(PYTHON), reason=f"needs {PYTHON}"),
]
SAFE = Method(idempotent=True, timeout=20)
UNSAFE = Method(idempotent=False, timeout=20)
METHODS = {
    "noop": SAFE,
    "whoami": SAFE,
    "sleep": SAFE,
    "boom": SAFE,
    "chatty": SAFE,
    "spawn": SAFE,
    "exclusive_sleep": UNSAFE,
    "probe": UNSAFE,
    "undeclared": SAFE,
}


def spec(tmp_path: Path, **changes: Any) -> PoolSpec:
    launch = changes.pop("launch", Launch(PYTHON, TOY))
    methods = changes.pop("methods", METHODS)
    return PoolSpec("toy", launch, methods, tmp_path / "scratch", **changes)


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_workers_run_another_interpreter_in_their_own_group_and_cwd(tmp_path: Path) -> None:
    async def go() -> None:
        async with Pool(spec(tmp_path, workers=2)) as pool:
            seen = await asyncio.gather(*(pool.call("whoami") for _ in range(4)))
            assert await pool.call("noop") is None
        assert {s["python"] for s in seen} == {PYTHON}
        assert not any(s["corral"] for s in seen)  # corral's env never reaches the worker
        assert all(s["pid"] == s["pgid"] for s in seen)  # leaders of their own groups
        assert len({s["cwd"] for s in seen}) == 2 and len({s["pid"] for s in seen}) == 2
        assert not any(alive(s["pid"]) for s in seen)  # closed: gone

    run(go)


def test_errors_come_back_as_data_and_the_worker_lives_on(tmp_path: Path) -> None:
    async def go() -> None:
        async with Pool(spec(tmp_path, workers=1)) as pool:
            pid = (await pool.call("whoami"))["pid"]
            for kind in ("ValueError", "NotImplementedError", "AttributeError"):
                with pytest.raises(RemoteError) as caught:
                    await pool.call("boom", kind=kind)
                assert caught.value.type == kind and "it broke" in caught.value.remote_message
            with pytest.raises(RemoteError, match="TypeError"):
                await pool.call("noop", unexpected=1)
            assert (await pool.call("whoami"))["pid"] == pid

    run(go)


def test_only_allowed_methods_are_ever_called(tmp_path: Path) -> None:
    async def go() -> None:
        async with Pool(spec(tmp_path, workers=1)) as pool:
            with pytest.raises(BackendError, match="not an allowed method"):
                await pool.call("system")  # not in the host's allow-list
            with pytest.raises(BackendError, match="no method 'undeclared'"):
                await pool.call("undeclared")  # allowed by the host, not declared by the module
            assert pool.calls["undeclared"] == 0

    run(go)


def test_the_worker_never_evaluates_what_it_receives(tmp_path: Path) -> None:
    """Straight to the worker's pipe: names outside CORRAL_METHODS, dunders, dotted paths and
    code are refused as data; nothing runs (no file appears)."""
    marker = tmp_path / "pwned"
    lines = [
        {"id": 1, "method": "__import__", "params": {"name": "os"}},
        {"id": 2, "method": "os.system", "params": {"command": f"touch {marker}"}},
        {"id": 3, "method": f"__import__('os').system('touch {marker}')", "params": {}},
        {"id": 4, "method": "_lock", "params": {}},
        {"id": 5, "method": "noop", "params": [f"touch {marker}"]},
    ]
    feed = "".join(json.dumps(line) + "\n" for line in lines) + "not json\n"
    done = subprocess.run(
        [PYTHON, str(WORKER), TOY], input=feed, capture_output=True, text=True, timeout=30
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert "ready" in answers[0]
    errors = {a["id"]: a["error"]["type"] for a in answers[1:]}
    assert errors == {
        1: "MethodNotAllowed",
        2: "MethodNotAllowed",
        3: "MethodNotAllowed",
        4: "MethodNotAllowed",
        5: "ProtocolError",
        None: "ProtocolError",
    }
    assert not marker.exists() and done.returncode == 0


def test_thread_safe_calls_share_a_worker_and_exclusive_ones_never_do(tmp_path: Path) -> None:
    async def go() -> None:
        async with Pool(spec(tmp_path, workers=1)) as pool:
            t0 = time.monotonic()
            await asyncio.gather(*(pool.call("sleep", seconds=0.5) for _ in range(4)))
            assert time.monotonic() - t0 < 1.5  # four at once in one process
        async with Pool(spec(tmp_path, workers=3)) as pool:
            probes = await asyncio.gather(*(pool.call("probe", seconds=0.3) for _ in range(6)))
        assert {p["most"] for p in probes} == {1}  # never two in one process
        assert len({p["pid"] for p in probes}) == 3  # spread over the workers

    run(go)


def test_a_timed_out_call_is_abandoned_and_an_unsafe_one_recycles_its_worker(
    tmp_path: Path,
) -> None:
    short = {**METHODS, "sleep": Method(True, 0.5), "exclusive_sleep": Method(False, 0.5)}

    async def go() -> None:
        async with Pool(spec(tmp_path, workers=1, methods=short)) as pool:
            pid = (await pool.call("whoami"))["pid"]
            with pytest.raises(CallTimedOut):
                await pool.call("sleep", seconds=3)
            assert (await pool.call("whoami"))["pid"] == pid  # thread abandoned, worker kept
            with pytest.raises(CallTimedOut):
                await pool.call("exclusive_sleep", seconds=30)
            assert not alive(pid)  # stuck mid-change: killed
            assert (await pool.call("whoami"))["pid"] != pid
            assert pool.deaths == 0  # a recycle is not a death: no back-off

    run(go)


def test_kill_9_mid_call_kills_the_group_fails_unsafe_calls_and_retries_safe_ones(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        async with Pool(spec(tmp_path, workers=1, backoff=0.5)) as pool:
            first = await pool.call("whoami")
            child = await pool.call("spawn", seconds=60)
            safe = asyncio.create_task(pool.call("sleep", seconds=2, tag="safe"))
            unsafe = asyncio.create_task(pool.call("exclusive_sleep", seconds=2))
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            os.kill(first["pid"], signal.SIGKILL)
            with pytest.raises(WorkerDied):
                await unsafe  # never retried blindly
            answer = await safe  # retried on the replacement
            assert answer["tag"] == "safe" and answer["pid"] != first["pid"]
            assert time.monotonic() - t0 >= 0.5  # the restart waited its back-off
            assert pool.deaths == 1 and pool.started == 2
            for _ in range(50):
                if not alive(child):
                    break
                await asyncio.sleep(0.05)
            assert not alive(child)  # the whole process group went

    run(go)


def test_a_credential_change_recycles_the_workers_without_failing_calls(tmp_path: Path) -> None:
    credential = tmp_path / "proxy"
    credential.write_text("one")

    async def go() -> None:
        async with Pool(
            spec(tmp_path, workers=2, credential=credential, credential_check=0.1)
        ) as pool:
            before = set(pool.pids())
            slow = asyncio.create_task(pool.call("sleep", seconds=1.0))
            await asyncio.sleep(0.2)
            credential.write_text("two, longer")
            await asyncio.sleep(0.2)
            after = {(await pool.call("whoami"))["pid"] for _ in range(4)}
            assert not after & before and pool.recycles == 1
            assert (await slow)["pid"] in before  # the call in flight finished on its worker
            for _ in range(50):
                if not any(alive(p) for p in before):
                    break
                await asyncio.sleep(0.05)
            assert not any(alive(p) for p in before)
            assert pool.deaths == 0

    run(go)


def test_worker_output_goes_to_the_log_not_into_the_protocol(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="corral.isolate")

    async def go() -> None:
        async with Pool(spec(tmp_path, workers=1)) as pool:
            assert await pool.call("chatty", text="hello\x1b[31m") == "hello\x1b[31m"
            with pytest.raises(RemoteError):
                await pool.call("boom")

    run(go)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("corral.iso"))
    assert "to stdout: hello\\x1b[31m" in logged and "to stderr: hello" in logged
    assert "ValueError: it broke" in logged  # the traceback of an error, for the monitor log


def test_environment_script_and_extra_environment(tmp_path: Path) -> None:
    script = tmp_path / "envrc"
    script.write_text("echo sourcing\nexport TOY_FROM_SCRIPT=yes\n")
    launch = Launch(PYTHON, TOY, environment_script=str(script), environment={"TOY_EXTRA": "1"})

    async def go() -> None:
        async with Pool(spec(tmp_path, workers=1, launch=launch)) as pool:
            env = (await pool.call("whoami"))["env"]
        assert env == {"TOY_FROM_SCRIPT": "yes", "TOY_EXTRA": "1"}

    run(go)


def test_a_worker_that_cannot_start_is_unavailable(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")

    async def go() -> None:
        with pytest.raises(BackendUnavailable, match="No module named 'no_such_module_here'"):
            async with Pool(spec(tmp_path, launch=Launch(PYTHON, str(broken)))):
                pass
        with pytest.raises(BackendUnavailable, match="cannot start"):
            async with Pool(spec(tmp_path, launch=Launch(str(tmp_path / "nope"), TOY))):
                pass

    run(go)
