"""A delaying TCP proxy on loopback: every byte takes ``rtt / 2`` each way, so one request and
its answer cost one round trip (netem is not available on the machines this runs on).

Each direction of a connection is a queue of (due time, chunk), forwarded in order once due,
so throughput is not limited by the delay (like a long, fat link). Used by
``bench/dirac_status.py``; ``python bench/delay_proxy.py PORT UPSTREAM_PORT RTT_MS`` runs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time


class DelayProxy:
    def __init__(self, upstream_port: int, rtt: float, host: str = "127.0.0.1") -> None:
        self.upstream_port, self.rtt, self.host = upstream_port, rtt, host
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> DelayProxy:
        self.server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self._writers):  # open connections end with EOF, not a cancellation
            writer.close()
        with contextlib.suppress(Exception):
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(reader, up_writer))
                group.create_task(self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.create_task(forward())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((time.monotonic() + self.rtt / 2, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(ConnectionError, OSError):
                await sender
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()


async def _main(port: int, upstream: int, rtt_ms: float) -> None:
    proxy = DelayProxy(upstream, rtt_ms / 1000)
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
