"""Token refresh rules without a server: one refresh in flight, a refresh token sent once even
by two processes sharing the file, the file rewritten in place at 0600."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.backends.dirac import auth
from corral.errors import BackendUnavailable

pytestmark = pytest.mark.timeout(60)


def write(path: Path, access: str, refresh: str | None, expires_on: float) -> None:
    path.write_text(
        json.dumps(
            {"access_token": access, "refresh_token": refresh, "expires_on": int(expires_on)}
        )
    )
    path.chmod(0o600)


def test_concurrent_calls_refresh_once(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    write(path, "old", "r1", time.time() - 1)
    sent: list[str] = []

    async def refresher(token: str) -> auth.Tokens:
        sent.append(token)
        await asyncio.sleep(0.05)
        return auth.Tokens("new", "r2", time.time() + 600)

    async def go() -> list[str]:
        store = auth.TokenStore(path)
        return await asyncio.gather(*(store.access(refresher) for _ in range(10)))

    assert asyncio.run(go()) == ["new"] * 10
    assert sent == ["r1"]
    data = json.loads(path.read_text())
    assert (data["access_token"], data["refresh_token"]) == ("new", "r2")
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_missing_file_or_refresh_token_is_login_needed(tmp_path: Path) -> None:
    async def refresher(token: str) -> auth.Tokens:
        raise AssertionError("never sent")

    with pytest.raises(BackendUnavailable, match="login needed"):
        asyncio.run(auth.TokenStore(tmp_path / "nope.json").load())
    path = tmp_path / "credentials.json"
    write(path, "old", None, time.time() - 1)
    with pytest.raises(BackendUnavailable, match="no refresh token"):
        asyncio.run(auth.TokenStore(path).access(refresher))


def test_the_default_path_is_dirac_logins() -> None:
    assert auth.credentials_path(None, {}) == auth.DEFAULT_PATH.expanduser()
    assert auth.credentials_path(None, {"DIRACX_CREDENTIALS_PATH": "/x/c.json"}) == Path(
        "/x/c.json"
    )
    assert auth.credentials_path("/o.json", {"DIRACX_CREDENTIALS_PATH": "/x"}) == Path("/o.json")


_CHILD = """
import asyncio, sys, time
from pathlib import Path
from corral.backends.dirac import auth

async def refresher(token):
    with open(sys.argv[2], "a") as log:
        log.write(token + "\\n")
    await asyncio.sleep(0.3)  # the other process waits on the lock meanwhile
    return auth.Tokens("new-" + sys.argv[3], "r2", time.time() + 600)

async def main():
    store = auth.TokenStore(Path(sys.argv[1]))
    await store.load()
    print(await store.refresh("old", refresher))

asyncio.run(main())
"""


def test_two_processes_sharing_the_file_send_the_refresh_token_once(tmp_path: Path) -> None:
    path, log = tmp_path / "credentials.json", tmp_path / "sent"
    write(path, "old", "r1", time.time() - 1)
    env = dict(os.environ)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(log), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    outputs = [c.communicate(timeout=30)[0] for c in children]
    assert [c.returncode for c in children] == [0, 0]
    assert log.read_text().split() == ["r1"]
    winner = json.loads(path.read_text())["access_token"]
    assert all(winner in out for out in outputs), outputs
