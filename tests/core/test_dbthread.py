"""corral.registry.dbthread: one thread, calls a caller blocks on go before queued work."""

from __future__ import annotations

import threading

import pytest

from corral.registry.dbthread import FAIR, DbThread


def _blocked(db: DbThread) -> threading.Event:
    """Occupy the thread until the returned event is set, so that what follows queues up."""
    release, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    db.submit(hold)
    assert started.wait(30)
    return release


def test_urgent_calls_overtake_queued_work_and_results_come_back() -> None:
    db = DbThread("test-db")
    order: list[str] = []
    release = _blocked(db)
    normal = [db.submit(order.append, f"n{i}") for i in range(3)]
    urgent = db.submit_urgent(lambda: order.append("u") or 42)
    release.set()
    assert urgent.result(30) == 42
    for future in normal:
        future.result(30)
    assert order == ["u", "n0", "n1", "n2"]
    db.shutdown()


def test_queued_work_is_not_starved_by_a_stream_of_urgent_calls() -> None:
    db = DbThread("test-db")
    order: list[str] = []
    release = _blocked(db)
    waiting = db.submit(order.append, "normal")
    urgent = [db.submit_urgent(order.append, f"u{i}") for i in range(FAIR + 5)]
    release.set()
    waiting.result(30)
    for future in urgent:
        future.result(30)
    assert order.index("normal") == FAIR
    db.shutdown()


def test_errors_reach_the_caller_and_the_thread_goes_on() -> None:
    db = DbThread("test-db")

    def fail() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        db.submit_urgent(fail).result(30)
    assert db.submit(lambda: "still here").result(30) == "still here"
    db.shutdown()


def test_shutdown_runs_what_is_queued_unless_cancelled_and_refuses_new_calls() -> None:
    db = DbThread("test-db")
    release = _blocked(db)
    kept = db.submit(lambda: "ran")
    db.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="after shutdown"):
        db.submit(lambda: None)
    release.set()
    assert kept.result(30) == "ran"

    other = DbThread("test-db")
    release = _blocked(other)
    dropped = other.submit(lambda: "never")
    other.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert dropped.cancelled()
    other.shutdown()


def test_the_thread_is_named_and_started_only_when_needed() -> None:
    db = DbThread("corral-db-test")
    assert not any(t.name == "corral-db-test" for t in threading.enumerate())
    assert db.submit(lambda: threading.current_thread().name).result(30) == "corral-db-test"
    db.shutdown()
    assert not any(t.name == "corral-db-test" for t in threading.enumerate())
