"""The simulated backend: its pure model, its verbs, its files, and its two modes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral import backends
from corral.backends.base import AsyncBackend, BackendConfig, ThreadedBackend
from corral.backends.sim import (
    BlockingSimBackend,
    Plan,
    SimBackend,
    SimJobOptions,
    SimOptions,
    observe,
    plan,
    sim_dir,
    sim_state,
    status_fails,
)
from corral.errors import BackendUnavailable, ConfigError, InvalidSpec, TransientBackendError
from corral.records import Attempt, JobId, Observation
from corral.spec import parse_spec
from corral.states import JobState

S = JobState
T = TypeVar("T")
UUIDS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1000)]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make_attempt(tmp_path: Path, n: int, **backend_options: Any) -> Attempt:
    spec = parse_spec({"command": ["true"], "backend": "sim", "backend_options": backend_options})
    return Attempt(
        id=JobId(n),
        uuid=UUIDS[n],
        attempt=1,
        spec=spec,
        attempt_dir=tmp_path / f"job-{n}",
        state=S.SUBMITTING,
    )


def make_config(
    tmp_path: Path, name: str = "sim", kind: str = "sim", **options: Any
) -> BackendConfig:
    return BackendConfig(name=name, work_dir=tmp_path / "work", options=options, kind=kind)


def states(observations: Mapping[str, Observation]) -> dict[str, JobState]:
    return {uuid: obs.state for uuid, obs in observations.items()}


# ----------------------------------------------------------------------------- the pure model


def test_same_uuid_and_seed_give_the_same_plan_and_another_seed_another() -> None:
    options = SimOptions(fail_rate=0.5, requeue_rate=0.5)
    reseeded = SimOptions(seed=1, fail_rate=0.5, requeue_rate=0.5)
    assert [plan(u, options) for u in UUIDS[:50]] == [plan(u, options) for u in UUIDS[:50]]
    differ = sum(plan(u, options) != plan(u, reseeded) for u in UUIDS[:50])
    assert differ == 50


def test_rates_and_ranges_are_honoured_over_many_jobs() -> None:
    options = SimOptions(queue_time=1.0, run_time=(2.0, 4.0), fail_rate=0.3, requeue_rate=0.2)
    plans = [plan(u, options) for u in UUIDS]
    failed = sum(p.exit_code != 0 for p in plans)
    requeued = sum(p.requeue_after is not None for p in plans)
    assert 250 <= failed <= 350
    assert 150 <= requeued <= 250
    assert all(0.5 <= p.queue < 1.5 and 2.0 <= p.run <= 4.0 for p in plans)
    assert all(0.2 * p.run <= p.requeue_after <= 0.8 * p.run for p in plans if p.requeue_after)
    assert 2.9 < sum(p.run for p in plans) / len(plans) < 3.1


def test_job_options_and_walltime_override_the_drawn_plan() -> None:
    options = SimOptions(fail_rate=1.0)
    job = SimJobOptions(run_time=7.0, exit_code=0)
    assert (plan(UUIDS[0], options, job).run, plan(UUIDS[0], options, job).exit_code) == (7.0, 0)
    timed_out = plan(UUIDS[0], options, job, walltime=3)
    assert (timed_out.run, timed_out.timed_out) == (3, True)


def test_a_job_queues_runs_is_requeued_once_and_ends() -> None:
    p = Plan(queue=1.0, run=2.0, exit_code=3, requeue_after=1.0)  # ends at 1 + 1 + 1 + 2 = 5
    seen = [observe("u", p, t, native_id="sim-1") for t in (0.5, 1.5, 2.5, 3.5, 5.0)]
    assert [o.state for o in seen] == [S.SUBMITTED, S.RUNNING, S.SUBMITTED, S.RUNNING, S.COMPLETING]
    assert [o.requeue for o in seen] == [False, False, True, False, False]
    assert (seen[-1].exit_code, seen[-1].reason, seen[-1].native_id) == (3, "exit code 3", "sim-1")


def test_a_cancel_kills_a_job_before_its_end_and_not_after() -> None:
    p = Plan(queue=1.0, run=2.0, exit_code=0)
    assert observe("u", p, 0.5, cancelled=0.2).state == S.KILLED
    assert observe("u", p, 9.0, cancelled=2.9).state == S.KILLED
    assert observe("u", p, 9.0, cancelled=3.5).state == S.COMPLETING


def test_end_decoding_is_the_shared_one() -> None:
    signalled = observe("u", Plan(0.0, 1.0, 137), 2.0)
    assert (signalled.state, signalled.signal, signalled.reason) == (
        S.COMPLETING,
        9,
        "killed by signal 9",
    )
    timed_out = observe("u", Plan(0.0, 1.0, 0, timed_out=True), 2.0)
    assert (timed_out.state, timed_out.reason) == (S.FAILED, "walltime exceeded")


def test_status_failures_are_a_function_of_seed_and_call_number() -> None:
    calls = range(1, 401)
    fails = [status_fails(0, n, 0.5) for n in calls]
    assert fails == [status_fails(0, n, 0.5) for n in calls]
    assert fails != [status_fails(1, n, 0.5) for n in calls]
    assert 160 <= sum(fails) <= 240
    assert not any(status_fails(0, n, 0.0) for n in calls)
    assert all(status_fails(0, n, 1.0) for n in calls)


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("cls", "raw", "message"),
    [
        (SimBackend, {"run_time": "abc"}, "backends.s.run_time: input should be a valid tuple"),
        (SimBackend, {"run_time": [0.5, 0.1]}, "run_time: min 0.5 is above max 0.1"),
        (SimBackend, {"run_time": [0.1, "x"]}, "backends.s.run_time.1"),
        (SimBackend, {"fail_rate": 2}, "backends.s.fail_rate: input should be less than"),
        (
            SimBackend,
            {"queue_time": float("inf")},
            "backends.s.queue_time: input should be a finite number (got inf)",
        ),
        (SimBackend, {"seed": True}, "backends.s.seed: input should be a valid integer"),
        (SimBackend, {"status_latency": -1}, "backends.s.status_latency"),
        (SimBackend, {"threads": 2}, "backends.s.threads: unknown option"),
        (BlockingSimBackend, {"threads": 0}, "backends.s.threads: input should be greater than"),
        (BlockingSimBackend, {"colour": "red"}, "backends.s.colour: unknown option"),
    ],
)
def test_a_bad_option_value_is_a_config_error_naming_key_and_value(
    cls: type[SimBackend | BlockingSimBackend], raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        cls.check_options("s", raw)
    assert message in str(err.value)


def test_good_option_values_are_read_as_toml_gives_them() -> None:
    options = BlockingSimBackend.check_options(
        "s", {"run_time": [1, 2], "queue_time": 0, "seed": 7, "threads": 2}
    )
    assert isinstance(options, SimOptions)
    assert (options.run_time, options.queue_time, options.seed) == ((1.0, 2.0), 0.0, 7)
    fixed = SimBackend.check_options("s", {"run_time": 0.3})
    assert isinstance(fixed, SimOptions)
    assert fixed.run_time == (0.3, 0.3)


@pytest.mark.parametrize(
    "backend_options",
    [{"exit_code": "x"}, {"exit_code": 256}, {"run_time": -1}, {"refuse": 1}, {"colour": "red"}],
)
def test_a_bad_job_option_is_an_invalid_spec(backend_options: dict[str, Any]) -> None:
    spec = parse_spec({"command": ["true"], "backend": "sim", "backend_options": backend_options})
    with pytest.raises(InvalidSpec, match=r"^backend_options\."):
        SimBackend.check_job(spec, SimBackend.check_options("s", {}))


def test_good_job_options_pass() -> None:
    spec = parse_spec(
        {"command": ["true"], "backend_options": {"run_time": 1, "exit_code": 2, "refuse": "x"}}
    )
    SimBackend.check_job(spec, SimBackend.check_options("s", {}))


# ----------------------------------------------------------------------------- the verbs


def test_a_full_lifecycle_through_the_verbs(tmp_path: Path) -> None:
    # each job queues 0.2-0.6 s and runs 0.4 s: every check below sits 0.2 s inside a phase
    config = make_config(tmp_path, queue_time=0.4, run_time=0.4)
    done, three, refused, doomed, stranger = (
        make_attempt(tmp_path, 0),
        make_attempt(tmp_path, 1, exit_code=3),
        make_attempt(tmp_path, 2, refuse="no room"),
        make_attempt(tmp_path, 3, run_time=30),
        make_attempt(tmp_path, 4),
    )
    done.attempt_dir.mkdir()

    async def scenario() -> None:
        backend = SimBackend(config)
        await backend.start(lambda obs: None)
        result = await backend.submit([done, three, refused, doomed])
        assert result.accepted == {done.uuid: "sim-1", three.uuid: "sim-2", doomed.uuid: "sim-3"}
        assert result.refused == {refused.uuid: "no room"}

        seen = await backend.status([done, three, doomed, stranger])
        assert states(seen) == {
            done.uuid: S.SUBMITTED,
            three.uuid: S.SUBMITTED,
            doomed.uuid: S.SUBMITTED,
            stranger.uuid: S.UNKNOWN,
        }
        assert seen[done.uuid].native_id == "sim-1"
        assert seen[stranger.uuid].reason == f"sim has no job {stranger.label}"

        await backend.cancel([doomed])
        assert (await backend.status([doomed]))[doomed.uuid].state == S.KILLED

        state = sim_state(config.work_dir, config.name)
        plans = {a.uuid: plan(a.uuid, backend.options) for a in (done, three)}
        accepted_at = state.jobs[done.uuid].accepted_at
        await _sleep_until(accepted_at + plans[done.uuid].queue + 0.2)
        assert (await backend.status([done]))[done.uuid].state == S.RUNNING

        await _sleep_until(accepted_at + max(p.end for p in plans.values()) + 0.05)
        ended = await backend.status([done, three])
        assert [(o.state, o.exit_code) for o in ended.values()] == [
            (S.COMPLETING, 0),
            (S.COMPLETING, 3),
        ]

        again = await backend.submit([done])
        assert again.accepted == {done.uuid: "sim-1"}
        await backend.fetch_outputs(done)
        await backend.fetch_outputs(three)  # no attempt dir: nothing to write, no error
        await backend.stop()
        assert dict(backend.call_counts()) == {
            "submit": 2,
            "status": 4,
            "cancel": 1,
            "reconcile": 0,
            "fetch": 2,
        }

    run(scenario())
    assert (done.attempt_dir / "stdout").read_text() == f"sim job {done.uuid}\n"
    assert (done.attempt_dir / "stdout").stat().st_mode & 0o777 == 0o600
    assert not three.attempt_dir.exists()
    assert len(sim_state(config.work_dir, config.name).jobs) == 3


def test_a_spec_that_skipped_check_job_is_refused_not_a_failed_call(tmp_path: Path) -> None:
    backend = BlockingSimBackend(make_config(tmp_path, kind="sim-blocking"))
    backend.start(lambda obs: None)
    bad, good = make_attempt(tmp_path, 0, exit_code="x"), make_attempt(tmp_path, 1)
    result = backend.submit([bad, good])
    assert list(result.accepted) == [good.uuid]
    assert result.refused[bad.uuid].startswith("backend_options.exit_code: input should be")
    changed = make_attempt(tmp_path, 1, run_time="x")  # the same uuid, its spec now bad
    seen = backend.status([changed])[changed.uuid]
    assert (seen.state, seen.reason.split(":")[0]) == (S.FAILED, "backend_options.run_time")


async def _sleep_until(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.time()))


def test_a_second_instance_reconciles_and_counts_stay_exact(tmp_path: Path) -> None:
    config = make_config(tmp_path, queue_time=30)
    first, second, third, never = (make_attempt(tmp_path, n) for n in range(4))

    async def before_the_crash() -> None:
        backend = SimBackend(config)
        await backend.start(lambda obs: None)
        await backend.submit([first, second])
        await backend.cancel([second])
        await backend.status([first])  # and no stop(): the monitor was killed

    async def after_the_restart() -> Mapping[str, Observation]:
        backend = SimBackend(config)
        await backend.start(lambda obs: None)
        assert dict(backend.call_counts())["submit"] == 1
        found = await backend.reconcile([first, second, never])
        assert found == {first.uuid: "sim-1", second.uuid: "sim-2"}
        assert (await backend.submit([third, first])).accepted == {
            third.uuid: "sim-3",
            first.uuid: "sim-1",
        }
        return await backend.status([first, second, third])

    run(before_the_crash())
    seen = run(after_the_restart())
    assert states(seen) == {first.uuid: S.SUBMITTED, second.uuid: S.KILLED, third.uuid: S.SUBMITTED}
    state = sim_state(config.work_dir, config.name)
    assert state.native_ids == {first.uuid: "sim-1", second.uuid: "sim-2", third.uuid: "sim-3"}
    assert set(state.cancelled) == {second.uuid}
    assert state.calls == {"submit": 2, "status": 2, "cancel": 1, "reconcile": 1, "fetch": 0}
    directory = sim_dir(config.work_dir, config.name)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in directory.iterdir()} == {
        "jobs.jsonl": 0o600,
        "calls.jsonl": 0o600,
    }


_KILLED_MID_RUN = """
import os, signal, sys
from pathlib import Path
from corral.backends.base import BackendConfig
from corral.backends.sim import BlockingSimBackend
from corral.records import Attempt, JobId
from corral.spec import parse_spec
from corral.states import JobState

backend = BlockingSimBackend(BackendConfig("sim", Path(sys.argv[1]), {}, kind="sim-blocking"))
backend.start(lambda obs: None)
spec = parse_spec({"command": ["true"], "backend": "sim"})
attempts = [Attempt(JobId(n), f"u{n}", 1, spec, Path(sys.argv[1]), JobState.SUBMITTING)
            for n in range(5)]
backend.submit(attempts)
for _ in range(7):
    backend.status(attempts)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_counts_and_jobs_survive_a_sigkill(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, "-c", _KILLED_MID_RUN, str(work)], check=False)
    assert proc.returncode == -9
    state = sim_state(work, "sim")
    assert state.calls == {"submit": 1, "status": 7, "cancel": 0, "reconcile": 0, "fetch": 0}
    assert sorted(state.native_ids.values()) == [f"sim-{n}" for n in range(1, 6)]


def test_sim_state_of_an_instance_that_never_ran_is_empty(tmp_path: Path) -> None:
    state = sim_state(tmp_path, "nothing")
    assert (dict(state.jobs), state.calls["status"]) == ({}, 0)
    assert not (tmp_path / "sim").exists()


def test_status_answers_for_a_hundred_thousand_jobs(tmp_path: Path) -> None:
    spec = parse_spec({"command": ["true"], "backend": "sim"})
    attempts = [Attempt(JobId(n), f"u{n}", 1, spec, tmp_path, S.SUBMITTING) for n in range(100_000)]
    backend = BlockingSimBackend(make_config(tmp_path, kind="sim-blocking", queue_time=30))
    backend.start(lambda obs: None)
    assert len(backend.submit(attempts).accepted) == 100_000
    started = time.perf_counter()
    seen = backend.status(attempts)
    assert len(seen) == 100_000
    assert {obs.state for obs in seen.values()} == {S.SUBMITTED}
    assert time.perf_counter() - started < 10  # O(n) arithmetic; a per-job file read is far slower


def test_a_backend_that_cannot_start(tmp_path: Path) -> None:
    async def scenario(backend: AsyncBackend) -> None:
        with pytest.raises(BackendUnavailable, match=r"^sbatch not found$"):
            await backend.start(lambda obs: None)
        with pytest.raises(BackendUnavailable):
            await backend.status([make_attempt(tmp_path, 0)])
        await backend.stop()

    run(scenario(SimBackend(make_config(tmp_path, unavailable="sbatch not found"))))
    blocking = make_config(tmp_path, kind="sim-blocking", unavailable="sbatch not found")
    run(scenario(backends.build(blocking)))


def test_half_the_status_calls_fail_the_same_way_every_time(tmp_path: Path) -> None:
    def failing_calls(work: Path) -> list[int]:
        config = BackendConfig("flaky", work, {"status_failure_rate": 0.5}, kind="sim-blocking")
        backend = BlockingSimBackend(config)
        backend.start(lambda obs: None)
        attempt = make_attempt(tmp_path, 0)
        backend.submit([attempt])
        failed = []
        for call in range(1, 101):
            try:
                assert backend.status([attempt])[attempt.uuid].state == S.SUBMITTED
            except TransientBackendError as exc:
                assert str(exc) == f"sim flaky: status call {call} failed"
                failed.append(call)
        assert backend.call_counts()["status"] == 100  # a failed call is a call
        return failed

    failed = failing_calls(tmp_path / "one")
    assert 35 <= len(failed) <= 65
    assert failing_calls(tmp_path / "two") == failed


def test_a_full_disk_is_a_transient_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, kind="sim-blocking")
    backend = BlockingSimBackend(config)
    backend.start(lambda obs: None)
    calls = sim_dir(config.work_dir, config.name) / "calls.jsonl"
    calls.symlink_to("/dev/full")  # every call appends here first
    with pytest.raises(TransientBackendError, match="No space left on device"):
        backend.submit([make_attempt(tmp_path, 0)])


# ----------------------------------------------------------------------------- the blocking mode


def test_the_blocking_mode_runs_its_verbs_in_its_own_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = backends.build(make_config(tmp_path, name="blk", kind="sim-blocking", threads=2))
    assert isinstance(backend, ThreadedBackend)
    assert isinstance(backend.inner, BlockingSimBackend)
    inner = backend.inner
    threads: list[str] = []

    def spy(verb: Any) -> Any:
        def wrapped(*args: Any) -> Any:
            threads.append(threading.current_thread().name)
            return verb(*args)

        return wrapped

    for name in ("start", "submit", "status", "cancel", "reconcile", "fetch_outputs"):
        monkeypatch.setattr(inner, name, spy(getattr(inner, name)))
    attempt = make_attempt(tmp_path, 0)

    async def scenario() -> None:
        await backend.start(lambda obs: None)
        await backend.submit([attempt])
        await backend.status([attempt])
        await backend.reconcile([attempt])
        await backend.cancel([attempt])
        await backend.fetch_outputs(attempt)
        await backend.stop()

    run(scenario())
    assert len(threads) == 6
    assert all(name.startswith("corral-blk") for name in threads), threads
    assert backend.call_counts()["status"] == 1


def test_two_single_thread_instances_never_block_each_other(tmp_path: Path) -> None:
    slow = backends.build(
        make_config(tmp_path, name="slow", kind="sim-blocking", threads=1, status_latency=0.6)
    )
    fast = backends.build(make_config(tmp_path, name="fast", kind="sim-blocking", threads=1))
    attempt = make_attempt(tmp_path, 0)

    async def timed(calls: Sequence[Coroutine[Any, Any, Any]]) -> float:
        started = time.monotonic()
        for call in calls:
            await call
        return time.monotonic() - started

    async def scenario() -> tuple[float, float]:
        await slow.start(lambda obs: None)
        await fast.start(lambda obs: None)
        await slow.submit([attempt])
        stuck = asyncio.create_task(slow.status([attempt]))
        await asyncio.sleep(0.05)  # slow's only thread is now inside its status call
        quick = await timed([fast.submit([attempt]), fast.status([attempt])])
        assert not stuck.done()
        queued = await timed([slow.submit([attempt])])  # waits for slow's own thread
        await stuck
        await slow.stop()
        await fast.stop()
        return quick, queued

    quick, queued = run(scenario())
    assert quick < 0.3
    assert queued > 0.3
