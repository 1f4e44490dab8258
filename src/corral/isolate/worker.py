"""The worker side of ``corral.isolate``: run by ANOTHER interpreter, so stdlib only, and it
imports nothing of corral.

    python worker.py MODULE [--path DIR]... [--threads N]

MODULE is a module name or a ``.py`` file. It declares what may be called and how::

    CORRAL_METHODS = {"status": "threadsafe", "submit_local": "exclusive"}

Only those names are ever looked up (never a name starting with ``_``), and a call's params are
JSON keyword arguments: nothing received is evaluated, executed or unpickled. Thread-safe calls
run in a pool of ``--threads`` threads; exclusive ones run one at a time on a thread of their own
(the host sends at most one at a time to a worker).

Protocol, one JSON object per line. The protocol has its own copies of fds 0 and 1; fd 1
becomes fd 2, so whatever the library prints goes to stderr (the host logs it)::

    worker -> host  {"ready": {"pid": 12, "python": "3.11.7", "methods": {...}}}
                    {"failed": "ImportError: ..."}           (then exits 3)
    host -> worker  {"id": 7, "method": "status", "params": {"ids": [1, 2]}}
                    {"abandon": 7}                            (timed out: drop the answer)
    worker -> host  {"id": 7, "result": ...}
                    {"id": 7, "error": {"type": "ValueError", "message": "..."}}

End of input: the worker waits for running calls, then exits 0.
"""

import concurrent.futures
import importlib
import importlib.util
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

KINDS = ("threadsafe", "exclusive")


class Channel:
    """The protocol's own copies of stdin and stdout; fd 1 is pointed at stderr."""

    def __init__(self) -> None:
        self.incoming = os.fdopen(os.dup(0), "rb")
        self.outgoing = os.fdopen(os.dup(1), "wb", buffering=0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
        self.lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, default=str, separators=(",", ":")).encode() + b"\n"
        with self.lock:
            self.outgoing.write(data)


def load(target: str, paths: list[str]) -> ModuleType:
    for path in reversed(paths):
        sys.path.insert(0, path)
    if target.endswith(".py"):
        name = os.path.splitext(os.path.basename(target))[0]
        spec = importlib.util.spec_from_file_location(name, target)
        if spec is None or spec.loader is None:
            raise ImportError("cannot load " + target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def allowed(module: ModuleType) -> dict[str, str]:
    declared = getattr(module, "CORRAL_METHODS", None)
    if not isinstance(declared, dict):
        raise TypeError("the worker module declares no CORRAL_METHODS dict")
    methods: dict[str, str] = {}
    for name, kind in declared.items():
        if not isinstance(name, str) or name.startswith("_") or kind not in KINDS:
            raise TypeError(f"bad CORRAL_METHODS entry: {name!r}: {kind!r}")
        if not callable(getattr(module, name, None)):
            raise TypeError(f"CORRAL_METHODS names {name!r}, which is not a function")
        methods[name] = kind
    return methods


class Dispatcher:
    def __init__(
        self, module: ModuleType, methods: dict[str, str], channel: Channel, threads: int
    ) -> None:
        self.module, self.methods, self.channel = module, methods, channel
        self.shared = concurrent.futures.ThreadPoolExecutor(threads, "corral-call")
        self.exclusive = concurrent.futures.ThreadPoolExecutor(1, "corral-exclusive")
        self.abandoned: set[object] = set()
        self.lock = threading.Lock()

    def handle(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError as exc:
            self.channel.send({"id": None, "error": error("ProtocolError", exc)})
            return
        if "abandon" in message:
            with self.lock:
                self.abandoned.add(message["abandon"])
            return
        call_id, name = message.get("id"), message.get("method")
        params = message.get("params") or {}
        kind = self.methods.get(name) if isinstance(name, str) else None
        if kind is None:
            self.reply(call_id, {"error": {"type": "MethodNotAllowed", "message": repr(name)}})
            return
        if not isinstance(params, dict):
            self.reply(call_id, {"error": {"type": "ProtocolError", "message": "params"}})
            return
        pool = self.shared if kind == "threadsafe" else self.exclusive
        pool.submit(self.run, call_id, getattr(self.module, name), params)

    def run(self, call_id: object, function: Callable[..., Any], params: dict[str, Any]) -> None:
        try:
            answer = {"result": function(**params)}
        except BaseException as exc:  # errors are data: every exception, not only S_ERROR
            sys.stderr.write("".join(traceback.format_exception(type(exc), exc, None)))
            answer = {"error": error(type(exc).__name__, exc)}
        self.reply(call_id, answer)

    def reply(self, call_id: object, answer: dict[str, Any]) -> None:
        with self.lock:
            if call_id in self.abandoned:
                self.abandoned.discard(call_id)
                return
        answer["id"] = call_id
        try:
            self.channel.send(answer)
        except (TypeError, ValueError) as exc:
            self.channel.send({"id": call_id, "error": error("EncodeError", exc)})

    def close(self) -> None:
        self.shared.shutdown(wait=True)
        self.exclusive.shutdown(wait=True)


def error(kind: str, exc: BaseException) -> dict[str, str]:
    return {"type": kind, "message": str(exc)[:2000]}


def arguments(argv: list[str]) -> tuple[str, list[str], int]:
    target: str | None = None
    paths: list[str] = []
    threads = 4
    items = iter(argv)
    for item in items:
        if item == "--path":
            paths.append(next(items))
        elif item == "--threads":
            threads = int(next(items))
        else:
            target = item
    if target is None:
        raise SystemExit("usage: worker.py MODULE [--path DIR]... [--threads N]")
    return target, paths, threads


def main(argv: list[str]) -> int:
    target, paths, threads = arguments(argv)
    channel = Channel()
    try:
        module = load(target, paths)
        methods = allowed(module)
    except BaseException as exc:
        traceback.print_exc()
        channel.send({"failed": f"{type(exc).__name__}: {exc}"})
        return 3
    version = ".".join(str(part) for part in sys.version_info[:3])
    channel.send({"ready": {"pid": os.getpid(), "python": version, "methods": methods}})
    dispatcher = Dispatcher(module, methods, channel, threads)
    for line in channel.incoming:
        dispatcher.handle(line)
    dispatcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
