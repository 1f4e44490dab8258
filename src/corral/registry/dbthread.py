"""The one thread a registry is used from, with a fast lane for calls a caller blocks on.

A ``ThreadPoolExecutor(max_workers=1)`` runs calls in arrival order, so a submit from the sync
facade (its caller waits, and submits the next job only then) queued behind the monitor's
flushes and intake reads: in a loop of 200 one-at-a-time submits that wait was half of each
submit. Here ``submit_urgent`` calls go first; the monitor's work waits at most ``FAIR`` urgent
calls (many threads submitting at once must not starve the monitor).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
FAIR = 8
"""Urgent calls run in a row at most, while other work waits."""

_Item = tuple[Future[Any], Callable[[], Any]]


class DbThread(Executor):
    """A single worker thread (started with the first call) with two queues."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._ready = threading.Condition()
        self._urgent: deque[_Item] = deque()
        self._normal: deque[_Item] = deque()
        self._closing = False
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._put(self._normal, fn, *args, **kwargs)

    def submit_urgent(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._put(self._urgent, fn, *args, **kwargs)

    def _put(
        self, queue: deque[_Item], fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closing:
                raise RuntimeError("cannot schedule new calls after shutdown")
            queue.append((future, lambda: fn(*args, **kwargs)))
            if self._thread is None:
                # (a daemon: a registry left open must not keep the interpreter from exiting;
                # every close awaits its last call before shutting this down)
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _next(self, in_a_row: int) -> tuple[_Item | None, int]:
        with self._ready:
            while not (self._urgent or self._normal or self._closing):
                self._ready.wait()
            if self._urgent and (not self._normal or in_a_row < FAIR):
                return self._urgent.popleft(), in_a_row + 1
            if self._normal:
                return self._normal.popleft(), 0
            return None, 0  # closing, and nothing is left

    def _work(self) -> None:
        in_a_row = 0
        while True:
            item, in_a_row = self._next(in_a_row)
            if item is None:
                return
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # the caller gets it, as from any executor
                future.set_exception(exc)
            else:
                future.set_result(result)
            del item, future, call  # (no reference kept to a result until the next call)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; those queued still run (unless ``cancel_futures``), then the thread
        ends."""
        with self._ready:
            self._closing = True
            if cancel_futures:
                for queue in (self._urgent, self._normal):
                    while queue:
                        queue.popleft()[0].cancel()
            self._ready.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()
