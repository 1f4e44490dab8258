"""The sync facade: derived from AsyncSession, hosted in one task, errors as CorralError."""

from __future__ import annotations

import inspect
import os
import threading
from typing import Any

import pytest

from corral import AsyncSession, JobState, Session, Settings
from corral.api import SessionStopped
from corral.changes import ChangeFeed
from corral.errors import CorralError, MonitorUnavailable
from corral.records import Transition
from corral.registry import Registry

PROPERTIES = {"monitor", "registry", "settings"}


def _verbs(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and name not in PROPERTIES and callable(member)
    }


def _parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [(p.name, p.kind, p.default) for p in params]


def test_every_async_verb_has_a_sync_twin_with_the_same_parameters() -> None:
    async_verbs, sync_verbs = _verbs(AsyncSession), _verbs(Session)
    assert sorted(async_verbs) == sorted(sync_verbs)
    for name, verb in async_verbs.items():
        assert _parameters(verb) == _parameters(sync_verbs[name]), name
        if inspect.iscoroutinefunction(verb):
            assert sync_verbs[name].__doc__ == verb.__doc__, name


def test_the_parity_check_sees_the_monitor_verbs_and_the_constructor() -> None:
    verbs = _verbs(AsyncSession)
    assert {"monitor_status", "stop_monitor", "backend_status"} <= set(verbs)
    assert _parameters(verbs["stop_monitor"]) == [("timeout", inspect.Parameter.KEYWORD_ONLY, 20.0)]
    assert _parameters(AsyncSession.__init__) == _parameters(Session.__init__)


def test_callbacks_added_before_the_async_session_starts_are_called(settings: Settings) -> None:
    import asyncio

    async def main() -> list[JobState]:
        seen: list[JobState] = []
        killed = asyncio.Event()

        def note(t: Transition) -> None:
            seen.append(t.new)
            if t.new is JobState.KILLED:
                killed.set()

        session = AsyncSession(settings, monitor="off")
        session.on_transition(note)  # before the session starts
        async with session:
            job = await session.submit({"command": ["true"]})
            await session.kill(job)
            async with asyncio.timeout(30):
                await killed.wait()
        return seen

    assert asyncio.run(main()) == [JobState.NEW, JobState.KILLED]


def test_the_async_session_is_entered_and_exited_in_one_task(settings: Settings) -> None:
    seen: list[Any] = []
    original_enter, original_exit = AsyncSession.__aenter__, AsyncSession.__aexit__

    async def enter(self: AsyncSession) -> AsyncSession:
        import asyncio

        seen.append(asyncio.current_task())
        return await original_enter(self)

    async def exit_(self: AsyncSession, *args: Any) -> None:
        import asyncio

        seen.append(asyncio.current_task())
        await original_exit(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AsyncSession, "__aenter__", enter)
        mp.setattr(AsyncSession, "__aexit__", exit_)
        with Session(settings, monitor="off") as s:
            assert s.select() == []
    assert len(seen) == 2 and seen[0] is seen[1] and seen[0] is not None


def test_a_dead_background_task_makes_the_next_call_a_corral_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    broke = threading.Event()

    async def broken(self: ChangeFeed) -> None:
        await self._wanted.wait()
        broke.set()
        raise ValueError("the watcher broke")

    monkeypatch.setattr(ChangeFeed, "run", broken)
    session = Session(settings, monitor="off")
    session.__enter__()
    job = session.submit({"command": ["true"]})
    session.on_transition(lambda t: None)  # wakes the watcher, which fails
    assert broke.wait(10)
    with pytest.raises(SessionStopped, match="the watcher broke") as raised:
        for _ in range(100):  # (the host task needs a moment to unwind)
            session.get(job)
    assert isinstance(raised.value, CorralError)
    with pytest.raises(CorralError):
        session.__exit__(None, None, None)


def test_a_write_after_the_in_process_monitor_died_raises(settings: Settings) -> None:
    with Session(settings) as session:  # autostart is off in these tests
        usurper = Registry(settings.registry, settings.work_dir)
        try:
            usurper.acquire_lease(os.getpid(), "0.0.test")  # fences the session's monitor out
        finally:
            usurper.close()
        job = session.submit({"command": ["true"]})  # its claim meets the fence
        with pytest.raises(MonitorUnavailable):
            session.wait(job, timeout=30)
        with pytest.raises(MonitorUnavailable, match="monitor in this process stopped"):
            session.submit({"command": ["true"]})


def test_changes_resume_across_an_rm_without_reusing_numbers(settings: Settings) -> None:
    with Session(settings, monitor="off") as s:
        first = s.submit({"command": ["true"]})
        second = s.submit({"command": ["true"]})
        mark = s.last_seq()
        s.remove(second, force=True)  # (new: killed at once, so deleted now)
        third = s.submit({"command": ["true"]})
        stream = s.changes(since=mark)
        change = next(stream)
        stream.close()
        assert (change.id, change.new) == (third, JobState.NEW) and change.seq > mark
        everything = s.changes(since=0)
        ids = [next(everything).id for _ in range(2)]
        everything.close()
        assert ids == [first, third]
