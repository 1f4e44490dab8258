"""Tokens from the credentials file DiracX's own ``dirac login`` writes, refreshed in place.

The file is JSON (``access_token``, ``refresh_token``, ``expires_on`` as a Unix time), mode 0600,
and DiracX's client ``flock``s it (shared to read, exclusive to write). Rules kept here:

- One refresh in flight per process (an ``asyncio.Lock``) and per file (an exclusive ``flock``
  held across the refresh call): a refresh token is never sent twice, since reusing a rotated
  one revokes every token of the user.
- Under the lock the file is read again first: if another process already refreshed, its pair
  is adopted and nothing is sent.
- The file is rewritten in place under the lock (a rename would leave other processes locking
  the old inode). Every file operation runs in a worker thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from corral.errors import BackendUnavailable

DEFAULT_PATH = Path("~/.cache/diracx/credentials.json")
EARLY = 30.0
"""Seconds before ``expires_on`` that a token is refreshed, so no call carries a dying token."""
LOGIN = "down: login needed (run `dirac login`)"


def credentials_path(option: str | None, env: dict[str, str] | None = None) -> Path:
    """The option, else ``DIRACX_CREDENTIALS_PATH``, else dirac login's default."""
    env = dict(os.environ) if env is None else env
    raw = option or env.get("DIRACX_CREDENTIALS_PATH") or str(DEFAULT_PATH)
    return Path(raw).expanduser()


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_on: float

    def fresh(self, now: float | None = None) -> bool:
        return self.expires_on - EARLY > (time.time() if now is None else now)

    @classmethod
    def from_json(cls, text: str) -> Tokens:
        data = json.loads(text)
        return cls(str(data["access_token"]), data.get("refresh_token"), float(data["expires_on"]))

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Tokens:
        """A token endpoint's answer (``expires_in`` seconds from now)."""
        return cls(
            str(data["access_token"]),
            data.get("refresh_token"),
            time.time() + float(data.get("expires_in", 0)),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_on": int(self.expires_on),
            }
        )


def read(path: Path) -> Tokens:
    """The tokens in the file, under a shared lock (blocking: call it in a thread)."""
    for _ in range(20):
        try:
            with path.open() as handle:
                fcntl.flock(handle, fcntl.LOCK_SH)
                text = handle.read()
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"{LOGIN}: no credentials file {path}") from exc
        except OSError as exc:
            raise BackendUnavailable(f"{LOGIN}: cannot read {path}: {exc.strerror}") from exc
        if text.strip():
            try:
                return Tokens.from_json(text)
            except (ValueError, KeyError, TypeError) as exc:
                raise BackendUnavailable(f"{LOGIN}: unreadable credentials in {path}") from exc
        # DiracX's writer truncates before it takes its lock: an empty read is a write under way
        time.sleep(0.05)
    raise BackendUnavailable(f"{LOGIN}: credentials file {path} stays empty")


def _lock(path: Path) -> IO[str]:
    handle = path.open("r+")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


async def _locked(path: Path) -> IO[str]:
    """The file, exclusively locked (the wait runs in a thread). Cancelled while waiting, the
    lock the thread gets later is released at once, never left held by a forgotten handle."""
    task = asyncio.ensure_future(asyncio.to_thread(_lock, path))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_release_done)
        raise


def _release_done(task: asyncio.Future[IO[str]]) -> None:
    if not task.cancelled() and task.exception() is None:
        _release(task.result())


def _reread(handle: IO[str]) -> Tokens | None:
    handle.seek(0)
    text = handle.read()
    try:
        return Tokens.from_json(text) if text.strip() else None
    except (ValueError, KeyError, TypeError):
        return None


def _write_locked(handle: IO[str], tokens: Tokens) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(tokens.to_json())
    handle.flush()
    os.fsync(handle.fileno())


def _release(handle: IO[str]) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


Refresher = Callable[[str], Awaitable[Tokens]]
"""Sends a refresh token to the server, returns the new pair (raises on refusal)."""


class TokenStore:
    """The current access token of one backend instance, refreshed when it is due."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tokens: Tokens | None = None
        self.refreshes = 0
        self._lock = asyncio.Lock()

    async def load(self) -> Tokens:
        self.tokens = await asyncio.to_thread(read, self.path)
        return self.tokens

    async def access(self, refresher: Refresher) -> str:
        """A token that is not about to expire (refreshing first if it is)."""
        tokens = self.tokens or await self.load()
        if not tokens.fresh():
            tokens = await self.refresh(tokens.access_token, refresher)
        return tokens.access_token

    async def refresh(self, stale: str, refresher: Refresher) -> Tokens:
        """Replace the access token ``stale`` (refused or expiring). Whoever comes second,
        in this process or another, finds it replaced and refreshes nothing."""
        async with self._lock:
            if self.tokens is not None and self.tokens.access_token != stale:
                return self.tokens  # refreshed by the call ahead of us in this process
            try:
                handle = await _locked(self.path)
            except FileNotFoundError as exc:
                raise BackendUnavailable(f"{LOGIN}: no credentials file {self.path}") from exc
            try:
                current = await asyncio.to_thread(_reread, handle)
                if current is not None and current.access_token != stale and current.fresh():
                    self.tokens = current  # another process refreshed while we waited
                    return current
                if current is None or not current.refresh_token:
                    raise BackendUnavailable(f"{LOGIN}: no refresh token in {self.path}")
                new = await refresher(current.refresh_token)
                if new.refresh_token is None:
                    new = Tokens(new.access_token, current.refresh_token, new.expires_on)
                await asyncio.to_thread(_write_locked, handle, new)
                self.refreshes += 1
                self.tokens = new
                return new
            finally:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(_release, handle)
